"""Recompute the advantages a trainer logged and say where, and probably why, they differ.

The comparison is row by row over the rows whose logged value is present. When the
recomputed advantages miss the tolerance, mocli tries the variations that known failures
amount to (another eps, biased vs unbiased std, no std scaling, batch instead of group
std, token-weighted vs sequence whitening, leave-one-out, singleton handling) and names
the ones that reproduce the log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .batch import Rollouts, prepare
from .errors import InputError
from .params import describe
from .pipeline import make_estimator, make_scheme
from .schemes import Condition

EPS_CANDIDATES = (0.0, 1e-9, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@dataclass
class Verification:
    estimator: str
    profile: str
    params: dict[str, Any]
    tol: float
    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    beyond_tol_rate: float
    passed: bool
    worst_groups: list[dict[str, Any]] = field(default_factory=list)
    hints: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variations(est, has_length: bool) -> list[tuple[str, dict[str, Any]]]:
    """(reason, parameter changes) for the known ways a trainer differs."""
    p = describe(est)
    out: list[tuple[str, dict[str, Any]]] = []
    if "eps" in p:
        for e in EPS_CANDIDATES:
            if e != p["eps"]:
                change = {"eps": e}
                if p.get("eps_batch") == p["eps"]:
                    change["eps_batch"] = e
                out.append((f"another eps: the log matches eps={e:g} (this run used {p['eps']:g})", change))
    if "ddof" in p:
        other = 1 - p["ddof"]
        kind = "unbiased (ddof=1)" if other else "biased / population (ddof=0)"
        out.append((f"biased vs unbiased std: the log matches a {kind} std", {"ddof": other}))
    if p.get("scale") in ("group", "batch"):
        out.append(("no std scaling: the log is only centred (as TRL 0.22.0-0.22.1 under its default, or Dr. GRPO)", {"scale": "none"}))
        flip = "batch" if p["scale"] == "group" else "group"
        out.append((f"{flip} instead of {p['scale']} std: the log divides by the {flip} std", {"scale": flip}))
    if "token_weighted" in p and has_length:
        kind = "sequence-level" if p["token_weighted"] else "token-weighted"
        out.append((f"token-weighted vs sequence whitening: the log matches {kind} whitening", {"token_weighted": not p["token_weighted"]}))
    if "leave_one_out" in p:
        kind = "plain group" if p["leave_one_out"] else "leave-one-out (NeMo-RL)"
        out.append((f"baseline: the log matches a {kind} baseline and std", {"leave_one_out": not p["leave_one_out"]}))
    if "singleton" in p:
        other = "zero" if p["singleton"] == "raw" else "raw"
        out.append((f"singleton groups: the log matches singleton={other}", {"singleton": other}))
    if "eps_mode" in p:
        for mode in ("add", "floor", "skip_zero"):
            if mode != p["eps_mode"]:
                out.append((f"eps placement: the log matches eps_mode={mode}", {"eps_mode": mode}))
    return out


def verify_rollouts(
    rollouts: Rollouts,
    logged: np.ndarray,
    *,
    estimator: str = "grpo",
    profile: str = "mocli",
    scheme: str = "weighted_sum",
    conditions: Sequence[str] = (),
    gates: Sequence[str] = (),
    tol: float = 1e-5,
    group_keys: Sequence[Any] | None = None,
    top: int = 5,
) -> Verification:
    logged = np.asarray(logged, dtype=np.float64)
    present = ~np.isnan(logged)
    if not present.any():
        raise InputError("the logged advantage column has no values to compare")
    est = make_estimator(estimator, profile)
    sch = make_scheme(scheme, gates)
    conds = [Condition.parse(c) for c in conditions]
    batches: dict[str, Any] = {}

    def run(e) -> np.ndarray:
        if e.nan_policy not in batches:
            batches[e.nan_policy] = prepare(rollouts, sch, conds, e.nan_policy)
        return e(batches[e.nan_policy])

    A = run(est)
    diff = np.abs(A - logged)[present]
    max_diff = float(diff.max())
    passed = max_diff <= tol
    result = Verification(
        estimator=estimator, profile=profile,
        params={k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in describe(est).items()},
        tol=tol, rows=int(present.sum()), max_abs_diff=max_diff, mean_abs_diff=float(diff.mean()),
        beyond_tol_rate=float((diff > tol).mean()), passed=passed,
    )
    # worst groups
    full = np.where(present, np.abs(A - logged), -1.0)
    per_group = np.full(rollouts.n_groups, -1.0)
    np.maximum.at(per_group, rollouts.codes, full)
    for g in np.argsort(-per_group, kind="stable")[:top]:
        if per_group[g] <= tol:
            break
        rows = rollouts.order[rollouts.offsets[g]:rollouts.offsets[g + 1]]
        key = group_keys[int(rows[0])] if group_keys is not None else int(g)
        result.worst_groups.append({
            "group": key if isinstance(key, (int, float, str)) else str(key),
            "max_abs_diff": float(per_group[g]),
            "rows": [
                {"row": int(i), "logged": None if np.isnan(logged[i]) else float(logged[i]), "recomputed": float(A[i]),
                 "rewards": [None if np.isnan(v) else float(v) for v in rollouts.rewards[i]]}
                for i in rows[:8]
            ],
        })
    if not passed:
        from .profiles import PROFILES

        has_length = rollouts.length is not None
        candidates = []
        for reason, change in _variations(est, has_length):
            try:
                alt = replace(est, **change)
                alt.validate()
            except Exception:
                continue
            candidates.append((alt, reason, change))
        for name, _ in PROFILES:
            if name != profile:
                alt = make_estimator(estimator, name)
                candidates.append((alt, f"another framework: the log matches --profile {name}", {"profile": name}))
        scored = []
        for alt, reason, change in candidates:
            try:
                d = float(np.abs(run(alt) - logged)[present].max())
            except Exception:  # a variation that does not apply to this data (e.g. needs --length)
                continue
            scored.append((d, reason, change))
        scored.sort(key=lambda t: t[0])
        matches = [s for s in scored if s[0] <= tol]
        chosen = matches[:3] or [s for s in scored[:1] if s[0] < max_diff / 10]
        for d, reason, change in chosen:
            result.hints.append({
                "likely_cause": reason, "change": change, "max_abs_diff": d, "reproduces_log": d <= tol,
            })
    return result
