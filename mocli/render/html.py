"""A self-contained HTML report: the analyze tables and charts as inline SVG, no network,
no external scripts or fonts. Every chart has a title, axis labels, a one-line reading and
its numbers in a table beside it."""

from __future__ import annotations

import html
import math
import re
from typing import Any, Sequence

import numpy as np

from ..diagnostics import Report
from ..diagnostics.figures import OUTCOMES, Figures
from ..diagnostics.summary import estimator_rows, findings, objective_rows, summary_line

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D")
W, H = 560, 300
ML, MR, MT, MB = 58, 16, 16, 46


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def num(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out = []
    t = first
    while t <= hi + 1e-12:
        out.append(round(t, 12))
        t += step
    return out


class Plot:
    """One SVG chart area with linear axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, xlabel: str, ylabel: str):
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)
        self.xlabel, self.ylabel = xlabel, ylabel
        self.parts: list[str] = []

    def X(self, x: float) -> float:
        return ML + (x - self.x0) / (self.x1 - self.x0) * (W - ML - MR)

    def Y(self, y: float) -> float:
        return H - MB - (y - self.y0) / (self.y1 - self.y0) * (H - MT - MB)

    def axes(self, xticks: Sequence[tuple[float, str]] | None = None, percent_y: bool = False) -> None:
        p = self.parts
        p.append(f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" stroke="#333"/>')
        p.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" stroke="#333"/>')
        for t in ticks(self.y0, self.y1):
            y = self.Y(t)
            label = f"{100 * t:.0f}%" if percent_y else f"{t:g}"
            p.append(f'<line x1="{ML - 4}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#ddd"/>')
            p.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{esc(label)}</text>')
        for t, label in (xticks if xticks is not None else [(t, f"{t:g}") for t in ticks(self.x0, self.x1)]):
            x = self.X(t)
            p.append(f'<line x1="{x:.1f}" y1="{H - MB}" x2="{x:.1f}" y2="{H - MB + 4}" stroke="#333"/>')
            p.append(f'<text x="{x:.1f}" y="{H - MB + 16}" text-anchor="middle" font-size="11">{esc(label)}</text>')
        p.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{esc(self.xlabel)}</text>')
        p.append(f'<text transform="translate(14,{(MT + H - MB) / 2}) rotate(-90)" text-anchor="middle" font-size="12">{esc(self.ylabel)}</text>')

    def svg(self, title: str, legend: Sequence[tuple[str, str]] = ()) -> str:
        leg = []
        width = max([150] + [int(6.4 * len(name)) + 24 for name, _ in legend])
        x0 = W - MR - width
        for i, (name, color) in enumerate(legend):
            y = MT + 6 + 16 * i
            leg.append(f'<rect x="{x0 - 4}" y="{y - 12}" width="{width}" height="16" fill="#fff" fill-opacity="0.8"/>'
                       f'<rect x="{x0}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
                       f'<text x="{x0 + 15}" y="{y}" font-size="11">{esc(name)}</text>')
        body = "".join(self.parts) + "".join(leg)
        return (f'<svg class="plot" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
                f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    h = "".join(f"<th>{esc(c)}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def figure(key: str, title: str, reading: str, svg: str, numbers: str) -> str:
    return (f'<figure class="chart" id="{esc(key)}"><h3>{esc(title)}</h3><p class="reading">{esc(reading)}</p>'
            f'<div class="row"><div class="svg">{svg}</div><div class="numbers">{numbers}</div></div></figure>')


def empty(key: str, title: str, why: str) -> str:
    return f'<figure class="chart empty" id="{esc(key)}"><h3>{esc(title)}</h3><p class="reading">{esc(why)}</p></figure>'


# ---------------------------------------------------------------------------------------
# the charts
# ---------------------------------------------------------------------------------------
def chart_distributions(doc, fig) -> str:
    labels = list(doc["estimators"])
    edges = fig.edges
    centres = (edges[:-1] + edges[1:]) / 2
    shares = {lb: fig.histograms[lb] / max(1, fig.histograms[lb].sum()) for lb in labels}
    top = max(float(s.max()) for s in shares.values()) if shares else 1.0
    p = Plot(float(edges[0]), float(edges[-1]), 0.0, top * 1.1, "advantage A", "share of scorable rows")
    p.axes(percent_y=True)
    for i, lb in enumerate(labels):
        pts = " ".join(f"{p.X(x):.1f},{p.Y(y):.1f}" for x, y in zip(centres, shares[lb]))
        p.parts.append(f'<polyline fill="none" stroke="{PALETTE[i % 8]}" stroke-width="2" points="{pts}"/>')
    widest = max(labels, key=lambda lb: doc["estimators"][lb]["advantage"]["std"] or 0)
    reading = (f"{widest} spreads its advantages widest (std {num(doc['estimators'][widest]['advantage']['std'])}); "
               + "; ".join(f"{lb}: {pct(doc['estimators'][lb]['advantage']['zero_rate'])} exactly zero" for lb in labels))
    rows = [[lb, num(a["mean"]), num(a["std"]), num(a["max_abs"]), pct(a["zero_rate"])]
            for lb, a in ((lb, doc["estimators"][lb]["advantage"]) for lb in labels)]
    return figure("distributions", "Advantage distributions per estimator", reading,
                  p.svg("Advantage distributions", [(lb, PALETTE[i % 8]) for i, lb in enumerate(labels)]),
                  table(["estimator", "mean", "std", "max |A|", "zero"], rows))


def _colour(v: float | None) -> str:
    if v is None:
        return "#eeeeee"
    v = min(1.0, max(0.0, v))
    # green (agree) -> yellow (unrelated) -> red (opposed)
    if v < 0.5:
        r, g = int(84 + (240 - 84) * v * 2), int(162 + (200 - 162) * v * 2)
    else:
        r, g = int(240 - (240 - 228) * (v - 0.5) * 2), int(200 - (200 - 87) * (v - 0.5) * 2)
    return f"rgb({r},{g},80)"


def chart_conflict(doc) -> str:
    names = doc["input"]["objectives"]
    K = len(names)
    if K < 2:
        return empty("conflict", "Objective conflict", "one objective: nothing to conflict with")
    disc = doc["conflict"]["discordance"]
    corr = doc["conflict"]["correlation"]
    cell = min(60, (H - MT - MB) // K)
    left, topm = 150, 20
    parts = []
    for i, a in enumerate(names):
        parts.append(f'<text x="{left - 6}" y="{topm + cell * i + cell / 2 + 4}" text-anchor="end" font-size="11">{esc(a)}</text>')
        parts.append(f'<text transform="translate({left + cell * i + cell / 2},{topm + cell * K + 12}) rotate(30)" font-size="11">{esc(a)}</text>')
        for j, b in enumerate(names):
            v = None if i == j else disc.get(f"{a}|{b}", disc.get(f"{b}|{a}"))
            x, y = left + cell * j, topm + cell * i
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{_colour(v)}"><title>{esc(a)} vs {esc(b)}: {pct(v)}</title></rect>')
            if v is not None:
                parts.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="11">{100 * v:.0f}%</text>')
    parts.append(f'<text x="{left + cell * K / 2}" y="{H - 4}" text-anchor="middle" font-size="12">objective (columns)</text>')
    parts.append(f'<text transform="translate(14,{topm + cell * K / 2}) rotate(-90)" text-anchor="middle" font-size="12">objective (rows)</text>')
    svg = (f'<svg class="plot" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="discordance heatmap" '
           f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')
    known = [(k, v) for k, v in disc.items() if v is not None]
    if known:
        k, v = max(known, key=lambda t: t[1])
        reading = f"{k.replace('|', ' and ')} order {pct(v)} of row pairs oppositely (0.5 = unrelated, 1 = always opposed)"
    else:
        reading = "no pair of rows where two objectives both differ"
    rows = [[k, pct(disc[k]), num(corr[k])] for k in disc]
    return figure("conflict", "Objective conflict: pairwise discordance", reading, svg,
                  table(["pair", "discordance", "within-group correlation"], rows))


def _bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], ylabel: str, title: str, percent: bool) -> str:
    top = max([v for _, vals in series for v in vals if v is not None] + [1e-9])
    p = Plot(0, len(groups), 0, top * 1.15, "objective", ylabel)
    p.axes(xticks=[(i + 0.5, g) for i, g in enumerate(groups)], percent_y=percent)
    n = len(series)
    bw = 0.8 / max(n, 1)
    for s, (name, vals) in enumerate(series):
        for i, v in enumerate(vals):
            if v is None:
                continue
            x = p.X(i + 0.1 + s * bw)
            w = p.X(i + 0.1 + (s + 1) * bw) - x - 1
            y = p.Y(max(v, 0))
            p.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 1):.1f}" height="{p.Y(0) - y:.1f}" fill="{PALETTE[s % 8]}">'
                           f'<title>{esc(name)} {esc(groups[i])}: {pct(v) if percent else num(v)}</title></rect>')
    return p.svg(title, [(name, PALETTE[s % 8]) for s, (name, _) in enumerate(series)])


def chart_influence(doc) -> str:
    names = [n for n, w in zip(doc["input"]["objectives"], doc["input"]["weights"]) if w != 0]
    weights = [w for w in doc["input"]["weights"] if w != 0]
    total = sum(abs(w) for w in weights) or 1.0
    nominal = [abs(w) / total for w in weights]
    series = [("nominal weight share", nominal)]
    rows = [[n, pct(s)] for n, s in zip(names, nominal)]
    for lb, e in doc["estimators"].items():
        inf = e["influence"]
        r2 = inf.get("r2")
        shares = [(inf.get(n) / r2) if (r2 and inf.get(n) is not None) else None for n in names]
        series.append((f"{lb} influence share", shares))
        for row, v in zip(rows, shares):
            row.append(pct(v))
    gaps = [(abs(v - nominal[i]), lb, names[i], v, nominal[i]) for lb, vals in series[1:] for i, v in enumerate(vals) if v is not None]
    if gaps:
        _, lb, n, v, w = max(gaps)
        reading = f"{n} drives {pct(v)} of {lb.replace(' influence share', '')}'s explained update against a nominal {pct(w)} weight share"
    else:
        reading = "no within-group variance of the advantage to explain"
    svg = _bars(names, series, "share", "Influence against nominal weights", True)
    return figure("influence", "Influence shares against nominal weights", reading, svg,
                  table(["objective", "nominal", *[lb for lb, _ in series[1:]]], rows))


def chart_sign_flips(doc) -> str:
    names = doc["input"]["objectives"]
    series = [(lb, [e["sign_flip"].get(n) for n in names]) for lb, e in doc["estimators"].items()]
    known = [(v, lb, names[i]) for lb, vals in series for i, v in enumerate(vals) if v is not None]
    reading = (f"{known and max(known)[1]} pushes {pct(max(known)[0])} of rows against {max(known)[2]}, the most of any estimator and objective"
               if known else "no row where an objective and the advantage both take a side")
    rows = [[n, *[pct(vals[i]) for _, vals in series]] for i, n in enumerate(names)]
    return figure("sign-flips", "Sign-flip rate per objective and estimator", reading,
                  _bars(names, series, "rows pushed against the objective", "Sign flips", True),
                  table(["objective", *[lb for lb, _ in series]], rows))


def chart_scatter(doc, fig) -> str:
    sc = fig.scatter
    if sc is None:
        return empty("scatter", "Two estimators, row by row", "needs two estimators (-e A -e B)")
    x, y, o = sc["x"], sc["y"], sc["outcome"]
    lim = float(max(np.abs(x).max(), np.abs(y).max(), 1e-9)) * 1.05
    p = Plot(-lim, lim, -lim, lim, f"A under {sc['a']}", f"A under {sc['b']}")
    p.axes()
    p.parts.append(f'<line x1="{p.X(-lim):.1f}" y1="{p.Y(-lim):.1f}" x2="{p.X(lim):.1f}" y2="{p.Y(lim):.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    colours = (PALETTE[3], "#999999", PALETTE[2])
    for xi, yi, oi in zip(x, y, o):
        p.parts.append(f'<circle cx="{p.X(xi):.1f}" cy="{p.Y(yi):.1f}" r="2.2" fill="{colours[oi]}" fill-opacity="0.6"/>')
    flipped = (np.sign(x) * np.sign(y)) < 0
    rows = [[OUTCOMES[k], int((o == k).sum()), int((flipped & (o == k)).sum())] for k in range(3)]
    reading = (f"{pct(flipped.mean() if flipped.size else None)} of the {len(x)} plotted rows get opposite signs from {sc['a']} and {sc['b']}; "
               f"colour: the row's combined reward against its group mean")
    svg = p.svg("scatter", [(name, colours[k]) for k, name in enumerate(OUTCOMES)])
    return figure("scatter", f"{sc['a']} against {sc['b']}, row by row", reading, svg,
                  table(["combined reward vs group mean", "rows plotted", "opposite signs"], rows))


def chart_trends(doc) -> str:
    by = doc.get("by") or {}
    if len(by) < 2:
        return empty("trends", "Per-step trends", "no --by column with two or more values (a step column is used when present)")
    keys = list(by)
    labels = list(doc["estimators"])
    series = []
    for lb in labels:
        series.append((f"{lb} zero-variance groups", [by[k]["estimators"][lb]["collapse"]["zero_variance_group_rate"] for k in keys]))
    series.append(("mixed-sign rows", [by[k]["conflict"]["mixed_sign_rate"] for k in keys]))
    weighted = [n for n, w in zip(doc["input"]["objectives"], doc["input"]["weights"]) if w != 0]
    if weighted and labels:
        first = weighted[0]
        series.append((f"{labels[0]} sign flips on {first}", [by[k]["estimators"][labels[0]]["sign_flip"].get(first) for k in keys]))
    top = max([v for _, vals in series for v in vals if v is not None] + [1e-9])
    p = Plot(0, max(len(keys) - 1, 1), 0, min(1.0, top * 1.15) if top <= 1 else top * 1.15, doc.get("by_column") or "slice", "rate")
    step = max(1, len(keys) // 10)
    p.axes(xticks=[(i, keys[i]) for i in range(0, len(keys), step)], percent_y=True)
    for s, (name, vals) in enumerate(series):
        pts = " ".join(f"{p.X(i):.1f},{p.Y(v):.1f}" for i, v in enumerate(vals) if v is not None)
        p.parts.append(f'<polyline fill="none" stroke="{PALETTE[s % 8]}" stroke-width="2" points="{pts}"/>')
    zs = series[0][1]
    known = [v for v in zs if v is not None]
    reading = (f"{series[0][0]}: {pct(known[0])} at {doc.get('by_column')} {keys[0]}, {pct(known[-1])} at {keys[-1]} "
               f"(range {pct(min(known))} to {pct(max(known))})" if known else "no live groups in the slices")
    rows = [[k, *[pct(vals[i]) for _, vals in series]] for i, k in enumerate(keys)]
    return figure("trends", f"Per-{doc.get('by_column')} trends", reading,
                  p.svg("trends", [(name, PALETTE[s % 8]) for s, (name, _) in enumerate(series)]),
                  table([doc.get("by_column") or "slice", *[n for n, _ in series]], rows))


def chart_budget(doc) -> str:
    """The expected share of live groups without gradient against the rollouts per prompt
    (log2 axis), with the observed share marked at the table's median group size."""
    b = doc.get("budget") or {}
    rates = {int(n): v for n, v in (b.get("zero_variance_rate") or {}).items() if v is not None}
    if not rates:
        return empty("budget", "Rollout budget", "no live groups")
    seen = b.get("observed_zero_variance_rate")
    median = doc["input"]["group_size"]["median"] or 2
    xs = [math.log2(n) for n in rates]
    lo, hi = min(xs + [math.log2(median)]), max(xs + [math.log2(median)])
    p = Plot(lo, hi, 0, min(1.0, max(list(rates.values()) + [seen or 0, b.get("target") or 0]) * 1.15 or 1.0),
             "rollouts per prompt (N)", "groups without gradient")
    p.axes(xticks=[(math.log2(n), str(n)) for n in rates], percent_y=True)
    pts = " ".join(f"{p.X(math.log2(n)):.1f},{p.Y(v):.1f}" for n, v in rates.items())
    p.parts.append(f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2" points="{pts}"/>')
    for n, v in rates.items():
        p.parts.append(f'<circle cx="{p.X(math.log2(n)):.1f}" cy="{p.Y(v):.1f}" r="3" fill="{PALETTE[0]}"/>')
    target = b.get("target")
    if target is not None:
        p.parts.append(f'<line x1="{ML}" y1="{p.Y(target):.1f}" x2="{W - MR}" y2="{p.Y(target):.1f}" stroke="{PALETTE[2]}" '
                       f'stroke-dasharray="5,4"/>')
    if seen is not None:
        x, y = p.X(math.log2(median)), p.Y(seen)
        p.parts.append(f'<path d="M{x - 6:.1f},{y:.1f} L{x:.1f},{y - 6:.1f} L{x + 6:.1f},{y:.1f} L{x:.1f},{y + 6:.1f} Z" '
                       f'fill="{PALETTE[3]}"/>')
    need = b.get("group_size_for_target")
    reading = (f"observed: {pct(seen)} of {b.get('live_groups')} live groups at a median of {num(median)} rollouts "
               f"(success: {b.get('success')}); the expected share falls to {pct(target)} or less at "
               + (f"{need} rollouts per prompt" if need is not None else "no N up to 1024"))
    rows = [[n, pct(v)] for n, v in rates.items()]
    return figure("budget", "Rollout budget", reading,
                  p.svg("rollout budget", [("expected, by N", PALETTE[0]), ("observed, at the median N", PALETTE[3]),
                                           ("target", PALETTE[2])]),
                  table(["N", "expected no-gradient groups"], rows))


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px} h3{font-size:15px;margin:0 0 4px}
.summary{color:#555} ul.findings li{margin:3px 0}
figure.chart{border:1px solid #ddd;border-radius:6px;padding:12px;margin:16px 0}
p.reading{margin:0 0 8px;color:#444;font-style:italic}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left} thead{background:#f4f4f4}
svg text{font-family:inherit;fill:#222}
"""

CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var svgs = Array.prototype.slice.call(document.querySelectorAll('figure.chart svg'));
  var shown = svgs.filter(function (s) {
    var r = s.getBoundingClientRect();
    return r.width > 100 && r.height > 100 && getComputedStyle(s).visibility !== 'hidden' && s.querySelectorAll('*').length > 5;
  });
  document.body.setAttribute('data-charts', String(svgs.length));
  document.body.setAttribute('data-charts-visible', String(shown.length));
});
"""


def made_by(doc: dict) -> str:
    """Which mocli (and which Polars, NumPy and Numba) made the report."""
    inp = doc.get("input", {})
    libs = ", ".join(f"{name} {version}" for name, version in inp.get("versions", {}).items())
    return f"made by mocli {inp.get('mocli_version', '?')}" + (f" ({libs})" if libs else "")


def page(title: str, body: str) -> str:
    """A self-contained HTML document around ``body``."""
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"{body}<script>{CHECK_SCRIPT}</script></body></html>\n"
    )


NOTEBOOK = "mocli-report"  # the class of the element a notebook cell shows


def fragment(body: str) -> str:
    """``body`` as one element for a notebook's output cell (``_repr_html_``): the page's
    style with every rule scoped to that element, so that the notebook's own look is left
    alone; no script."""
    def scope(m: re.Match) -> str:
        selectors = [sel.strip() for sel in m.group(1).split(",")]
        return ",".join(f".{NOTEBOOK}" if sel == "body" else f".{NOTEBOOK} {sel}" for sel in selectors) + "{"

    style = re.sub(r"([^{}]+)\{", scope, STYLE)
    return f'<div class="{NOTEBOOK}"><style>{style}</style>{body}</div>'


def render_html(report: Report, title: str = "mocli report", fig: Figures | None = None, notebook: bool = False) -> str:
    """The whole page: ``report`` and the data behind its pictures (``fig``, from
    ``analyze(..., figures=True)``; without it those two charts say so); ``notebook``: the
    same as one element for a notebook (:func:`fragment`)."""
    doc = report.to_dict()
    charts = [
        chart_distributions(doc, fig) if fig is not None else empty("distributions", "Advantage distributions", "no figure data"),
        chart_conflict(doc),
        chart_influence(doc),
        chart_sign_flips(doc),
        chart_scatter(doc, fig) if fig is not None else empty("scatter", "Two estimators, row by row", "no figure data"),
        chart_trends(doc),
        chart_budget(doc),
    ]
    found = findings(doc)
    items = "".join(f"<li>{esc(s)}</li>" for _, s in found) or "<li>nothing stands out</li>"
    eh, er = estimator_rows(doc)
    oh, orows = objective_rows(doc)
    body = (
        f"<h1>{esc(title)}</h1><p class=\"summary\">{esc(summary_line(doc))}</p>"
        f"<h2>What to look at first</h2><ul class=\"findings\">{items}</ul>"
        f"<h2>Charts</h2>{''.join(charts)}"
        f"<h2>Estimators</h2>{table(eh, er)}<h2>Objectives</h2>{table(oh, orows)}"
        f"<footer>{esc(made_by(doc))}</footer>"
    )
    return fragment(body) if notebook else page(title, body)


# ---------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------
def front_2d(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (both minimised), by x."""
    out: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not out or y < out[-1][1]:
            out.append((x, y))
    return out


def sweep_axes(doc: dict[str, Any]) -> tuple[list[str], dict[str, float | None]]:
    """The two metrics the chart plots: the first two that take more than one value over
    the candidates (else the first ones), and the metrics left out because every candidate
    has the same value (that value)."""
    cands = doc["sweep"]["candidates"]
    metrics_ = list(doc["sweep"]["metrics"])
    values = {m: {c["metrics"][m] for c in cands} for m in metrics_}
    varying = [m for m in metrics_ if len(values[m]) > 1]
    axes = (varying + [m for m in metrics_ if m not in varying])[:2]
    constant = {m: next(iter(values[m])) for m in metrics_ if m not in varying and m not in axes and values[m]}
    return axes, constant


def chart_sweep(doc: dict[str, Any], x_metric: str, y_metric: str | None, constant: dict[str, float | None] | None = None) -> str:
    sw = doc["sweep"]
    cands = sw["candidates"]
    labels = list(sw["estimators"])
    if y_metric is None:  # one metric: candidates ranked along the y axis
        ranked = sorted((c for c in cands if c["metrics"][x_metric] is not None), key=lambda c: c["metrics"][x_metric])
        pts = [(c["metrics"][x_metric], float(i + 1), c) for i, c in enumerate(ranked)]
        ylabel = "candidate (ranked)"
    else:
        pts = [(c["metrics"][x_metric], c["metrics"][y_metric], c) for c in cands
               if c["metrics"][x_metric] is not None and c["metrics"][y_metric] is not None]
        ylabel = y_metric
    if not pts:
        return empty("sweep", "Trade-off between candidates", f"{x_metric} is null for every candidate")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    padx, pady = 0.05 * (max(xs) - min(xs) or 1.0), 0.05 * (max(ys) - min(ys) or 1.0)
    p = Plot(min(xs) - padx, max(xs) + padx, min(ys) - pady, max(ys) + pady, x_metric, ylabel)
    p.axes()
    front = front_2d([(x, y) for x, y, _ in pts])
    if len(front) > 1:
        steps = [front[0]]
        for (x0, y0), (x1, y1) in zip(front, front[1:]):
            steps += [(x1, y0), (x1, y1)]
        line = " ".join(f"{p.X(x):.1f},{p.Y(y):.1f}" for x, y in steps)
        p.parts.append(f'<polyline fill="none" stroke="#333" stroke-width="1.5" stroke-dasharray="5 3" points="{line}"/>')
    for x, y, c in pts:
        colour = PALETTE[labels.index(c["estimator"]) % len(PALETTE)] if c["estimator"] in labels else "#999"
        title = esc(f"{c['estimator']}: {', '.join(f'{k}={v:g}' for k, v in c['weights'].items())}")
        ring = ' stroke="#111" stroke-width="1.5"' if c["pareto"] else ""
        p.parts.append(f'<circle cx="{p.X(x):.1f}" cy="{p.Y(y):.1f}" r="{5 if c["pareto"] else 3}" fill="{colour}" '
                       f'fill-opacity="0.75"{ring}><title>{title}</title></circle>')
        if c["current"]:
            p.parts.append(f'<circle cx="{p.X(x):.1f}" cy="{p.Y(y):.1f}" r="9" fill="none" stroke="{colour}" stroke-width="2"/>')
    left = len(cands) - len(pts)
    reading = (f"{len(pts)} candidates plotted{f' ({left} with a null metric left out)' if left else ''}; "
               f"outlined: Pareto-optimal over every metric; dashed line: the candidates no other beats on both plotted "
               f"metrics; large ring: the current weights. Lower is better on both axes."
               + "".join(f" {m} is {num(v)} for every candidate." for m, v in (constant or {}).items()))
    legend = [(lb, PALETTE[i % len(PALETTE)]) for i, lb in enumerate(labels)]
    objectives = list(sw["current"])
    rows = [[c["estimator"], *[f"{c['weights'][k]:g}" for k in objectives], *[num(c["metrics"][m]) for m in sw["metrics"]]]
            for c in cands if c["pareto"]][:30]
    return figure("sweep", f"Trade-off: {x_metric} against {ylabel}", reading, p.svg("sweep", legend),
                  table(["estimator", *objectives, *sw["metrics"]], rows))


def render_sweep_html(doc: dict[str, Any], title: str = "mocli sweep", notebook: bool = False) -> str:
    """The sweep's page: the trade-off between the first two metrics, the Pareto set and
    what moving to the best candidate changes (``notebook``: as one element)."""
    axes, constant = sweep_axes(doc)
    chart = chart_sweep(doc, axes[0], axes[1] if len(axes) > 1 else None, constant)
    n = len(doc["sweep"]["candidates"])
    k = sum(c["pareto"] for c in doc["sweep"]["candidates"])
    inp = doc["input"]
    summary = f"{inp['rows']} rows in {inp['groups']} groups; {n} candidates, {k} Pareto-optimal; every metric minimised"
    body = (
        f"<h1>{esc(title)}</h1><p class=\"summary\">{esc(summary)}</p>"
        f"<h2>What changes</h2><p>{esc(doc['sweep']['change'])}</p>"
        f"<h2>Charts</h2>{chart}"
        f"<footer>{esc(made_by(doc))}</footer>"
    )
    return fragment(body) if notebook else page(title, body)
