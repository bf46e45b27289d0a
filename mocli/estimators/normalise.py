"""Group and batch normalisation shared by the estimators: centring (plain or
leave-one-out), the ``eps`` / ``eps_mode`` division, and whitening (sequence- or
token-weighted)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.tally import Moments
from ..kernels.cpu import denominators
from ..core.work import Placement, Work

EPS_MODES = ("add", "floor", "skip_zero")
SINGLETON = ("zero", "raw")


def divide(centred, sigma, eps: float, mode: str):
    """``centred / denominator`` with the denominator from ``sigma`` and ``eps``:
    ``add`` = ``sigma + eps``, ``floor`` = ``max(sigma, eps)``, ``skip_zero`` = ``sigma +
    eps`` where ``sigma > 0``, else 1. A zero denominator leaves the centred value as is."""
    return centred / denominator(sigma, eps, mode)


def denominator(sigma, eps: float, mode: str) -> np.ndarray:
    """The divisor :func:`divide` uses for ``sigma``: the kernels' own rule
    (:func:`mocli.kernels.cpu.denominators`), applied to every value."""
    return denominators(sigma, eps, EPS_MODES.index(mode))


@dataclass
class GroupStats:
    """Per-group mean, standard deviation (``ddof``), count of valid rows and
    exact-constant flag, with the two masks every grouped estimator needs."""

    mean: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    const: np.ndarray

    @classmethod
    def of(cls, values, valid, batch, ddof: int, work: Work) -> "GroupStats":
        mean, var, count, const = work.device.seg_mean_var(values, valid, batch.order, batch.offsets, ddof)
        return cls(mean, np.sqrt(var), count, const)

    @property
    def live(self) -> np.ndarray:
        """Groups that carry signal: two or more valid, not all equal values."""
        return ~self.const & (self.count > 1)

    @property
    def lone(self) -> np.ndarray:
        """Groups with exactly one valid value."""
        return self.count == 1


def _target(into: Placement | None) -> np.ndarray | None:
    """The positions a one-pass step writes row ``p`` to: the placement's (the caller's
    order), else the batch's own order (None: the kernel's default)."""
    return None if into is None else into.dest


def _finish(out: np.ndarray, into: Placement | None) -> np.ndarray:
    return out if into is None else into.put(out)


def expand(x, valid, batch, shift, live, work: Work, mul=1.0, den=1.0, into: Placement | None = None) -> np.ndarray:
    """Per row ``(x - shift_g) * mul_g / den_g`` on valid rows of ``live`` groups, 0
    elsewhere; ``shift``, ``mul``, ``den`` per group (or one number for all). One pass of
    the device's kernel. ``into``: the estimator's placement, when this is its last step
    (the rows are then written in the caller's order)."""
    g = batch.offsets.shape[0] - 1
    per_group = lambda v: np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float64), (g,)))
    shift, mul, den = per_group(shift), per_group(mul), per_group(den)
    live = np.ascontiguousarray(live, dtype=np.bool_)
    out = work.device.seg_expand(x, valid, batch.order, batch.offsets, shift, mul, den, live, _target(into))
    return _finish(out, into)


def lone_rule(stats: GroupStats, shift, live, singleton: str, den=None, lone_den=1.0):
    """Fold the ``singleton`` policy into an :func:`expand` map: under ``raw`` a group of
    one valid row is live with shift 0 (the row keeps ``s``, divided by ``lone_den`` when
    the estimator scales); under ``zero`` it stays dead. Returns ``(shift, live, den)``."""
    if singleton != "raw":
        return shift, live, den
    lone = stats.lone
    shift = np.where(lone, 0.0, shift)
    if den is not None:
        den = np.where(lone, lone_den, den)
    return shift, live | lone, den


@dataclass
class Centred:
    """Per-row view of a leave-one-out group statistic: the centred value, the standard
    deviation of the other rows, the group's valid count and whether the group is constant."""

    centred: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    const: np.ndarray


def centre_loo(values, valid, batch, ddof: int, work: Work) -> Centred:
    """Centre ``values`` on the mean of the other valid rows of the group (NeMo-RL's
    leave-one-out baseline); invalid rows, constant groups and singletons get 0."""
    dev = work.device
    _, _, count, const = dev.seg_mean_var(values, valid, batch.order, batch.offsets, ddof)
    lm, lv = dev.seg_loo_mean_var(values, valid, batch.order, batch.offsets, ddof)
    codes = batch.codes
    cnt = count[codes]
    cst = const[codes]
    c = np.where(valid & ~cst & (cnt > 1), values - lm, 0.0)
    return Centred(c, np.sqrt(lv), cnt, cst)


def singleton_rule(out, values, valid, cnt, singleton: str, eps: float | None = None, mode: str = "add"):
    """Apply the ``singleton`` policy to rows alone (one valid value) in their group:
    ``zero`` gives 0; ``raw`` treats the group as mean 0 and std 1 (verl's legacy rule),
    so the row keeps ``s`` (divided by ``1 + eps`` when the estimator scales)."""
    lone = valid & (cnt == 1)
    if not lone.any():
        return out
    if singleton == "raw":
        kept = values if eps is None else divide(values, 1.0, eps, mode)
        return np.where(lone, kept, out)
    return np.where(lone, 0.0, out)


def group_z(values, valid, batch, work: Work, *, eps, eps_mode, ddof, singleton, leave_one_out=False, scaled=True,
            out=None, into: Placement | None = None):
    """``(x - mu_g) / (sigma_g [+] eps)`` per group (the grpo rule, one pass of the device's
    kernel); 0 on invalid rows and in constant groups; the singleton policy for groups of
    one. Without ``scaled`` the centred values ``x - mu_g`` (no division, so ``eps``,
    ``eps_mode`` and ``ddof`` play no part). ``leave_one_out``: mean and std of the other
    rows (NeMo-RL; its own rule, never placed). ``out``: an array the kernel may write the
    rows into (a :meth:`Work.scratch` array). ``into``: see :func:`expand`."""
    if not leave_one_out:
        return _finish(work.device.seg_group_z(
            values, valid, batch.order, batch.offsets, ddof, eps, EPS_MODES.index(eps_mode), singleton == "raw",
            _target(into), scaled, out,
        ), into)
    c = centre_loo(values, valid, batch, ddof, work)
    z = divide(c.centred, c.sigma, eps, eps_mode) if scaled else c.centred
    z = np.where(valid & ~c.const & (c.count > 1), z, 0.0)
    return singleton_rule(z, values, valid, c.count, singleton, eps if scaled else None, eps_mode)


# ---------------------------------------------------------------------------------------
# batch-wide statistics (see Work.tally for a table streamed in chunks)
# ---------------------------------------------------------------------------------------
def valid_moments(x, valid, work: Work) -> Moments:
    """:meth:`Moments.of` ``x[valid]``, without copying the rows out (host sums in fixed
    blocks, on either device)."""
    return Moments(*work.device.masked_moments(np.ascontiguousarray(x, dtype=np.float64), valid))


def batch_mean_std(x, valid, ddof: int, work: Work):
    """Mean and standard deviation (``ddof``) of ``x`` over ``valid`` (the whole batch),
    corrected two-pass; std 0 when the values are all equal or too few."""
    m = work.tally("moments", valid_moments(x, valid, work))
    if m.n == 0:
        return 0.0, 0.0
    if m.constant:
        return m.lo, 0.0
    return m.mean, m.std(ddof)


def whiten(x, valid, work: Work, *, eps, eps_mode, ddof, length=None, var_eps=1e-8, into: Placement | None = None):
    """Batch whitening over ``valid`` rows; other rows get 0.

    Sequence level: ``(x - mean) / (std [+] eps)``. Token-weighted (``length`` given): each
    row counts ``length`` times, the variance is Bessel-corrected over the token count when
    ``ddof = 1``, and the scale is ``rsqrt(var + var_eps)`` (``eps_mode=floor``:
    ``rsqrt(max(var, var_eps))``), as verl's ``masked_whiten`` and OpenRLHF. ``into``: see
    :func:`expand` (sequence level only)."""
    if length is None:
        m = work.tally("whiten", valid_moments(x, valid, work))
        if m.constant:
            return np.zeros_like(x, dtype=np.float64)
        den = float(denominator(m.std(ddof), eps, eps_mode))
        return _finish(work.device.masked_affine(x, valid, m.mean, den, _target(into)), into)
    out = np.zeros_like(x, dtype=np.float64)
    xv = x[valid]
    m = work.tally("whiten", Moments.of(xv, length[valid].astype(np.float64)))
    if m.constant:
        return out
    T = m.n
    var = m.m2 / T
    if ddof == 1:
        var = var * T / (T - 1) if T > 1 else 0.0
    if eps_mode == "floor":
        den = np.sqrt(max(var, var_eps))
    elif eps_mode == "skip_zero" and var <= 0:
        den = 1.0
    else:
        den = np.sqrt(var + var_eps)
    d = xv - m.mean
    out[valid] = d / den if den > 0 else d
    return out
