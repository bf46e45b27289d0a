"""Rendering reports for people: Rich tables for the terminal and Markdown. Reads the
report's dictionary; computes nothing."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.cells import cell_len
from rich.text import Text

from ..diagnostics.summary import (
    aggregation_line,
    aggregation_rows,
    agreement_rows,
    budget_rows,
    budget_title,
    conflict_rows,
    estimator_rows,
    findings,
    flip_table_rows,
    fmt,
    objective_rows,
    slice_rows,
    summary_line,
)

# ---------------------------------------------------------------------------------------
# Rich and Markdown
# ---------------------------------------------------------------------------------------
TEXT_HEADS = {"rewards", "text", "path", "estimator", "estimators", "group", "status", "objectives", "loss aggregation", "type", "role",
              "direction"}
PAIR_HEADS = {"objectives", "estimators"}  # "a|b" pairs: shown as "a | b", so that a long pair wraps between its names
WRAPPED_HEADS = {"rewards", "text"} | PAIR_HEADS  # may wrap between words; every other cell stays on one line
WIDE = 160  # the width a report is laid out for when the caller names none


def _edges(n: int) -> int:
    """What a Rich table with n columns adds to its cells' widths (borders and padding)."""
    return 3 * n + 1


def _widths(head: Sequence[str], rows: Sequence[Sequence[str]], width: int,
            wrapped_heads: frozenset[str] | set[str] = WRAPPED_HEADS) -> list[int] | None:
    """Column widths that fit ``width`` without breaking a word: a cell stays on one line
    (free-text columns wrap between words) and a header may wrap between its words;
    None when even that does not fit."""
    cols = list(zip(head, *rows)) if rows else [(h,) for h in head]
    least, most = [], []
    for h, *cells in cols:
        words = [w for c in cells for w in c.split()] if h in wrapped_heads else cells
        least.append(max([cell_len(w) for w in words] + [cell_len(w) for w in h.split()] + [1]))
        most.append(max([cell_len(c) for c in cells] + [cell_len(h), 1]))
    room = width - _edges(len(head)) - sum(least)
    if room < 0:
        return None
    out = list(least)
    wrapped = [i for i, h in enumerate(head) if h in wrapped_heads]
    for i in [i for i in range(len(out)) if i not in wrapped] + wrapped:  # one-line cells first, then free text
        share = room if i not in wrapped else max(room * (most[i] - out[i]) // max(1, sum(most[j] - out[j] for j in wrapped if j >= i)), 1)
        grow = min(room, share, most[i] - out[i])
        out[i] += grow
        room -= grow
    return out


def _table(title: str | None, head: Sequence[str], rows: Sequence[Sequence[str]], widths: list[int] | None,
           prose: bool = False) -> Table:
    """``prose``: every column left-aligned, a line between rows (a listing)."""
    t = Table(title=title, title_justify="left", title_style="bold", show_lines=prose)
    for i, h in enumerate(head):
        # a column is at least as wide as its longest value (free text: its longest word),
        # so only free text and headers ever wrap, and only between words
        t.add_column(h, justify="left" if prose or i == 0 or h in TEXT_HEADS else "right", width=None if widths is None else widths[i],
                     overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def _transposed(head: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    return [head[0], *(r[0] for r in rows)], [[h, *(r[i] for r in rows)] for i, h in enumerate(head) if i > 0]


def _rich_tables(title: str, head: Sequence[str], rows: Iterable[Sequence[str]], width: int | None = None,
                 transpose: bool = False) -> list[Table]:
    """One table when it fits ``width``; else (``transpose``: entries as columns first)
    the columns after the first split over several tables that each fit, the first column
    repeated. Names are never cut: a column is as wide as its longest value."""
    rows = [list(r) for r in rows]
    head = list(head)
    if head[0] in PAIR_HEADS:
        rows = [[r[0].replace("|", " | "), *r[1:]] for r in rows]
    width = width or WIDE
    widths = _widths(head, rows, width)
    if widths is not None:
        return [_table(title, head, rows, widths)]
    if transpose:
        head, rows = _transposed(head, rows)
        widths = _widths(head, rows, width)
        if widths is not None:
            return [_table(title, head, rows, widths)]
    parts: list[list[int]] = []
    for i in range(1, len(head)):
        if parts and _widths([head[j] for j in [0, *parts[-1], i]], [[r[j] for j in [0, *parts[-1], i]] for r in rows], width):
            parts[-1].append(i)
        else:
            parts.append([i])
    tables = []
    for k, part in enumerate(parts):
        keep = [0, *part]
        sub_head, sub_rows = [head[j] for j in keep], [[r[j] for j in keep] for r in rows]
        tables.append(_table(title if k == 0 else f"{title} (continued)", sub_head, sub_rows, _widths(sub_head, sub_rows, width)))
    return tables


def rich_listing(title: str, head: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> Any:
    """A listing of entries (estimators, schemes, profiles) whose cells are prose: a table
    when every word fits its column, else one block per entry (name, then each field)."""
    width = width or WIDE
    widths = _widths(head, rows, width, wrapped_heads=set(head[1:]))
    if widths is not None:
        return _table(title, head, rows, widths, prose=True)
    parts: list[Any] = [Text(title, style="bold")]
    for row in rows:
        parts.append(Text(row[0], style="bold"))
        for h, cell in zip(head[1:], row[1:]):
            if cell:
                text = cell.replace("\n", ", ")
                parts.append(Padding(Text(text if h == head[1] else f"{h}: {text}"), (0, 0, 0, 2)))
    return Group(*parts)


def _rich_table(title: str | None, head: Sequence[str], rows: Iterable[Sequence[str]], width: int | None = None) -> Table:
    """A table that is expected to fit (check, verify, inspect): laid out like the others."""
    rows = [list(r) for r in rows]
    return _table(title, head, rows, _widths(head, rows, width or WIDE))


BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], top: float | None = None, floor: int = 0) -> str:
    """Block characters, one per value, scaled to ``top`` (default: the largest value);
    ``floor=1`` draws a zero as the lowest block instead of a blank."""
    known = [v for v in values if v is not None]
    top = top if top is not None else (max(known) if known else 0.0)
    if not top:
        return BLOCKS[floor] * len(values)
    return "".join(" " if v is None else BLOCKS[min(8, max(floor if v <= 0 else 1, round(8 * v / top)))] for v in values)


def _heat(v: float | None) -> str:
    if v is None:
        return "grey50"
    return "green" if v < 0.35 else ("yellow" if v < 0.6 else "red")


def _squeeze(values: Sequence[float | None], size: int) -> list[float | None]:
    """At most ``size`` values: consecutive ones averaged (unknown ones left out)."""
    if len(values) <= size:
        return list(values)
    out: list[float | None] = []
    for k in range(size):
        part = [v for v in values[k * len(values) // size:(k + 1) * len(values) // size] if v is not None]
        out.append(sum(part) / len(part) if part else None)
    return out


def _heatmap(names: list[str], disc: dict, width: int) -> Table:
    """Objectives against objectives; numbered when the names side by side would not fit."""
    numbered = cell_len(" ".join(names)) + max(map(cell_len, names)) + _edges(len(names) + 1) > width
    heads = [str(k + 1) for k in range(len(names))] if numbered else names
    t = Table(title="Discordance heatmap (green agree, yellow unrelated, red opposed)", title_justify="left", title_style="bold")
    t.add_column("", no_wrap=True)
    for h in heads:
        t.add_column(h, justify="center", no_wrap=True)
    for k, a in enumerate(names):
        cells = []
        for b in names:
            v = None if a == b else disc.get(f"{a}|{b}", disc.get(f"{b}|{a}"))
            cells.append(Text("·" if a == b else fmt(v, True), style=f"black on {_heat(v)}" if v is not None else ""))
        t.add_row(f"{k + 1} {a}" if numbered else a, *cells)
    return t


def visuals(doc: dict[str, Any], figures, width: int | None = None) -> list[Any]:
    """Sparkline histograms per estimator, a discordance heatmap and per-slice trends:
    for a person at a terminal; the tables carry the same numbers."""
    width = width or WIDE
    parts: list[Any] = []
    if figures is not None:
        lo, hi = float(figures.edges[0]), float(figures.edges[-1])
        top = max((float(c.max()) for c in figures.histograms.values()), default=0.0)
        parts.append(Text(f"Advantage histograms (A from {lo:.3g} to {hi:.3g}, shared scale)", style="bold"))
        label = max(len(lb) for lb in figures.histograms)
        for lb, counts in figures.histograms.items():
            parts.append(Text(f"  {lb:<{label}}  {sparkline(list(counts), top)}", no_wrap=True, overflow="crop"))
    names = doc["input"]["objectives"]
    disc = doc["conflict"]["discordance"]
    if len(names) >= 2:
        parts.append(_heatmap(names, disc, width))
    by = doc.get("by") or {}
    if len(by) >= 2:
        keys = list(by)
        parts.append(Text(f"Trends over {doc.get('by_column')} ({keys[0]} … {keys[-1]})", style="bold"))
        weighted = [n for n, w in zip(names, doc["input"]["weights"]) if w != 0]
        lines = []
        for lb in doc["estimators"]:
            zv = [by[k]["estimators"][lb]["collapse"]["zero_variance_group_rate"] for k in keys]
            lines.append((f"{lb} zero-variance groups", zv))
            for n in weighted[:2]:
                lines.append((f"{lb} sign flips on {n}", [by[k]["estimators"][lb]["sign_flip"].get(n) for k in keys]))
        label = max(len(name) for name, _ in lines)
        for name, vals in lines:
            known = [v for v in vals if v is not None]
            span = f"{fmt(min(known), True)} to {fmt(max(known), True)}" if known else "–"
            room = max(8, width - label - len(span) - 6)  # the sparkline gives way: averaged over neighbours
            parts.append(Text(f"  {name:<{label}}  {sparkline(_squeeze(vals, room), floor=1)}  {span}"))
    return parts


def _bullets(sentences: list[str], style: str) -> Table:
    """A bulleted list whose wrapped lines stay indented under their sentence."""
    t = Table.grid(padding=(0, 1))
    t.add_column(no_wrap=True)
    t.add_column()
    for sentence in sentences:
        t.add_row("  •", Text(sentence, style=style))
    return t


def rich_report(doc: dict[str, Any], title: str, flips: dict | None = None, figures=None, show_visuals: bool = False,
                width: int | None = None) -> Group:
    """The terminal report, laid out for ``width`` columns (no table wider, no name cut)."""
    parts: list[Any] = [Text(title, style="bold"), Text(summary_line(doc)), Text("")]
    found = findings(doc)
    parts.append(Text("What to look at first", style="bold"))
    if found:
        parts.append(_bullets([sentence for _, sentence in found], "yellow"))
    else:
        parts.append(_bullets(["nothing stands out: no collapse, sign flips or strong conflicts above the report's thresholds"], "green"))
    parts.append(Text(""))
    if show_visuals:
        parts += visuals(doc, figures, width) + [Text("")]
    parts += _rich_tables("Estimators", *estimator_rows(doc), width)
    if doc.get("agreement"):
        parts += _rich_tables("Agreement", *agreement_rows(doc), width)
    if flips:
        parts += _rich_tables("Rows that flip sign (most telling first)", *flip_table_rows(flips), width)
    parts += _rich_tables("Objectives", *objective_rows(doc), width, transpose=True)
    if doc["conflict"]["discordance"]:
        parts += _rich_tables(f"Conflict (mixed signs: {fmt(doc['conflict']['mixed_sign_rate'], True)} of rows)", *conflict_rows(doc), width)
    if any("aggregation" in e for e in doc["estimators"].values()):
        parts += _rich_tables("Loss aggregation (how each mode spreads A over a row's tokens)", *aggregation_rows(doc), width)
        line = aggregation_line(doc)
        if line:
            parts.append(Text(line))
    if doc.get("budget") and doc["budget"]["live_groups"]:
        parts += _rich_tables(budget_title(doc), *budget_rows(doc), width, transpose=True)
    if doc.get("by"):
        parts += _rich_tables(f"By {doc.get('by_column')}", *slice_rows(doc), width)
    return Group(*parts)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return lines + [""]


def markdown_report(doc: dict[str, Any], title: str, flips: dict | None = None) -> str:
    lines = [f"## {title}", "", summary_line(doc), "", "### What to look at first", ""]
    found = findings(doc)
    lines += [f"- {s}" for _, s in found] or ["- nothing stands out"]
    lines += ["", "### Estimators", ""] + _md_table(*estimator_rows(doc))
    if doc.get("agreement"):
        lines += ["### Agreement", ""] + _md_table(*agreement_rows(doc))
    if flips:
        lines += ["### Rows that flip sign", ""] + _md_table(*flip_table_rows(flips))
    lines += ["### Objectives", ""] + _md_table(*objective_rows(doc))
    if doc["conflict"]["discordance"]:
        lines += [f"### Conflict (mixed signs: {fmt(doc['conflict']['mixed_sign_rate'], True)} of rows)", ""] + _md_table(*conflict_rows(doc))
    if any("aggregation" in e for e in doc["estimators"].values()):
        line = aggregation_line(doc)
        lines += ["### Loss aggregation", ""] + _md_table(*aggregation_rows(doc)) + ([line, ""] if line else [])
    if doc.get("budget") and doc["budget"]["live_groups"]:
        lines += [f"### {budget_title(doc)}", ""] + _md_table(*budget_rows(doc))
    if doc.get("by"):
        lines += [f"### By {doc.get('by_column')}", ""] + _md_table(*slice_rows(doc))
    return "\n".join(lines)


def check_rows(outcomes) -> tuple[list[str], list[list[str]]]:
    rows = [[o.status, o.label or "–", o.path, fmt(o.value), f"{o.expression.op} {o.expression.threshold:g}"] for o in outcomes]
    return ["status", "estimator", "path", "value", "fails if"], rows


def rich_check(outcomes, width: int | None = None) -> Any:
    """A table, or where its paths do not fit the width, one line per check."""
    head, rows = check_rows(outcomes)
    widths = _widths(head, rows, width or WIDE)
    if widths is not None:
        return _table("mocli check", head, rows, widths)
    nbsp = "\u00a0"  # "(fails if > 0.2)" stays on one line
    lines = [Text(f"{status}  {label}  {path} = {value}  (fails if {rule})".replace(" if ", f"{nbsp}if{nbsp}").replace(rule, rule.replace(" ", nbsp)),
                  style="red" if status == "fail" else "")
             for status, label, path, value, rule in rows]
    return Group(Text("mocli check", style="bold"), *lines)


# ---------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------
def verify_lines(doc: dict[str, Any]) -> list[str]:
    verdict = "agree" if doc["passed"] else "DIFFER"
    lines = [
        f"{doc['estimator']} under profile {doc['profile']}: logged and recomputed advantages {verdict} "
        f"(tolerance {doc['tol']:g})",
        f"{doc['rows']} rows compared; max |diff| {doc['max_abs_diff']:.3g}, mean |diff| {doc['mean_abs_diff']:.3g}, "
        f"{fmt(doc['beyond_tol_rate'], True)} of rows beyond tolerance",
    ]
    for h in doc["hints"]:
        tag = "reproduces the log" if h["reproduces_log"] else "closest variation"
        lines.append(f"likely cause ({tag}, max |diff| {h['max_abs_diff']:.3g}): {h['likely_cause']}")
    if not doc["passed"] and not doc["hints"]:
        lines.append("no known variation (eps, ddof, std scaling, whitening, baseline, singletons) reproduces the log")
    return lines


def worst_rows(doc) -> tuple[list[str], list[list[str]]]:
    rows = []
    long = lambda v: "–" if v is None else f"{v:.7g}"
    for g in doc["worst_groups"][:3]:
        for r in g["rows"]:
            rows.append([fmt(g["group"]), fmt(r["row"]), long(r["logged"]), long(r["recomputed"]),
                         ", ".join(fmt(v) for v in r["rewards"])])
    return ["group", "row", "logged", "recomputed", "rewards"], rows


def rich_verify(doc: dict[str, Any], width: int | None = None) -> Group:
    lines = verify_lines(doc)
    parts: list[Any] = [Text(lines[0], style="bold green" if doc["passed"] else "bold red")]
    parts += [Text(line, style="yellow" if line.startswith(("likely", "no known")) else "") for line in lines[1:]]
    if doc["worst_groups"]:
        parts.append(_rich_table("Worst groups", *worst_rows(doc), width))
    return Group(*parts)


def markdown_verify(doc: dict[str, Any]) -> str:
    out = ["## mocli verify", ""] + [f"- {line}" for line in verify_lines(doc)] + [""]
    if doc["worst_groups"]:
        out += ["### Worst groups", ""] + _md_table(*worst_rows(doc))
    return "\n".join(out)


def inspect_lines(doc: dict[str, Any]) -> list[str]:
    """The summary lines of ``mocli inspect`` (one file or one layout)."""
    if "error" in doc:
        return [f"{', '.join(doc['files'])}: {doc['error']}"]
    gs = doc["group_size"]
    lines = [
        f"{doc['rows']} rows in {len(doc['files'])} file(s)"
        + (f", written by {doc['source']}" if doc.get("source") else "")
        + f"; profile {doc['profile']}",
        f"groups: {doc['group_rule']}: {doc['groups']} groups, size min {gs['min']} / median {fmt(gs['median'])} / max {gs['max']}, "
        f"{doc['singleton_groups']} singletons",
        f"training batch: {doc['batch']}; trained scalar: {doc['trained_scalar']}"
        + (f"; logged advantage: {doc['logged']}" if doc.get("logged") else ""),
    ]
    if len(doc["files"]) == 1 and not doc.get("source"):
        lines[0] = f"{doc['files'][0]}: " + lines[0]
    return lines


def _batch_rows(doc) -> tuple[list[str], list[list[str]]]:
    rows = [[k, str(v["groups"]), str(v["min"]), fmt(v["median"]), str(v["max"])] for k, v in doc["group_size_by_batch"].items()]
    return [doc["batch"], "groups", "min size", "median size", "max size"], rows


def rich_inspect(con, doc: dict[str, Any]) -> None:
    lines = inspect_lines(doc)
    con.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        con.print(Text(line))
    if "error" in doc:
        con.print("")
        return
    rewards = [[n, f"{r['weight']:g}", r["direction"], str(r["missing"])] for n, r in doc["rewards"].items()]
    con.print(_rich_table(None, ["reward", "weight", "direction", "missing"], rewards, con.width))
    if doc["group_size_by_batch"]:
        con.print(_rich_table(f"Group sizes by {doc['batch']}", *_batch_rows(doc), con.width))
    columns = [[name, info["type"], info["role"] or ""] for name, info in doc["columns"].items()]
    con.print(_rich_table(None, ["column", "type", "role"], columns, con.width))


def markdown_inspect(doc: dict[str, Any]) -> list[str]:
    lines = [f"- {line}" for line in inspect_lines(doc)] + [""]
    if "error" in doc:
        return lines
    lines += _md_table(["reward", "weight", "direction", "missing"],
                       [[f"`{n}`", f"{r['weight']:g}", r["direction"], str(r["missing"])] for n, r in doc["rewards"].items()])
    if doc["group_size_by_batch"]:
        lines += _md_table(*_batch_rows(doc))
    return lines


# ---------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------
def sweep_rows(doc: dict[str, Any], top: int = 20) -> tuple[list[str], list[list[str]], int]:
    """The Pareto set (its first ``top``), then any candidate with the current weights
    that is not in it; the mark column says which is which. Also how many Pareto
    candidates were left out."""
    sw = doc["sweep"]
    objectives = list(sw["current"])
    head = ["estimator", "", *objectives, *sw["metrics"]]
    pareto = [c for c in sw["candidates"] if c["pareto"]]
    shown = pareto[:top]
    shown += [c for c in sw["candidates"] if c["current"] and c not in shown]
    best = sw["best"]
    rows = []
    for c in shown:
        marks = [m for m, on in (("best", c == best), ("current", c["current"]), ("pareto", c["pareto"] and c != best)) if on]
        rows.append([c["estimator"], " ".join(marks), *[f"{c['weights'][k]:g}" for k in objectives],
                     *[fmt(c["metrics"][m]) for m in sw["metrics"]]])
    return head, rows, max(0, len(pareto) - top)


def sweep_title(doc: dict[str, Any]) -> str:
    sw = doc["sweep"]
    n = len(sw["candidates"])
    k = sum(c["pareto"] for c in sw["candidates"])
    return (f"mocli sweep: {k} of {n} candidates are Pareto-optimal "
            f"({len(sw['estimators'])} estimator{'s' * (len(sw['estimators']) != 1)}; every metric minimised)")


def rich_sweep(doc: dict[str, Any], top: int = 20, width: int | None = None) -> Group:
    head, rows, left = sweep_rows(doc, top)
    if _widths(head, rows, width or WIDE) is None:  # too wide: a long metric path may wrap after a dot
        head = [h.replace(".", ".\n") for h in head]
    parts: list[Any] = [*_rich_tables(sweep_title(doc), head, rows, width)]
    if left:
        parts.append(Text(f"{left} more Pareto-optimal candidates: --top {top + left} shows them, --format json lists all"))
    parts.append(Text(doc["sweep"]["change"]))
    return Group(*parts)


def markdown_sweep(doc: dict[str, Any], top: int = 20) -> str:
    head, rows, left = sweep_rows(doc, top)
    lines = [f"## {sweep_title(doc)}", ""] + _md_table(head, rows)
    if left:
        lines += [f"{left} more Pareto-optimal candidates are listed by `--format json`.", ""]
    return "\n".join(lines + [doc["sweep"]["change"]])
