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

from ..core.rollouts import Rollouts
from ..errors import InputError, MocliError
from ..params import describe
from ..engine.pipeline import Resolved, compute_advantages, make_estimator, make_scheme, run_estimators
from ..kernels import CPU, Device
from ..profiles import PROFILES
from ..schemes import Condition

EPS_CANDIDATES = (0.0, 1e-9, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
# the other estimators a trainer may have run, tried when no variation of the given one
# reproduces the log (TRL's normalize_then_sum and scale_rewards, verl's adv_estimator)
OTHER_ESTIMATORS = (
    "grpo", "gdpo", "grpo:scale=batch", "grpo:scale=none", "rloo", "rloo:normalize=true", "reinforce_pp",
    "reinforce_pp_baseline", "opo", "gpg", "dr_grpo", "advantage_sum",
)


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
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
        if p.get("leave_one_out"):
            out.append((
                f"biased vs unbiased leave-one-out std: the log divides by the {kind} std of the other responses"
                + ("" if other else " (NeMo-RL's code of June 2025; newer NeMo-RL uses the unbiased one)"),
                {"ddof": other},
            ))
        else:
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


def _fit_direction(x: np.ndarray, segments, logged: np.ndarray, current: np.ndarray) -> np.ndarray | None:
    """The weights ``w`` under which ``x @ w``, centred in each segment, is proportional
    to the logged values, centred likewise, in every segment (with a factor of its own
    per segment): the least-squares direction, scaled so that the first fitted weight is
    1 and rounded to 4 significant digits. A column that never varies within a segment
    cannot be fitted and keeps its ``current`` weight; None when fewer than two can."""
    k = x.shape[1]
    m = np.zeros((k, k))
    moves = np.zeros(k, dtype=bool)
    for rows in segments:
        if rows.size < 2:
            continue
        a = logged[rows] - logged[rows].mean()
        norm = float(a @ a)
        c = x[rows] - x[rows].mean(axis=0)
        moves |= np.abs(c).max(axis=0) > 1e-12
        if norm == 0:
            continue
        pc = c - np.outer(a, a @ c) / norm  # the part of each column not along the log
        m += pc.T @ pc
    free = np.flatnonzero(moves)
    if free.size < 2:
        return None
    w_free = np.linalg.eigh(m[np.ix_(free, free)])[1][:, 0]
    w_free = w_free / w_free[np.argmax(np.abs(w_free) > 1e-6 * np.abs(w_free).max())]
    w = np.array(current, dtype=np.float64)
    w[free] = [float(f"{v:.4g}") for v in w_free]
    return w + 0.0


def _scorable_rows(rollouts: Rollouts, logged: np.ndarray) -> np.ndarray:
    return ~np.isnan(rollouts.rewards[:, rollouts.weights != 0]).all(axis=1) & ~np.isnan(logged)


def fit_reward_weights(rollouts: Rollouts, logged: np.ndarray) -> np.ndarray | None:
    """The objective weights under which the weighted sum (NaN cells as 0, as a NaN-skipping
    sum), centred in its group, is proportional to the logged advantages in every group:
    what a sum-then-normalise trainer computes, up to its eps. None with one objective."""
    if rollouts.rewards.shape[1] < 2:
        return None
    x = np.where(np.isnan(rollouts.rewards), 0.0, rollouts.rewards)
    x = np.where(rollouts.minimize[None, :], -x, x)
    keep = _scorable_rows(rollouts, logged)
    groups = (rollouts.order[rollouts.offsets[g]:rollouts.offsets[g + 1]] for g in range(rollouts.n_groups))
    return _fit_direction(x, (rows[keep[rows]] for rows in groups), logged, rollouts.weights)


def fit_decoupled_weights(rollouts: Rollouts, logged: np.ndarray, profile: str) -> np.ndarray | None:
    """The objective weights under which the weighted sum of per-objective group z-scores
    (GDPO before its batch step), centred in its training batch, is proportional to the
    logged advantages in every batch. None with one objective."""
    k = rollouts.rewards.shape[1]
    if k < 2:
        return None
    z = np.column_stack([
        compute_advantages(replace(rollouts, weights=np.eye(k)[j]), ["advantage_sum"], profile=profile)["advantage_sum"]
        for j in range(k)
    ])
    keep = _scorable_rows(rollouts, logged)
    return _fit_direction(z, (rows[keep[rows]] for rows in rollouts.batches() or [np.arange(rollouts.n)]), logged,
                          rollouts.weights)


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
    device: Device = CPU,
) -> Verification:
    logged = np.asarray(logged, dtype=np.float64)
    present = ~np.isnan(logged)
    if not present.any():
        raise InputError("the logged advantage column has no values to compare")
    est = make_estimator(estimator, profile)
    sch = make_scheme(scheme, gates)
    conds = [Condition.parse(c) for c in conditions]

    def run(e, ro: Rollouts = rollouts) -> np.ndarray:
        return run_estimators(ro, [Resolved("verify", e)], sch, conds, device=device)[0]["verify"]

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
        result.hints = _hints(est, estimator, profile, rollouts, logged, present, tol, max_diff, run)
    return result


def _hints(est, estimator, profile, rollouts, logged, present, tol, max_diff, run) -> list[dict[str, Any]]:
    """What reproduces the log, tried in order of how far it strays from what was asked:
    a variation of the estimator's parameters or another framework's profile; then other
    estimators; then the reward weights that fit the log (alone and with each estimator
    tried). The first group that reproduces the log (or, when none does, the closest
    candidate, if ten times closer than the run) is named."""
    def score(candidates) -> list[tuple[float, str, dict]]:
        out = []
        for alt, reason, change, ro in candidates:
            try:
                d = float(np.abs(run(alt, ro) - logged)[present].max())
            except MocliError:  # a variation that does not apply to this data (e.g. needs --length)
                continue
            out.append((d, reason, change))
        return sorted(out, key=lambda t: t[0])

    tiers: list[list] = []
    own = []
    for reason, change in _variations(est, rollouts.length is not None):
        try:
            alt = replace(est, **change)
            alt.validate()
        except Exception:
            continue
        own.append((alt, reason, change, rollouts))
    for name, _ in PROFILES:
        if name != profile:
            own.append((make_estimator(estimator, name), f"another framework: the log matches --profile {name}", {"profile": name}, rollouts))
    tiers.append(own)
    others = []
    for spec in OTHER_ESTIMATORS:
        if spec == estimator:
            continue
        try:
            alt = make_estimator(spec, profile)
        except MocliError:
            continue
        others.append((alt, f"another estimator: the log matches -e {spec}", {"estimator": spec}, rollouts))
    tiers.append(others)
    fitted = []
    for w, tried in ((fit_reward_weights(rollouts, logged), [(est, "", {})] + [t[:3] for t in others]),
                     (fit_decoupled_weights(rollouts, logged, profile),
                      [(est, "", {})] + [t[:3] for t in others if t[0].decoupled])):
        if w is None or np.allclose(w, rollouts.weights) or not np.any(w != 0):
            continue
        weighted = replace(rollouts, weights=w)
        flags = " ".join(f"-r {n}={v:g}" for n, v in zip(rollouts.names, w))
        for alt, reason, change in tried:
            reason = f"{reason} {flags}" if reason else f"reward weights: the log matches {flags}"
            fitted.append((alt, reason, {**change, "weights": dict(zip(rollouts.names, w.tolist()))}, weighted))
    tiers.append(fitted)
    best: list[tuple[float, str, dict]] = []
    for tier in tiers:
        scored = score(tier)
        matches = [t for t in scored if t[0] <= tol]
        if matches:
            return [_hint(t, tol) for t in matches[:3]]
        best += scored[:1]
    best.sort(key=lambda t: t[0])
    return [_hint(t, tol) for t in best[:1] if t[0] < max_diff / 10]


def _hint(t: tuple[float, str, dict], tol: float) -> dict[str, Any]:
    d, reason, change = t
    return {"likely_cause": reason, "change": change, "max_abs_diff": d, "reproduces_log": d <= tol}
