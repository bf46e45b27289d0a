"""Rendering reports for people: Rich tables for the terminal and Markdown. Reads the
report's dictionary; computes nothing."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..diagnostics.summary import (
    agreement_rows,
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
TEXT_HEADS = {"rewards", "text", "path", "estimator", "estimators", "group", "status", "objectives"}


def _rich_table(title: str, head: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 or h in TEXT_HEADS else "right", overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


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


def visuals(doc: dict[str, Any], figures) -> list[Any]:
    """Sparkline histograms per estimator, a discordance heatmap and per-slice trends:
    for a person at a terminal; the tables carry the same numbers."""
    parts: list[Any] = []
    if figures is not None:
        lo, hi = float(figures.edges[0]), float(figures.edges[-1])
        top = max((float(c.max()) for c in figures.histograms.values()), default=0.0)
        parts.append(Text(f"Advantage histograms (A from {lo:.3g} to {hi:.3g}, shared scale)", style="bold"))
        width = max(len(lb) for lb in figures.histograms)
        for lb, counts in figures.histograms.items():
            parts.append(Text(f"  {lb:<{width}}  {sparkline(list(counts), top)}"))
    names = doc["input"]["objectives"]
    disc = doc["conflict"]["discordance"]
    if len(names) >= 2:
        t = Table(title="Discordance heatmap (green agree, yellow unrelated, red opposed)", title_justify="left", title_style="bold")
        t.add_column("")
        for n in names:
            t.add_column(n, justify="center")
        for a in names:
            cells = []
            for b in names:
                v = None if a == b else disc.get(f"{a}|{b}", disc.get(f"{b}|{a}"))
                cells.append(Text("·" if a == b else fmt(v, True), style=f"black on {_heat(v)}" if v is not None else ""))
            t.add_row(a, *cells)
        parts.append(t)
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
        width = max(len(name) for name, _ in lines)
        for name, vals in lines:
            known = [v for v in vals if v is not None]
            span = f"{fmt(min(known), True)} to {fmt(max(known), True)}" if known else "–"
            parts.append(Text(f"  {name:<{width}}  {sparkline(vals, floor=1)}  {span}"))
    return parts


def rich_report(doc: dict[str, Any], title: str, flips: dict | None = None, figures=None, show_visuals: bool = False) -> Group:
    parts: list[Any] = [Text(title, style="bold"), Text(summary_line(doc)), Text("")]
    found = findings(doc)
    parts.append(Text("What to look at first", style="bold"))
    if found:
        for _, sentence in found:
            parts.append(Text("  • " + sentence, style="yellow"))
    else:
        parts.append(Text("  nothing stands out: no collapse, sign flips or strong conflicts above the report's thresholds", style="green"))
    parts.append(Text(""))
    if show_visuals:
        parts += visuals(doc, figures) + [Text("")]
    parts.append(_rich_table("Estimators", *estimator_rows(doc)))
    if doc.get("agreement"):
        parts.append(_rich_table("Agreement", *agreement_rows(doc)))
    if flips:
        parts.append(_rich_table("Rows that flip sign (most telling first)", *flip_table_rows(flips)))
    parts.append(_rich_table("Objectives", *objective_rows(doc)))
    if doc["conflict"]["discordance"]:
        parts.append(_rich_table(f"Conflict (mixed signs: {fmt(doc['conflict']['mixed_sign_rate'], True)} of rows)", *conflict_rows(doc)))
    if doc.get("by"):
        parts.append(_rich_table(f"By {doc.get('by_column')}", *slice_rows(doc)))
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
    if doc.get("by"):
        lines += [f"### By {doc.get('by_column')}", ""] + _md_table(*slice_rows(doc))
    return "\n".join(lines)


def check_rows(outcomes) -> tuple[list[str], list[list[str]]]:
    rows = [[o.status, o.label or "–", o.path, fmt(o.value), f"{o.expression.op} {o.expression.threshold:g}"] for o in outcomes]
    return ["status", "estimator", "path", "value", "fails if"], rows


def rich_check(outcomes) -> Table:
    t = _rich_table("mocli check", *check_rows(outcomes))
    return t


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


def rich_verify(doc: dict[str, Any]) -> Group:
    lines = verify_lines(doc)
    parts: list[Any] = [Text(lines[0], style="bold green" if doc["passed"] else "bold red")]
    parts += [Text(line, style="yellow" if line.startswith(("likely", "no known")) else "") for line in lines[1:]]
    if doc["worst_groups"]:
        parts.append(_rich_table("Worst groups", *worst_rows(doc)))
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
    con.print(Text(lines[0], style="bold"), soft_wrap=True)
    for line in lines[1:]:
        con.print(Text(line), soft_wrap=True)
    if "error" in doc:
        con.print("")
        return
    rewards = Table("reward", "weight", "direction", "missing")
    for n, r in doc["rewards"].items():
        rewards.add_row(n, f"{r['weight']:g}", r["direction"], str(r["missing"]))
    con.print(rewards)
    if doc["group_size_by_batch"]:
        con.print(_rich_table(f"Group sizes by {doc['batch']}", *_batch_rows(doc)))
    columns = Table("column", "type", "role")
    for name, info in doc["columns"].items():
        columns.add_row(name, info["type"], info["role"] or "")
    con.print(columns)


def markdown_inspect(doc: dict[str, Any]) -> list[str]:
    lines = [f"- {line}" for line in inspect_lines(doc)] + [""]
    if "error" in doc:
        return lines
    lines += _md_table(["reward", "weight", "direction", "missing"],
                       [[f"`{n}`", f"{r['weight']:g}", r["direction"], str(r["missing"])] for n, r in doc["rewards"].items()])
    if doc["group_size_by_batch"]:
        lines += _md_table(*_batch_rows(doc))
    return lines
