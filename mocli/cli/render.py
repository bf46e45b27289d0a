"""Rendering reports for people: Rich tables for the terminal and Markdown. Reads the
report's dictionary; computes nothing."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

RATE_PREFIXES = ("collapse.", "sign_flip.", "silenced.", "interference.", "pareto.")


def fmt(value: Any, rate: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{100 * value:.1f}%" if rate else f"{value:.4g}"
    return str(value)


# ---------------------------------------------------------------------------------------
# findings: what is wrong first
# ---------------------------------------------------------------------------------------
def findings(doc: dict[str, Any], limit: int = 8) -> list[tuple[float, str]]:
    """The most serious problems, as ``(severity, sentence)``, worst first."""
    out: list[tuple[float, str]] = []
    weights = dict(zip(doc["input"]["objectives"], doc["input"]["weights"]))
    for label, e in doc["estimators"].items():
        c = e["collapse"]
        if (c["zero_variance_group_rate"] or 0) >= 0.1:
            out.append((c["zero_variance_group_rate"], f"{label}: {fmt(c['zero_variance_group_rate'], True)} of live groups give no gradient (every advantage is zero)"))
        if (c["masked_signal_group_rate"] or 0) > 0:
            out.append((0.5 + c["masked_signal_group_rate"], f"{label}: in {fmt(c['masked_signal_group_rate'], True)} of live groups an objective varies but every advantage is zero (a real signal is erased)"))
        if c["resolution"] is not None and c["resolution"] < 0.9:
            out.append((1 - c["resolution"], f"{label}: only {fmt(c['resolution'], True)} of distinct reward outcomes keep distinct advantages (resolution)"))
        for name, v in e["sign_flip"].items():
            if v is not None and v >= 0.05 and weights.get(name, 0) != 0:
                out.append((v, f"{label} pushes {fmt(v, True)} of rows against {name} (sign flip)"))
        for name, v in e["silenced"].items():
            if v is not None and v >= 0.1 and weights.get(name, 0) != 0:
                out.append((0.8 * v, f"{label} gives zero advantage to {fmt(v, True)} of the rows where {name} takes a side (silenced)"))
        for name, v in e["interference"].items():
            if v is not None and v >= 0.2 and weights.get(name, 0) != 0:
                out.append((0.7 * v, f"{label} makes {name} worse to first order in {fmt(v, True)} of the groups where both vary (interference)"))
        p = e["pareto"]["order_violation_rate"]
        if p is not None and p > 0:
            out.append((0.5 + p, f"{label} ranks a Pareto-dominated row above its dominator in {fmt(p, True)} of dominance pairs"))
    for pair, v in doc["conflict"]["discordance"].items():
        if v is not None and v >= 0.5:
            a, b = pair.split("|", 1)
            out.append((v, f"{a} and {b} order {fmt(v, True)} of row pairs oppositely (discordance)"))
    m = doc["conflict"]["mixed_sign_rate"]
    if m is not None and m >= 0.3:
        out.append((0.8 * m, f"{fmt(m, True)} of rows have one objective above its group mean and another below (mixed signs)"))
    for name, o in doc["objectives"].items():
        z = o.get("zero_variance_group_rate")
        if z is not None and z >= 0.5 and weights.get(name, 0) != 0:
            out.append((0.6 * z, f"{name} is constant within {fmt(z, True)} of groups (saturated {fmt(o['all_max_group_rate'], True)}, starved {fmt(o['all_min_group_rate'], True)})"))
    out.sort(key=lambda t: -t[0])
    return out[:limit]


# ---------------------------------------------------------------------------------------
# rows of the tables (shared by Rich and Markdown)
# ---------------------------------------------------------------------------------------
def summary_line(doc: dict[str, Any]) -> str:
    i = doc["input"]
    gs = i["group_size"]
    return (
        f"{i['rows']} rows, {i['groups']} groups ({i['live_groups']} live, {i['singleton_groups']} singletons, "
        f"sizes {gs['min']}–{gs['max']}, median {fmt(gs['median'])}), {i['unscorable_rows']} unscorable rows; "
        f"objectives " + ", ".join(f"{n}×{fmt(w)}" for n, w in zip(i["objectives"], i["weights"]))
    )


def objective_rows(doc) -> tuple[list[str], list[list[str]]]:
    head = ["objective", "count", "missing", "mean", "std", "min", "max", "distinct", "const groups", "saturated", "starved", "within share"]
    rows = []
    for name, o in doc["objectives"].items():
        rows.append([name, fmt(o["count"]), fmt(o["missing_rate"], True), fmt(o["mean"]), fmt(o["std"]), fmt(o["min"]),
                     fmt(o["max"]), fmt(o["distinct"]), fmt(o["zero_variance_group_rate"], True),
                     fmt(o["all_max_group_rate"], True), fmt(o["all_min_group_rate"], True),
                     fmt(o["within_group_variance_share"], True)])
    return head, rows


def conflict_rows(doc) -> tuple[list[str], list[list[str]]]:
    c = doc["conflict"]
    rows = [[pair, fmt(c["discordance"][pair], True), fmt(c["correlation"][pair])] for pair in c["discordance"]]
    return ["objectives", "discordance", "within-group correlation"], rows


def estimator_rows(doc) -> tuple[list[str], list[list[str]]]:
    labels = list(doc["estimators"])
    paths: list[tuple[str, str, bool]] = [
        ("advantage std", "advantage.std", False),
        ("advantage zero rate", "advantage.zero_rate", True),
        ("zero-variance groups", "collapse.zero_variance_group_rate", True),
        ("dead rows", "collapse.dead_row_rate", True),
        ("masked-signal groups", "collapse.masked_signal_group_rate", True),
        ("collapsed pairs", "collapse.collapsed_pair_rate", True),
        ("resolution", "collapse.resolution", True),
    ]
    first = doc["estimators"][labels[0]] if labels else {}
    for section, title in (("sign_flip", "sign flip"), ("silenced", "silenced"), ("interference", "interference"), ("influence", "influence")):
        for name in first.get(section, {}):
            paths.append((f"{title} {name}", f"{section}.{name}", section != "influence"))
    paths += [("dominated winners", "pareto.dominated_winner_rate", True), ("order violations", "pareto.order_violation_rate", True)]
    if "length" in first:
        paths += [("length corr", "length.corr", False), ("length within-group corr", "length.within_corr", False),
                  ("mean length A>0", "length.mean_length_positive", False), ("mean length A<0", "length.mean_length_negative", False)]
    rows = []
    for title, path, is_rate in paths:
        row = [title]
        for label in labels:
            node: Any = doc["estimators"][label]
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            row.append(fmt(node, is_rate))
        rows.append(row)
    return ["metric", *labels], rows


def agreement_rows(doc) -> tuple[list[str], list[list[str]]]:
    rows = [[pair, fmt(a["sign_agreement"], True), fmt(a["flipped_rows"]), fmt(a["rank_agreement"])]
            for pair, a in (doc.get("agreement") or {}).items()]
    return ["estimators", "sign agreement", "flipped rows", "rank agreement (tau-b)"], rows


def slice_rows(doc) -> tuple[list[str], list[list[str]]]:
    labels = list(doc["estimators"])
    head = [doc.get("by_column") or "slice", "rows", "live groups", "mixed signs"] + [f"{lb} zero-var" for lb in labels]
    rows = []
    for value, sub in doc.get("by", {}).items():
        rows.append([value, fmt(sub["input"]["rows"]), fmt(sub["input"]["live_groups"]), fmt(sub["conflict"]["mixed_sign_rate"], True)]
                    + [fmt(sub["estimators"].get(lb, {}).get("collapse", {}).get("zero_variance_group_rate"), True) for lb in labels])
    return head, rows


def flip_table_rows(flips: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for pair, entries in flips.items():
        a, b = pair.split("|", 1)
        for e in entries:
            text = " / ".join(str(e[c]) for c in ("prompt", "question", "input", "completion", "response", "output", "text") if c in e)
            rewards = ", ".join(f"{k}={fmt(v)}" for k, v in e["rewards"].items())
            rows.append([pair, fmt(e.get("group")), fmt(e[a]), fmt(e[b]), rewards, text])
    return ["estimators", "group", "A (first)", "A (second)", "rewards", "text"], rows


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


def rich_report(doc: dict[str, Any], title: str, flips: dict | None = None) -> Group:
    parts: list[Any] = [Text(title, style="bold"), Text(summary_line(doc)), Text("")]
    found = findings(doc)
    parts.append(Text("What to look at first", style="bold"))
    if found:
        for _, sentence in found:
            parts.append(Text("  • " + sentence, style="yellow"))
    else:
        parts.append(Text("  nothing stands out: no collapse, sign flips or strong conflicts above the report's thresholds", style="green"))
    parts.append(Text(""))
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
