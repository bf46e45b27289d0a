"""Text summaries of a report shared by every face (terminal, Markdown, HTML): the findings
("what is wrong first"), the summary line and the rows of each table. Strings only; no
rendering, no computing."""

from __future__ import annotations

from typing import Any


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
    for label, e in doc["estimators"].items():
        found = cheapest_long_wrong(e)
        if found is not None and found[1] <= -0.3:
            mode, v = found
            out.append((0.5 * -v, f"{label} under {mode} ({AGGREGATION_NAMES[mode]}): the longer a wrong answer, the less "
                                  f"each of its tokens is pushed down (correlation {fmt(v)}; aggregation)"))
    b = doc.get("budget") or {}
    seen = b.get("observed_zero_variance_rate")
    need = b.get("group_size_for_target")
    median = doc["input"]["group_size"]["median"]
    # with the default success (an objective at its best value) only a pass/fail objective
    # says something: a continuous reward rarely reaches its best in more than one row
    default = b.get("success", "").startswith(f"{b.get('objective')} at its ")
    pass_fail = (doc["objectives"].get(b.get("objective")) or {}).get("distinct", 0) <= 2
    if seen is not None and seen >= 0.1 and need is not None and median is not None and need > median \
            and (pass_fail or not default):
        out.append((0.7 * seen, f"{fmt(seen, True)} of live groups have every rollout succeed or every one fail "
                                f"({b['success']}); with {need} rollouts per prompt (median now {fmt(median)}) the expected "
                                f"share would be {fmt(b['target'], True)} or less (budget)"))
    out.sort(key=lambda t: -t[0])
    # what may make every number above wrong comes first, whatever the limit
    warned = [(float("inf"), f"warning: {w}") for w in doc["input"].get("warnings", [])]
    return warned + out[:limit]


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


AGGREGATION_NAMES = {"token_mean": "verl token-mean, TRL dapo", "seq_mean_token_mean": "verl's default, TRL grpo",
                     "seq_mean_token_sum_norm": "verl seq-mean-token-sum-norm, TRL dr_grpo"}


def cheapest_long_wrong(entry: dict[str, Any]) -> tuple[str, float] | None:
    """The loss aggregation under which long wrong answers are pushed down least per token
    (the most negative length_corr_negative), with that correlation."""
    corr = {m: a["length_corr_negative"] for m, a in (entry.get("aggregation") or {}).items()
            if a["length_corr_negative"] is not None}
    if not corr:
        return None
    mode = min(corr, key=corr.get)
    return mode, corr[mode]


def aggregation_line(doc) -> str | None:
    """One sentence per estimator: which aggregation makes long wrong answers cheapest."""
    parts = []
    for label, e in doc["estimators"].items():
        found = cheapest_long_wrong(e)
        if found is not None:
            mode, v = found
            parts.append(f"{label}: {mode} ({AGGREGATION_NAMES[mode]}; per-token push of A<0 rows against length {fmt(v)})")
    return ("long wrong answers are cheapest under " + "; ".join(parts)) if parts else None


def aggregation_rows(doc) -> tuple[list[str], list[list[str]]]:
    rows = []
    for label, e in doc["estimators"].items():
        for mode, a in (e.get("aggregation") or {}).items():
            rows.append([label, mode, fmt(a["up_share"], True), fmt(a["length_corr_positive"]), fmt(a["length_corr_negative"])])
    return ["estimator", "loss aggregation", "push up share", "length corr A>0", "length corr A<0"], rows


def budget_title(doc) -> str:
    b = doc["budget"]
    return (f"Rollout budget (success: {b['success']}; observed no-gradient groups {fmt(b['observed_zero_variance_rate'], True)}, "
            f"hopeless {fmt(b['hopeless_group_rate'], True)}, solved {fmt(b['solved_group_rate'], True)})")


def budget_rows(doc) -> tuple[list[str], list[list[str]]]:
    """The expected share of groups without gradient for each number of rollouts per prompt."""
    rates = doc["budget"]["zero_variance_rate"]
    return ["rollouts per prompt", *rates], [["expected no-gradient groups", *(fmt(v, True) for v in rates.values())]]


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


