"""From specs to advantages: resolve estimator / scheme specs under a profile, prepare the
batch once per NaN policy, and run every estimator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..core.rollouts import Batch, Rollouts, check_finite
from ..core.work import BatchStats, Work
from ..errors import UsageError
from ..estimators import ESTIMATORS, Estimator
from ..io.outputs import check_interrupted
from ..kernels import CPU, Device
from ..params import build, describe, parse_spec
from ..profiles import PROFILES
from ..schemes import SCHEMES, Condition, Constraint, Gated, Scheme
from .prepare import prepare


@dataclass(frozen=True)
class Resolved:
    """An estimator spec as the user wrote it (its label) and the instance it resolves to."""

    label: str
    estimator: Estimator


def make_estimator(spec: str, profile: str = "mocli") -> Estimator:
    """``"gdpo:eps=1e-4"`` -> a GDPO instance, profile defaults filled in."""
    name, values = parse_spec(spec, "estimator")
    cls = ESTIMATORS.get(name)
    prof = PROFILES.get(profile)
    return build(cls, name, values, prof.defaults_for(name), "estimator")


def make_scheme(spec: str = "weighted_sum", gates: Sequence[str | Constraint] = ()) -> Scheme:
    """``"power_mean:p=0"`` -> a PowerMean; ``gates`` turn the default scheme into ``gated``."""
    name, values = parse_spec(spec, "scheme")
    cls = SCHEMES.get(name)
    if gates:
        extra = ";".join(str(g) if isinstance(g, Constraint) else g for g in gates)
        for g in extra.split(";"):
            Constraint.parse(g, "--gate")
        if name == "weighted_sum" and not values:
            name, cls = "gated", Gated
        elif name != "gated":
            raise UsageError(
                f"--gate needs the gated scheme (or the default weighted_sum), not '{spec}'"
            )
        values = dict(values)
        values["constraints"] = ";".join(x for x in (values.get("constraints", ""), extra) if x)
    return build(cls, name, values, {}, "scheme")


def resolve(specs: Iterable[str | Estimator], profile: str = "mocli") -> list[Resolved]:
    out: list[Resolved] = []
    seen: set[str] = set()
    for spec in specs:
        if isinstance(spec, Estimator):
            label = spec.name
            est = spec
        else:
            label, est = spec, make_estimator(spec, profile)
        if label in seen:
            raise UsageError(f"estimator '{label}' is given twice; labels must be unique")
        seen.add(label)
        out.append(Resolved(label, est))
    return out


def compute_advantages(
    rollouts: Rollouts,
    estimators: Sequence[str | Estimator] = ("grpo",),
    *,
    scheme: str | Scheme = "weighted_sum",
    conditions: Sequence[str | Condition] = (),
    gates: Sequence[str] = (),
    profile: str = "mocli",
    device: Device = CPU,
) -> dict[str, np.ndarray]:
    """Advantages for every estimator, keyed by label (the spec as written)."""
    resolved = resolve(estimators, profile)
    sch = scheme if isinstance(scheme, Scheme) else make_scheme(scheme, gates)
    conds = [c if isinstance(c, Condition) else Condition.parse(c) for c in conditions]
    advs, _ = run_estimators(rollouts, resolved, sch, conds, device=device)
    return advs


def run_estimators(
    rollouts: Rollouts, resolved: Sequence[Resolved], scheme: Scheme, conds: Sequence[Condition], *,
    device: Device = CPU, stats: BatchStats | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Batch]]:
    """Advantages by label, and the prepared batch of each NaN policy used (``omit``
    always), computed on ``device``. Each estimator and each preparation has a scope of
    its own in ``stats``, the batch-wide statistics of a table streamed in chunks (None: the
    table is whole), so that every chunk gets the statistics of the whole table.

    A table with training batches (``rollouts.batch``) is worked through one batch at a
    time, so that every batch-wide statistic (a batch z-score, whitening, GPG's factor,
    the Chebyshev ideal point) is that batch's own, as the trainer computed it; the
    prepared batches returned cover the whole table."""
    work = Work(device, stats)
    if stats is not None:
        stats.start_chunk()
    parts = rollouts.batches()
    if parts is None:
        return _run_one(rollouts, resolved, scheme, conds, work)
    out = {r.label: np.empty(rollouts.n) for r in resolved}
    scores: dict[str, np.ndarray] = {}
    for rows in parts:
        advs, batches = _run_one(rollouts.subset(rows), resolved, scheme, conds, work)
        for label, a in advs.items():
            out[label][rows] = a
        for policy, b in batches.items():
            scores.setdefault(policy, np.empty(rollouts.n))[rows] = b.scalar
    whole = {policy: prepare(rollouts, scheme, conds, policy, scalar=s) for policy, s in scores.items()}
    return out, whole


def _run_one(
    rollouts: Rollouts, resolved: Sequence[Resolved], scheme: Scheme, conds: Sequence[Condition], work: Work
) -> tuple[dict[str, np.ndarray], dict[str, Batch]]:
    batches: dict[str, Batch] = {}

    def get(policy: str) -> Batch:
        if policy not in batches:
            batches[policy] = prepare(rollouts, scheme, conds, policy, work=work.scoped(f"scheme:{policy}"))
        return batches[policy]

    get("omit")
    out: dict[str, np.ndarray] = {}
    for r in resolved:
        check_interrupted()
        batch = get(r.estimator.nan_policy)
        out[r.label] = check_finite(r.estimator(batch, work.scoped(r.label)), r.label, rollouts)
    for batch in batches.values():
        batch.release()  # the group-order copies served the estimators; free them
    return out, batches


def params_of(resolved: Sequence[Resolved]) -> Mapping[str, dict]:
    return {r.label: describe(r.estimator) for r in resolved}
