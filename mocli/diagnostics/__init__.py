"""The analyze report: input summary, per-objective statistics, conflict, and per estimator
advantage statistics, collapse, sign flips, interference, Pareto order, influence and
length coupling (DIAGNOSTICS.md), optionally per slice and with pairwise agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .. import __version__
from ..core.rollouts import Batch, Rollouts, in_file_order
from ..core.tally import Const, finish, merge
from ..core.values import Spill, spilling
from ..core.work import BatchStats
from ..engine.pipeline import make_scheme, resolve, run_estimators
from ..engine.prepare import apply_nan_policy, prepare
from ..engine.stream import settle_statistics
from ..errors import UsageError
from ..estimators import Estimator
from ..io.chunks import Chunk, Chunked
from ..io.files import Progress, library_versions, silent
from ..io.outputs import check_interrupted
from ..kernels import CPU, Device
from ..params import describe
from ..profiles import PROFILES
from ..registry import suggest
from ..schemes import Condition, Scheme, apply_conditions
from . import metrics
from .budget import BudgetRule, budget
from .figures import Figures, make_figures
from .metrics import GroupView

ABSOLUTE_ROOTS = ("input", "objectives", "conflict", "budget", "estimators", "agreement")


@dataclass
class Report:
    """One analyze report. ``to_dict()`` gives the JSON document (DIAGNOSTICS.md keys)."""

    input: dict[str, Any]
    objectives: dict[str, dict[str, Any]]
    conflict: dict[str, Any]
    estimators: dict[str, dict[str, Any]]
    agreement: dict[str, dict[str, Any]] | None = None
    budget: dict[str, Any] | None = None
    by: dict[str, "Report"] = field(default_factory=dict)
    by_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": self.input,
            "objectives": self.objectives,
            "conflict": self.conflict,
        }
        if self.budget is not None:
            out["budget"] = self.budget
        out["estimators"] = self.estimators
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


def missing_key(doc: Any, missing: str) -> str:
    """What to say of a path whose part ``missing`` (as :func:`lookup` raised it) is not in
    ``doc``: the closest key there and the keys there are."""
    parent = missing.rsplit(".", 1)[0] if "." in missing else ""
    try:
        node = lookup(doc, parent) if parent else doc
    except KeyError:
        node = doc
    keys = list(node) if isinstance(node, dict) else []
    hint = suggest(missing.rsplit(".", 1)[-1], keys)
    return f"no '{missing}' in the report{hint}" + (f"; keys there: {', '.join(keys)}" if keys else "")


@dataclass
class Analysis:
    """What :func:`mocli.analyze` returns: the :class:`Report` and what the command line
    shows beside it. ``advantages`` and ``batch`` (the prepared batch, NaN omitted) are
    kept when the table was analysed in memory with ``keep_advantages`` (None when
    streamed), so that :meth:`flips` can read the rows back; ``frame`` holds the rows as
    read (a DataFrame, for the flipped rows' text) and ``group`` its group column."""

    report: Report
    figures: Figures | None = None
    advantages: dict[str, np.ndarray] | None = None
    batch: Batch | None = None
    frame: Any = None
    group: str | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """The HTML report as one element of a notebook's output (the two charts drawn from
        the rows need ``figures=True``)."""
        from ..render.html import render_html

        return render_html(self.report, "mocli analyze", self.figures, notebook=True)

    def flips(self, a: str, b: str, limit: int = 20) -> list[tuple[int, float, float]]:
        """Rows whose sign differs between estimators ``a`` and ``b``, most telling first
        (the smaller of the two magnitudes, descending): ``(row, A_a, A_b)``."""
        if self.advantages is None or self.batch is None:
            raise UsageError("flips need an analysis made with keep_advantages=True")
        A, B = self.advantages[a], self.advantages[b]
        rows = np.flatnonzero(metrics.flipped_mask(A, B, self.batch))
        strength = np.minimum(np.abs(A[rows]), np.abs(B[rows]))
        top = rows[np.argsort(-strength, kind="stable")][:limit]
        return [(int(i), float(A[i]), float(B[i])) for i in top]


def default_estimators(rollouts: Rollouts, profile: str = "mocli") -> list[str]:
    """``grpo``, plus ``gdpo`` when two or more objectives are weighted (see
    :func:`choose_estimators`)."""
    return choose_estimators(None, rollouts.weights, profile, rollouts.length is not None)[0]


def choose_estimators(
    given: Sequence[str | Estimator] | None, weights: np.ndarray | None, profile: str, length: bool,
    names: Sequence[str] | None = None,
) -> tuple[list[str | Estimator], list[str]]:
    """The estimators to run and a warning about the choice. ``given`` (the user's) are
    kept as they are. Otherwise ``names`` (default: ``grpo``, plus ``gdpo`` when two or more
    of ``weights`` are non-zero), as ``profile`` runs them; where the profile weights rows
    by their tokens (``token_weighted``, verl's gdpo) and the input has no length column,
    that estimator runs over rows instead, labelled ``NAME:token_weighted=false`` so that the
    report says what ran, and the warning says why (a dump without lengths still gets its
    report; ``--length`` gives the profile's own numbers)."""
    if given:
        return list(given), []
    if names is None:
        names = ["grpo", "gdpo"] if weights is not None and int(np.count_nonzero(weights)) >= 2 else ["grpo"]
    if length:
        return list(names), []
    prof = PROFILES.get(profile)
    by_rows = [n for n in names if prof.defaults_for(n).get("token_weighted")]
    if not by_rows:
        return list(names), []
    specs = [f"{n}:token_weighted=false" if n in by_rows else n for n in names]
    said = (f"profile {profile} weights {', '.join(by_rows)} by the responses' tokens and the input has no length "
            f"column: {', '.join(by_rows)} ran over rows instead; pass --length COL for the profile's numbers")
    return specs, [said]


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
    device: Device = CPU,
    progress: Progress = silent,
    rule: BudgetRule = BudgetRule(),
) -> Analysis:
    """The full report for one table; with ``slices`` (one value per row) also one report
    per distinct value, each equal to a separate run on the filtered rows. ``rule``: what
    the rollout budget counts as a success."""
    specs = list(estimators) if estimators else default_estimators(rollouts, profile)
    resolved = resolve(specs, profile)
    sch = scheme if isinstance(scheme, Scheme) else make_scheme(scheme, gates)
    conds = [c if isinstance(c, Condition) else Condition.parse(c) for c in conditions]
    tree, advs, base = tally_rollouts(rollouts, resolved, sch, conds, compare, device, rule=rule,
                                      rows=figures or keep_advantages)
    out = Analysis(report_from(tree))
    if figures:
        out.figures = make_figures(advs, base, device=device)
    if keep_advantages:
        out.advantages, out.batch = advs, base
    if slices is not None:
        report = out.report
        report.by_column = slice_column
        keys = np.array(["null" if v is None else str(v) for v in slices.tolist()], dtype=object)
        order = _slice_order(slices, keys)
        for done, value in enumerate(order):
            progress(f"slices by {slice_column}", done, len(order))
            tree, _, _ = tally_rollouts(rollouts.subset(keys == value), resolved, sch, conds, compare, device, rule=rule)
            report.by[value] = report_from(tree)
        progress(f"slices by {slice_column}", len(order), len(order))
    return out


def _slice_order(values: np.ndarray, keys: np.ndarray) -> list[str]:
    uniq = list(dict.fromkeys(keys.tolist()))
    try:
        nums = {k: float(k) for k in uniq if k != "null"}
        return sorted(nums, key=nums.get) + (["null"] if "null" in uniq else [])
    except ValueError:
        return sorted(k for k in uniq if k != "null") + (["null"] if "null" in uniq else [])


def report_from(tree: dict[str, Any]) -> Report:
    """The report of a (merged) tally tree."""
    doc = finish(tree)
    # what loading inferred and warned of (filled in by whoever loaded the table)
    # and the training batch (one, the whole table, unless the caller says otherwise)
    doc["input"].update(batch_by=None, notes=[], warnings=[], mocli_version=__version__, versions=library_versions())
    weights = dict(zip(doc["input"]["objectives"], doc["input"]["weights"]))
    for entry in doc["estimators"].values():
        entry["params"] = {**entry["params"], "batch": "whole table"}
        add_derived(entry, weights)
    return Report(doc["input"], doc["objectives"], doc["conflict"], doc["estimators"], doc.get("agreement"),
                  doc.get("budget"))


def add_derived(entry: dict[str, Any], weights: dict[str, float]) -> None:
    """The summaries DIAGNOSTICS.md derives from an estimator's metrics, added in place:
    ``sign_flip.max`` (the largest sign-flip rate over weighted objectives; null when all
    are null) and ``influence.gap`` (``sum_k |influence.k / r2 - w_k / sum_l w_l|`` over
    weighted objectives; null when ``r2`` is 0 or null, or the weights sum to 0)."""
    weighted = [k for k, w in weights.items() if w != 0]
    if "sign_flip" in entry:
        flips = [entry["sign_flip"][k] for k in weighted if entry["sign_flip"].get(k) is not None]
        entry["sign_flip"]["max"] = max(flips) if flips else None
    if "influence" in entry:
        inf = entry["influence"]
        r2 = inf.get("r2")
        total = sum(weights[k] for k in weighted)
        shares = [inf.get(k) for k in weighted]
        if not r2 or total == 0 or any(v is None for v in shares):
            inf["gap"] = None
        else:
            inf["gap"] = metrics.num(sum(abs(v / r2 - weights[k] / total) for k, v in zip(weighted, shares)))


def tally_rollouts(rollouts, resolved, scheme, conds, compare, device: Device = CPU, stats: BatchStats | None = None,
                   spill: Spill | None = None, rule: BudgetRule = BudgetRule(), rows: bool = False):
    """The report's tally tree for one group-complete chunk, with the advantages and the
    prepared batch (NaN policy omit). ``stats``: the whole table's batch statistics, when
    the rows are one chunk of it; ``spill``: where the values behind its quantiles go;
    ``rule``: what the rollout budget counts as a success.

    The work runs on the rows laid out in group order (:meth:`Rollouts.grouped`), so that
    every per-group pass of the estimators and the diagnostics reads memory front to back;
    the report does not depend on the layout (sums in another order differ in the last
    bits). ``rows``: return the advantages and the batch in file order (else None)."""
    original = rollouts
    rollouts, order = rollouts.grouped()
    advs, batches = run_estimators(rollouts, resolved, scheme, conds, device=device, stats=stats)
    views = {policy: GroupView.of(b, device, spill) for policy, b in batches.items()}
    base, view = batches["omit"], views["omit"]
    raw = apply_conditions(apply_nan_policy(rollouts.rewards, rollouts.names, rollouts.weights, "omit"), rollouts.names, conds)
    est_tallies: dict[str, dict[str, Any]] = {}
    for r in resolved:
        check_interrupted()
        policy = r.estimator.nan_policy
        entry: dict[str, Any] = {"params": Const({k: metrics.num(x) if isinstance(x, float) else x for k, x in describe(r.estimator).items()})}
        entry.update(metrics.estimator_metrics(advs[r.label], batches[policy], views[policy], rollouts.length, rollouts.batch))
        est_tallies[r.label] = entry
    tree: dict[str, Any] = {
        "input": metrics.input_summary(base, view),
        "objectives": metrics.objective_stats(raw, base, view),
        "conflict": metrics.conflict(base, view),
        "budget": budget(rollouts, base, view.count, view.live_group, rule, device),
        "estimators": est_tallies,
    }
    if compare:
        labels = [r.label for r in resolved]
        tree["agreement"] = {
            f"{a}|{b}": metrics.agreement(advs[a], advs[b], base, view)
            for i, a in enumerate(labels) for b in labels[i + 1:]
        }
    if not rows:
        return tree, None, None
    if order is not None:
        advs = {label: in_file_order(a, order) for label, a in advs.items()}
        base = prepare(original, scheme, conds, "omit", scalar=in_file_order(base.scalar, order))
    return tree, advs, base


def iter_paths(doc: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from iter_paths(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


def analyze_chunked(
    chunked: Chunked,
    resolved: Sequence[Any],
    scheme: Any,
    conds: Sequence[Any],
    *,
    compare: bool = False,
    by: str | None = None,
    device: Device = CPU,
    rule: BudgetRule = BudgetRule(),
) -> Report:
    """The analyze report of a chunked table (equal to :func:`analyze_rollouts` on the
    whole table), with one report per value of ``by`` when given."""

    scopes = chunk_scopes
    stats, two_pass = settle_statistics(chunked, resolved, scheme, conds, scopes, device, by)

    # last pass: every chunk's tallies, merged
    trees: dict[str | None, Any] = {}
    with spilling(chunked.folder) as spill:
        for chunk in chunked.chunks("analysing chunks", by):
            for key, sub in scopes(chunk):
                tree, _, _ = tally_rollouts(sub, resolved, scheme, conds, compare, device,
                                            stats[key] if two_pass else None, spill, rule)
                trees[key] = merge(trees.get(key), tree)
        return report_from_trees(trees, by)


def report_from_trees(trees: dict[Any, Any], by: str | None) -> Report:
    """The report of merged tally trees keyed by slice value (None: the whole table), with
    one report per slice of ``by``."""
    report = report_from(trees[None])
    if by is not None:
        report.by_column = by
        values = [k for k in trees if k is not None]
        for value in _slice_order(np.array(values, dtype=object), np.array(values, dtype=object)):
            report.by[value] = report_from(trees[value])
    return report


def chunk_scopes(chunk: Chunk):
    """The scopes of one chunk: its rows under None, and those of each ``--by`` value."""
    yield None, chunk.rollouts
    if chunk.keys is not None:
        for value in dict.fromkeys(chunk.keys.tolist()):
            yield value, chunk.rollouts.subset(chunk.keys == value)
