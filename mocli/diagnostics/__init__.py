"""The analyze report: input summary, per-objective statistics, conflict, and per estimator
advantage statistics, collapse, sign flips, interference, Pareto order, influence and
length coupling (DIAGNOSTICS.md), optionally per slice and with pairwise agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..core.rollouts import Rollouts, apply_nan_policy
from ..errors import UsageError
from ..estimators import Estimator
from ..io.outputs import check_interrupted
from ..params import describe
from ..engine.pipeline import make_scheme, resolve, run_estimators
from ..schemes import Condition, Scheme, apply_conditions
from ..core.tally import Const, finish
from . import metrics
from .figures import Figures, make_figures
from .metrics import GroupView

ABSOLUTE_ROOTS = ("input", "objectives", "conflict", "estimators", "agreement")


@dataclass
class Report:
    """One analyze report. ``to_dict()`` gives the JSON document (DIAGNOSTICS.md keys)."""

    input: dict[str, Any]
    objectives: dict[str, dict[str, Any]]
    conflict: dict[str, Any]
    estimators: dict[str, dict[str, Any]]
    agreement: dict[str, dict[str, Any]] | None = None
    by: dict[str, "Report"] = field(default_factory=dict)
    by_column: str | None = None
    figures: Figures | None = field(default=None, repr=False, compare=False)
    notes: list[str] = field(default_factory=list, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list, repr=False, compare=False)
    # kept for what reads rows back (the rows that flip sign), when the table was analysed
    # in memory with ``keep_advantages``; None otherwise (streamed)
    advantages: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    batch: Any = field(default=None, repr=False, compare=False)  # the prepared batch (NaN omitted)
    frame: Any = field(default=None, repr=False, compare=False)  # the rows as read (a DataFrame)
    group: str | None = field(default=None, repr=False, compare=False)  # the group column of ``frame``

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": self.input,
            "objectives": self.objectives,
            "conflict": self.conflict,
            "estimators": self.estimators,
        }
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.by:
            out["by_column"] = self.by_column
            out["by"] = {k: v.to_dict() for k, v in self.by.items()}
        return out

    @property
    def labels(self) -> list[str]:
        return list(self.estimators)

    def lookup(self, path: str) -> Any:
        """Value at a dotted path; keys that contain dots (estimator labels such as
        ``grpo:eps=0.5``) are matched whole. Raises KeyError naming the missing part."""
        return lookup(self.to_dict(), path)

    def expand(self, path: str) -> list[tuple[str, str]]:
        """``(label or '', absolute path)`` pairs that a check path stands for: absolute
        paths as they are, relative ones once per estimator."""
        root = path.split(".", 1)[0]
        if root in ABSOLUTE_ROOTS:
            if root == "estimators":
                rest = path[len("estimators."):]
                label = next((lb for lb in sorted(self.estimators, key=len, reverse=True) if rest == lb or rest.startswith(lb + ".")), "")
                return [(label, path)]
            return [("", path)]
        return [(label, f"estimators.{label}.{path}") for label in self.estimators]


def lookup(doc: Any, path: str) -> Any:
    node = doc
    rest = path
    seen = []
    while rest:
        if not isinstance(node, dict):
            raise KeyError(".".join(seen) or path)
        keys = sorted(node, key=len, reverse=True)
        key = next((k for k in keys if rest == k or rest.startswith(k + ".")), None)
        if key is None:
            head = rest.split(".", 1)[0]
            raise KeyError(".".join(seen + [head]))
        seen.append(key)
        node = node[key]
        rest = rest[len(key) + 1:]
    return node


def default_estimators(rollouts: Rollouts) -> list[str]:
    """``grpo``, plus ``gdpo`` when two or more objectives are weighted."""
    return default_estimators_for(rollouts.weights)


def default_estimators_for(weights: np.ndarray) -> list[str]:
    return ["grpo", "gdpo"] if int(np.count_nonzero(weights)) >= 2 else ["grpo"]


def analyze_rollouts(
    rollouts: Rollouts,
    estimators: Sequence[str | Estimator] | None = None,
    *,
    scheme: str | Scheme = "weighted_sum",
    conditions: Sequence[str | Condition] = (),
    gates: Sequence[str] = (),
    profile: str = "mocli",
    compare: bool = False,
    slices: np.ndarray | None = None,
    slice_column: str | None = None,
    keep_advantages: bool = False,
    figures: bool = False,
) -> Report:
    """The full report for one table; with ``slices`` (one value per row) also one report
    per distinct value, each equal to a separate run on the filtered rows."""
    specs = list(estimators) if estimators else default_estimators(rollouts)
    resolved = resolve(specs, profile)
    sch = scheme if isinstance(scheme, Scheme) else make_scheme(scheme, gates)
    conds = [c if isinstance(c, Condition) else Condition.parse(c) for c in conditions]
    report = _one(rollouts, resolved, sch, conds, compare, keep_advantages, figures)
    if slices is not None:
        report.by_column = slice_column
        keys = np.array(["null" if v is None else str(v) for v in slices.tolist()], dtype=object)
        from ..io.files import report_progress

        order = _slice_order(slices, keys)
        for done, value in enumerate(order):
            report_progress(f"slices by {slice_column}", done, len(order))
            mask = keys == value
            report.by[value] = _one(rollouts.subset(mask), resolved, sch, conds, compare, False, False)
        report_progress(f"slices by {slice_column}", len(order), len(order))
    return report


def _slice_order(values: np.ndarray, keys: np.ndarray) -> list[str]:
    uniq = list(dict.fromkeys(keys.tolist()))
    try:
        nums = {k: float(k) for k in uniq if k != "null"}
        return sorted(nums, key=nums.get) + (["null"] if "null" in uniq else [])
    except ValueError:
        return sorted(k for k in uniq if k != "null") + (["null"] if "null" in uniq else [])


def _one(rollouts, resolved, scheme, conds, compare, keep, figures=False) -> Report:
    tree, advs, base = tally_rollouts(rollouts, resolved, scheme, conds, compare)
    report = report_from(tree)
    if figures:
        report.figures = make_figures(advs, base)
    if keep:
        report.advantages = advs
        report.batch = base
    return report


def report_from(tree: dict[str, Any]) -> Report:
    """The report of a (merged) tally tree."""
    doc = finish(tree)
    # what loading inferred and warned of (filled in by whoever loaded the table)
    # and the training batch (one, the whole table, unless the caller says otherwise)
    doc["input"].update(batch_by=None, notes=[], warnings=[])
    for entry in doc["estimators"].values():
        entry["params"] = {**entry["params"], "batch": "whole table"}
    return Report(doc["input"], doc["objectives"], doc["conflict"], doc["estimators"], doc.get("agreement"))


def tally_rollouts(rollouts, resolved, scheme, conds, compare):
    """The report's tally tree for one group-complete chunk, with the advantages and the
    prepared batch (NaN policy omit)."""
    advs, batches = run_estimators(rollouts, resolved, scheme, conds)
    views = {policy: GroupView.of(b) for policy, b in batches.items()}
    base, view = batches["omit"], views["omit"]
    raw = apply_conditions(apply_nan_policy(rollouts.rewards, rollouts.names, rollouts.weights, "omit"), rollouts.names, conds)
    est_tallies: dict[str, dict[str, Any]] = {}
    for r in resolved:
        check_interrupted()
        policy = r.estimator.nan_policy
        entry: dict[str, Any] = {"params": Const({k: metrics.num(x) if isinstance(x, float) else x for k, x in describe(r.estimator).items()})}
        entry.update(metrics.estimator_metrics(advs[r.label], batches[policy], views[policy], rollouts.length))
        est_tallies[r.label] = entry
    tree: dict[str, Any] = {
        "input": metrics.input_summary(base, view),
        "objectives": metrics.objective_stats(raw, base, view),
        "conflict": metrics.conflict(base, view),
        "estimators": est_tallies,
    }
    if compare:
        labels = [r.label for r in resolved]
        tree["agreement"] = {
            f"{a}|{b}": metrics.agreement(advs[a], advs[b], base, view)
            for i, a in enumerate(labels) for b in labels[i + 1:]
        }
    return tree, advs, base


def flips(report: Report, a: str, b: str, limit: int = 20) -> list[tuple[int, float, float]]:
    """Rows whose sign differs between estimators ``a`` and ``b``, most telling first (the
    smaller of the two magnitudes, descending): ``(row, A_a, A_b)``."""
    advs = report.advantages
    batch = report.batch
    if advs is None or batch is None:
        raise UsageError("flips need a report made with keep_advantages=True")
    A, B = advs[a], advs[b]
    mask = metrics.flipped_mask(A, B, batch)
    rows = np.flatnonzero(mask)
    strength = np.minimum(np.abs(A[rows]), np.abs(B[rows]))
    top = rows[np.argsort(-strength, kind="stable")][:limit]
    return [(int(i), float(A[i]), float(B[i])) for i in top]


def iter_paths(doc: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from iter_paths(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix
