"""From a loaded table to the arrays the estimators read: the NaN policy, the conditions,
the objectives' directions and the scheme's score (:func:`prepare`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.rollouts import HUGE, NAN_POLICIES, Batch, Rollouts, largest_values
from ..core.work import Work
from ..errors import InputError, UsageError
from ..schemes import Condition, Scheme, apply_conditions


def apply_nan_policy(raw: np.ndarray, names: Sequence[str], weights: np.ndarray, policy: str) -> np.ndarray:
    if policy == "omit":
        return raw
    if policy == "zero":
        return np.where(np.isnan(raw), 0.0, raw)
    if policy == "raise":
        bad = np.isnan(raw).any(axis=0)
        if bad.any():
            cols = [names[k] for k in np.flatnonzero(bad)]
            raise InputError(
                f"nan_policy=raise: reward column(s) {', '.join(cols)} hold NaN/null cells; "
                f"use nan_policy=omit or zero"
            )
        return raw
    raise UsageError(f"nan_policy must be one of {', '.join(NAN_POLICIES)}, not '{policy}'")


def uses_logged_scalar(rollouts: Rollouts, scheme: Scheme, conditions: Sequence[Condition] = ()) -> bool:
    """Whether ``s`` is the trainer's logged scalar (a dump's ``score``): only under the
    default scheme with no conditions; any other scheme combines the objectives."""
    return rollouts.scalar is not None and scheme.name == "weighted_sum" and not conditions


def prepare(
    rollouts: Rollouts,
    scheme: Scheme,
    conditions: Sequence[Condition] = (),
    nan_policy: str = "omit",
    scalar: np.ndarray | None = None,
    work: Work | None = None,
) -> Batch:
    """NaN policy, then conditions (on the file's values), then directions, then the
    scheme. Rows whose weighted objectives are all NaN are unscorable. The logged scalar
    (:func:`uses_logged_scalar`) replaces the scheme's score, and a row where it is NaN is
    unscorable. ``scalar``: the score already computed (batch by batch), used as it is.
    ``work``: the device and batch statistics of the scheme's scope (see :class:`Work`)."""
    if not np.any(rollouts.weights != 0):
        raise UsageError("every objective has weight 0; give at least one a non-zero weight")
    raw = apply_nan_policy(rollouts.rewards, rollouts.names, rollouts.weights, nan_policy)
    raw = apply_conditions(raw, rollouts.names, conditions)
    # no copy when nothing is minimised (the matrix is never written to)
    directed = np.where(rollouts.minimize[None, :], -raw, raw) if rollouts.minimize.any() else raw
    logged = uses_logged_scalar(rollouts, scheme, conditions)
    if logged:
        scorable = ~np.isnan(rollouts.scalar)
    else:
        scorable = np.zeros(directed.shape[0], dtype=bool)
        for k in np.flatnonzero(rollouts.weights != 0):  # a column at a time: no (n, k) temporaries
            scorable |= ~np.isnan(directed[:, k])
    if scalar is not None:
        s = scalar
    elif logged:
        s = rollouts.scalar
    else:
        s = np.asarray(scheme(directed, rollouts.weights, rollouts.names, raw=raw, work=work), dtype=np.float64)
    bad = scorable & ~np.isfinite(s)
    if bad.any():
        raise InputError(
            f"scheme '{scheme.name}' gave a non-finite score on {int(bad.sum())} scorable rows "
            f"(first row {int(np.flatnonzero(bad)[0])}); {largest_values(rollouts.rewards, rollouts.names)}"
        )
    s = np.where(scorable, s, np.nan)
    if s.size and scorable.any():
        with np.errstate(invalid="ignore"):
            top = max(abs(float(np.nanmax(s))), abs(float(np.nanmin(s))))
        if top >= HUGE:  # its variance would overflow: every z-score would silently be 0
            raise InputError(
                f"scheme '{scheme.name}' gives scores up to {top:.3g} in magnitude (weights "
                f"{', '.join(f'{n}={w:g}' for n, w in zip(rollouts.names, rollouts.weights))}): their squares "
                "overflow float64 near 1e154; use smaller weights or rescale the rewards"
            )
    return Batch(
        directed, rollouts.names, rollouts.weights, s, scorable,
        rollouts.codes, rollouts.order, rollouts.offsets, rollouts.length, rollouts.baseline,
    )
