"""mocli's diagnostics on one generation batch inside a trainer: the analyze report of the
batch's rewards, flattened to the tracker names of ``--export`` (``mocli/<estimator>/<path>``),
and the ``check`` thresholds evaluated on it. What :mod:`mocli.trl` and
:func:`mocli.torch.diagnostics` log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..core.rollouts import Rollouts
from ..io.export import metrics_of
from . import analyze_rollouts, check

# what a trainer logs by default: per estimator these paths, and these of the whole batch
ESTIMATOR_PATHS = ("sign_flip.max", "collapse.zero_variance_group_rate", "collapse.masked_signal_group_rate",
                   "collapse.resolution", "influence.gap", "pareto.order_violation_rate")
BATCH_PATHS = ("conflict.mixed_sign_rate",)


@dataclass
class BatchDiagnostics:
    """The report of one batch, the metrics to log and the checks that failed."""

    report: Any
    metrics: dict[str, float]
    failed: list[str] = field(default_factory=list)


def diagnose(rewards: np.ndarray, groups: Any, names: Sequence[str], weights: Sequence[float] | None = None,
             estimators: Sequence[str] = ("grpo",), profile: str = "mocli", metrics: Sequence[str] | str | None = None,
             fail_if: Sequence[str] = ()) -> BatchDiagnostics:
    """The diagnostics of one batch: ``rewards`` ``(n, k)``, ``groups`` one key per row.
    ``metrics``: the report paths to log (estimator-relative ones for every estimator,
    absolute ones as they are), ``"all"`` for every number, None for the defaults
    (:data:`ESTIMATOR_PATHS`, :data:`BATCH_PATHS`). ``fail_if``: ``check`` expressions."""
    ro = Rollouts.from_arrays(np.asarray(rewards, dtype=np.float64), groups, names=list(names), weights=weights)
    report = analyze_rollouts(ro, list(estimators), profile=profile).report
    doc = report.to_dict()
    every = metrics_of(doc)
    if metrics == "all":
        chosen = every
    else:
        paths = list(metrics) if metrics is not None else [*ESTIMATOR_PATHS, *BATCH_PATHS]
        wanted = set()
        for path in paths:
            for label, absolute in report.expand(path):
                rel = absolute[len(f"estimators.{label}."):] if label else absolute
                wanted.add(f"mocli/{label}/{rel}" if label else f"mocli/{absolute}")
        chosen = {k: v for k, v in every.items() if k in wanted}
    failed = []
    if fail_if:
        outcomes = check.evaluate(report, [check.Expression.parse(e) for e in fail_if])
        failed = [o.describe() for o in outcomes if o.failed]
    return BatchDiagnostics(report, chosen, failed)
