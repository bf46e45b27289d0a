"""Decoupled (multi-objective) estimators: the reward matrix -> ``A``. The scheme is not
used; conditions and the NaN policy are applied before. The symbols of the docstrings
(``z_ik``, ``r_ik``, ``w_k``, ``B``) are defined in :mod:`.notation`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.rollouts import in_file_order
from ..params import param
from .base import ESTIMATORS, Grouped, GroupScaled
from .normalise import EPS_MODES, group_z, whiten


def group_rows(batch) -> tuple:
    """The fused kernels read rows in group order: ``(rows, back)`` with ``rows`` the batch
    in that order (itself when an estimator runs through ``__call__``) and ``back`` None,
    or, for a batch out of group order, its group-order copy and the positions
    (``batch.order``) its rows go back to (see :func:`~mocli.core.rollouts.in_file_order`)."""
    rows = batch.grouped()
    return rows, (None if rows is batch else batch.order)


def objective_sum(est, batch, work) -> np.ndarray:
    """``sum_k w_k z_ik`` over the weighted objectives, with the estimator's eps, eps_mode,
    ddof and singleton: one pass of the device's kernel over the groups (leave-one-out:
    the weighted sum of :func:`objective_z`)."""
    if est.leave_one_out:
        return objective_z(est, batch, work) @ batch.weights
    cols = np.flatnonzero(batch.weighted)
    rows, back = group_rows(batch)
    a = work.device.seg_objective_sum(
        rows.rewards, cols, batch.weights[cols], rows.scorable, rows.offsets, est.ddof, est.eps,
        EPS_MODES.index(est.eps_mode), est.singleton == "raw", out=work.scratch("values", rows.n),
    )
    return in_file_order(a, back)


def objective_z(est, batch, work) -> np.ndarray:
    """``(n, k)`` per-objective group z-scores (weighted objectives; 0 columns for the
    others), with the estimator's eps, eps_mode, ddof, singleton and leave_one_out."""
    r = batch.rewards
    z = np.zeros_like(r)
    for k in np.flatnonzero(batch.weighted):
        col = np.ascontiguousarray(r[:, k])
        valid = batch.scorable & ~np.isnan(col)
        z[:, k] = group_z(
            np.where(valid, col, 0.0), valid, batch, work, eps=est.eps, eps_mode=est.eps_mode,
            ddof=est.ddof, singleton=est.singleton, leave_one_out=est.leave_one_out,
        )
    return z


@dataclass(frozen=True)
class _Decoupled(GroupScaled):
    decoupled = True
    leave_one_out: bool = param(False, "per-objective baseline and std from the other rows (NeMo-RL)")


@ESTIMATORS.register
@dataclass(frozen=True)
class GDPO(_Decoupled):
    """Group reward-decoupled normalisation: ``a_i = sum_k w_k z_ik``, then (``batch_norm``)
    ``A = (a - mean_B a) / (std_B a [+] eps_batch)`` over the scorable rows of ``B``.

    ``eps_batch`` defaults to ``eps``. ``token_weighted=true`` whitens over tokens instead,
    as verl's ``masked_whiten`` (needs ``--length``). Distinct reward vectors keep distinct
    advantages where a summed reward would collapse them. Constant objectives contribute 0;
    a group constant in every objective has ``a = 0`` before the batch step.
    """

    name = "gdpo"
    source = "GDPO (NVIDIA, arXiv 2601.05242); TRL multi_objective_aggregation='normalize_then_sum'"
    batch_norm: bool = param(True, "z-score the summed advantage over B")
    eps_batch: float = param(float("nan"), "eps of the batch step (NaN = same as eps)", type=float, nan_means="same as eps")
    token_weighted: bool = param(False, "token-weighted batch whitening (verl masked_whiten; needs --length)")
    var_eps: float = param(1e-8, "variance stabiliser of token-weighted whitening")

    def __post_init__(self):
        if np.isnan(self.eps_batch):  # resolved here, so that params show the value used
            object.__setattr__(self, "eps_batch", self.eps)

    def compute(self, batch, work):
        a = objective_sum(self, batch, work)
        if not self.batch_norm:
            return a
        eps = self.eps_batch
        length = self.needs("length", batch, ":token_weighted=true") if self.token_weighted else None
        return whiten(
            a, batch.scorable, work, eps=eps, eps_mode=self.eps_mode, ddof=self.ddof,
            length=length, var_eps=self.var_eps, into=work.placement,
        )


@ESTIMATORS.register
@dataclass(frozen=True)
class AdvantageSum(_Decoupled):
    """Sum of per-objective group z-scores: ``A = sum_k w_k z_ik`` (= ``gdpo:batch_norm=false``),
    the "advantage combination" baseline."""

    name = "advantage_sum"
    source = "advantage combination baseline named by DVAO"

    def compute(self, batch, work):
        return objective_sum(self, batch, work)


@ESTIMATORS.register
@dataclass(frozen=True)
class DVAO(Grouped):
    """Variance-adaptive weights: ``A = sum_k w_k (r_ik - mu_gk) / sum_l w_l sigma_gl`` with
    population ``sigma`` (``ddof`` does not apply). Each objective's effective weight is
    proportional to ``w_k sigma_gk``. NaN cells contribute 0 to the numerator; a group
    whose denominator is 0 (every objective constant) gets 0. Singleton group: 0, or ``sum
    w r / sum w`` with ``singleton=raw``. Scale-free: no eps.
    """

    decoupled = True
    name = "dvao"
    source = "DVAO (decoupled variance-adaptive objectives)"

    def compute(self, batch, work):
        cols = np.flatnonzero(batch.weighted)
        rows, back = group_rows(batch)
        a = work.device.seg_dvao(
            rows.rewards, cols, batch.weights[cols], rows.scorable, rows.offsets, self.singleton == "raw",
            out=work.scratch("values", rows.n),
        )
        return in_file_order(a, back)


@ESTIMATORS.register
@dataclass(frozen=True)
class GD2PO(_Decoupled):
    """Conflict-aware decoupling. Per objective ``A_ik`` = grpo of objective k alone (the
    ``z_ik`` above). A row conflicts when some weighted ``A_ik > 0`` and another ``< 0``
    (zero: ``|x| <= 1e-9 max(1, max_g |A_k|)``). Consensus ``c_i = sum_k A_ik / sum_k
    |A_ik|`` (0 if all zero). A conflicting row with ``|c_i| < tau`` is dropped and gets 0;
    kept rows get ``v_i = (sum_k w_k A_ik) * rho_g`` with ``rho_g`` the kept share of the
    group's scorable rows, then ``v`` is whitened over the kept rows of ``B`` (``eps``,
    ``eps_mode``, ``ddof``).
    """

    name = "gd2po"
    source = "GD^2PO (conflict-aware decoupled group policy optimisation)"
    tau: float = param(0.8, "consensus threshold; 1.0 drops every conflicting row")

    def compute(self, batch, work):
        if not self.leave_one_out:  # the rule in one pass per group
            cols = np.flatnonzero(batch.weighted)
            rows, back = group_rows(batch)
            v, kept = work.device.seg_gd2po(
                rows.rewards, cols, batch.weights[cols], rows.scorable, rows.offsets, self.ddof,
                self.eps, EPS_MODES.index(self.eps_mode), self.singleton == "raw", self.tau,
                out=(work.scratch("values", rows.n), work.scratch("mask", rows.n, np.bool_)),
            )
            a = whiten(v, kept, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof,
                       into=work.placement if back is None else None)
            return in_file_order(a, back)
        # leave-one-out z-scores (NeMo-RL), then the same rule over whole columns
        z = objective_z(self, batch, work)
        zsum = z @ batch.weights
        sel = batch.weighted
        zw = z[:, sel]
        # per-group, per-objective magnitude for the zero test
        codes = batch.codes
        g = batch.offsets.shape[0] - 1
        everyone = np.ones(batch.n, dtype=bool)
        tol = np.empty_like(zw)
        for j in range(zw.shape[1]):
            _, top = work.device.seg_min_max(np.abs(np.ascontiguousarray(zw[:, j])), everyone, batch.order, batch.offsets)
            tol[:, j] = 1e-9 * np.maximum(1.0, top[codes])
        pos = (zw > tol).any(axis=1)
        neg = (zw < -tol).any(axis=1)
        conflict = pos & neg & batch.scorable
        total = np.abs(zw).sum(axis=1)
        c = np.where(total > 0, zw.sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)
        dropped = conflict & (np.abs(c) < self.tau)
        kept = batch.scorable & ~dropped
        n_scorable = np.bincount(codes, weights=batch.scorable.astype(np.float64), minlength=g)
        n_kept = np.bincount(codes, weights=kept.astype(np.float64), minlength=g)
        rho = np.where(n_scorable > 0, n_kept / np.where(n_scorable > 0, n_scorable, 1.0), 0.0)
        v = zsum * rho[codes]
        return whiten(v, kept, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof)
