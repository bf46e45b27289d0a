"""Group and batch normalisation shared by the estimators: centring (plain or
leave-one-out), the ``eps`` / ``eps_mode`` division, and whitening (sequence- or
token-weighted)."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .. import kernels
from ..kernels import fused
from ..kernels import seg_loo_mean_var, seg_mean_var
from ..core.tally import Moments, Tally, merge

EPS_MODES = ("add", "floor", "skip_zero")
SINGLETON = ("zero", "raw")

# where an estimator's last step may write its rows straight away: see ``placing``
_OFF = object()  # no estimator call is placing its result
_DEST: contextvars.ContextVar = contextvars.ContextVar("mocli_dest", default=_OFF)


class Placed(np.ndarray):
    """Advantages an estimator's last step wrote straight into the caller's row order
    (see :func:`placing`), so that no separate pass has to put them back."""


@contextlib.contextmanager
def placing(dest: np.ndarray | None) -> Iterator[None]:
    """While an estimator computes on the rows of a batch in group order, let the step it
    marks ``final`` write the caller's result itself and return it as :class:`Placed`:
    row ``p`` of a group-order copy goes to ``out[dest[p]]`` (``dest``: the batch's group
    order, so ``out`` is in the batch's own order); ``dest`` None when the batch's rows
    already lie in group order, and row ``p`` goes to ``out[p]`` (no indexed writes). Only
    one-pass steps do (on either device); the others leave their result in the copy's order."""
    token = _DEST.set(dest)
    try:
        yield
    finally:
        _DEST.reset(token)


# the batch whose scratch arrays an estimator's own work may use: see ``working``
_POOL: contextvars.ContextVar = contextvars.ContextVar("mocli_pool", default=None)


@contextlib.contextmanager
def working(batch) -> Iterator[None]:
    """While an estimator computes inside its ``__call__`` (which copies or places what
    ``compute`` returns, so no work array reaches a caller), let :func:`work` hand out
    ``batch``'s scratch arrays (see :meth:`mocli.core.rollouts.Batch.scratch`)."""
    token = _POOL.set(batch)
    try:
        yield
    finally:
        _POOL.reset(token)


def work(slot: str, n: int, dtype=np.float64) -> np.ndarray:
    """A per-row work array for a step whose result the estimator consumes itself (never
    its returned advantages): the calling batch's scratch array ``slot`` inside an
    estimator call (see :func:`working`), shared by every estimator run on that batch,
    else a fresh one. The step writes every row."""
    batch = _POOL.get()
    if batch is None or batch.n != n:
        return np.empty(n, dtype=dtype)
    return batch.scratch(slot, dtype)


def _placing(final: bool) -> bool:
    return final and _DEST.get() is not _OFF and kernels.steps() is not None


def _dest(final: bool) -> np.ndarray | None:
    return _DEST.get() if _placing(final) else None


def final_destination() -> np.ndarray | None:
    """For an estimator's own last step: where row ``p`` belongs (see :func:`placing`),
    or None when it stays at ``p``."""
    return _dest(True)


def final_placed(out: np.ndarray) -> np.ndarray:
    """An estimator's own last step's result, marked :class:`Placed` when a caller is
    placing it (see :func:`placing`)."""
    return _placed(out, True)


def _placed(out: np.ndarray, final: bool) -> np.ndarray:
    return out.view(Placed) if _placing(final) else out


def divide(centred, sigma, eps: float, mode: str):
    """``centred / denominator`` with the denominator from ``sigma`` and ``eps``:
    ``add`` = ``sigma + eps``, ``floor`` = ``max(sigma, eps)``, ``skip_zero`` = ``sigma +
    eps`` where ``sigma > 0``, else 1. A zero denominator leaves the centred value as is."""
    return centred / denominator(sigma, eps, mode)


def denominator(sigma, eps: float, mode: str) -> np.ndarray:
    """The divisor :func:`divide` uses for ``sigma`` (a zero one becomes 1)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if mode == "add":
        den = sigma + eps
    elif mode == "floor":
        den = np.maximum(sigma, eps)
    elif mode == "skip_zero":
        den = np.where(sigma > 0, sigma + eps, 1.0)
    else:  # validated by the parameter's choices
        raise ValueError(mode)
    return np.where(den == 0, 1.0, den)


@dataclass
class GroupStats:
    """Per-group mean, standard deviation (``ddof``), count of valid rows and
    exact-constant flag, with the two masks every grouped estimator needs."""

    mean: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    const: np.ndarray

    @classmethod
    def of(cls, values, valid, batch, ddof: int) -> "GroupStats":
        mean, var, count, const = seg_mean_var(values, valid, batch.order, batch.offsets, ddof)
        return cls(mean, np.sqrt(var), count, const)

    @property
    def live(self) -> np.ndarray:
        """Groups that carry signal: two or more valid, not all equal values."""
        return ~self.const & (self.count > 1)

    @property
    def lone(self) -> np.ndarray:
        """Groups with exactly one valid value."""
        return self.count == 1


def expand(x, valid, batch, shift, live, mul=1.0, den=1.0, final: bool = False) -> np.ndarray:
    """Per row ``(x - shift_g) * mul_g / den_g`` on valid rows of ``live`` groups, 0
    elsewhere; ``shift``, ``mul``, ``den`` per group (or one number for all). One pass of
    the device's kernel (the composed reference: the same operations in NumPy). ``final``:
    the estimator's last step (see :func:`placing`)."""
    g = batch.offsets.shape[0] - 1
    per_group = lambda v: np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float64), (g,)))
    shift, mul, den = per_group(shift), per_group(mul), per_group(den)
    live = np.ascontiguousarray(live, dtype=np.bool_)
    st = kernels.steps()
    if st is not None:
        dest = _dest(final)
        return _placed(st.seg_expand(x, valid, batch.order, batch.offsets, shift, mul, den, live, dest), final)
    c = batch.codes
    return np.where(valid & live[c], (x - shift[c]) * mul[c] / den[c], 0.0)


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
    """Per-row view of a group statistic: the centred value, the group (or leave-one-out)
    standard deviation, the group's valid count and whether the group is constant."""

    centred: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    const: np.ndarray


def centre(values, valid, batch, ddof: int, leave_one_out: bool = False) -> Centred:
    """Centre ``values`` on the group mean (or the mean of the other rows) over ``valid``
    rows; invalid rows get centred value 0."""
    mean, var, count, const = seg_mean_var(values, valid, batch.order, batch.offsets, ddof)
    codes = batch.codes
    if leave_one_out:
        lm, lv = seg_loo_mean_var(values, valid, batch.order, batch.offsets, ddof)
        c = values - lm
        sigma = np.sqrt(lv)
    else:
        c = values - mean[codes]
        sigma = np.sqrt(var)[codes]
    cnt = count[codes]
    cst = const[codes]
    c = np.where(valid & ~cst & (cnt > 1), c, 0.0)
    return Centred(c, sigma, cnt, cst)


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


def group_z(values, valid, batch, *, eps, eps_mode, ddof, singleton, leave_one_out=False, final=False, scaled=True,
            out=None):
    """``(x - mu_g) / (sigma_g [+] eps)`` per group (the grpo rule); 0 on invalid rows and
    in constant groups; the singleton policy for groups of one. Without ``scaled`` the
    centred values ``x - mu_g`` (no division, so ``eps``, ``eps_mode`` and ``ddof`` play no
    part). ``final``: see :func:`placing`. ``out``: an array the device's kernel may write
    the rows into (a :func:`work` array; the composed path makes its own)."""
    st = kernels.steps()
    if not leave_one_out and st is not None:  # the same rule, one kernel
        dest = _dest(final)
        return _placed(st.seg_group_z(
            values, valid, batch.order, batch.offsets, ddof, eps, EPS_MODES.index(eps_mode), singleton == "raw", dest,
            scaled, out,
        ), final)
    c = centre(values, valid, batch, ddof, leave_one_out)
    z = divide(c.centred, c.sigma, eps, eps_mode) if scaled else c.centred
    z = np.where(valid & ~c.const & (c.count > 1), z, 0.0)
    return singleton_rule(z, values, valid, c.count, singleton, eps if scaled else None, eps_mode)


# ---------------------------------------------------------------------------------------
# batch-wide statistics, also over a table streamed in chunks
# ---------------------------------------------------------------------------------------
@dataclass
class BatchStats:
    """The batch-wide statistics of a table processed in group-complete chunks.

    A pass over the chunks records each statistic it does not know yet (merged over the
    chunks) and uses the known ones in place of the chunk's own. A statistic computed after
    one that was still unknown in the same estimator (or after an unknown one of the
    scheme, which every estimator depends on) rests on a chunk-local value, so it is not
    recorded: ``incomplete`` asks for another pass. Once a pass leaves nothing incomplete,
    every chunk's advantages equal the ones computed on the whole table at once."""

    known: dict[tuple[str, int], Tally] = field(default_factory=dict)
    pending: dict[tuple[str, int], Tally] = field(default_factory=dict)
    incomplete: bool = False
    # the scopes (estimator labels, "scheme:<policy>") that took any batch-wide step
    scopes: set[str] = field(default_factory=set)
    _scheme_unknown: bool = False

    def settle(self) -> bool:
        """End a pass: what was recorded becomes known. True when another pass is needed."""
        self.known.update(self.pending)
        self.pending = {}
        again, self.incomplete = self.incomplete, False
        return again


_STATS: contextvars.ContextVar[BatchStats | None] = contextvars.ContextVar("mocli_batch_stats", default=None)
_SECTION: contextvars.ContextVar[list | None] = contextvars.ContextVar("mocli_batch_section", default=None)


@contextlib.contextmanager
def batch_statistics(stats: BatchStats) -> Iterator[BatchStats]:
    """Use (and record) ``stats`` for one chunk's preparation and estimators."""
    stats._scheme_unknown = False
    token = _STATS.set(stats)
    try:
        yield stats
    finally:
        _STATS.reset(token)


@contextlib.contextmanager
def batch_scope(name: str) -> Iterator[None]:
    """Name the batch-wide steps run inside (one estimator, or the scheme): the n-th
    step of a scope is the same step in every chunk."""
    token = _SECTION.set([name, 0, False])
    try:
        yield
    finally:
        _SECTION.reset(token)


def batch_tally(local: Any) -> Any:
    """The statistic of the whole batch: ``local`` itself on a table in memory, the merge
    over every chunk when streaming (see :class:`BatchStats`)."""
    stats = _STATS.get()
    if stats is None:
        return local
    section = _SECTION.get() or ["", 0, False]
    key = (section[0], section[1])
    section[1] += 1
    stats.scopes.add(key[0])
    if key in stats.known:
        return stats.known[key]
    if section[2] or (stats._scheme_unknown and not key[0].startswith("scheme:")):
        stats.incomplete = True
    else:
        stats.pending[key] = merge(stats.pending.get(key), local)
    section[2] = True
    if key[0].startswith("scheme:"):
        stats._scheme_unknown = True
    return local


def valid_moments(x, valid) -> Moments:
    """:meth:`Moments.of` ``x[valid]``, without copying the rows out (host sums in fixed
    blocks, on either device)."""
    if kernels.steps() is not None:  # host sums on either device
        return Moments(*fused.masked_moments(np.ascontiguousarray(x, dtype=np.float64), valid))
    return Moments.of(x[valid])


def batch_mean_std(x, valid, ddof: int):
    """Mean and standard deviation (``ddof``) of ``x`` over ``valid`` (the whole batch),
    corrected two-pass; std 0 when the values are all equal or too few."""
    m = batch_tally(valid_moments(x, valid))
    if m.n == 0:
        return 0.0, 0.0
    if m.constant:
        return m.lo, 0.0
    return m.mean, m.std(ddof)


def whiten(x, valid, *, eps, eps_mode, ddof, length=None, var_eps=1e-8, final=False):
    """Batch whitening over ``valid`` rows; other rows get 0.

    Sequence level: ``(x - mean) / (std [+] eps)``. Token-weighted (``length`` given): each
    row counts ``length`` times, the variance is Bessel-corrected over the token count when
    ``ddof = 1``, and the scale is ``rsqrt(var + var_eps)`` (``eps_mode=floor``:
    ``rsqrt(max(var, var_eps))``), as verl's ``masked_whiten`` and OpenRLHF. ``final``: see
    :func:`placing`."""
    if length is None:
        m = batch_tally(valid_moments(x, valid))
        if m.constant:
            return np.zeros_like(x, dtype=np.float64)
        den = float(denominator(m.std(ddof), eps, eps_mode))
        if kernels.steps() is not None:  # a host pass on either device
            dest = _dest(final)
            return _placed(fused.masked_affine(x, valid, m.mean, den, dest), final)
        return np.where(valid, (x - m.mean) / den, 0.0)
    out = np.zeros_like(x, dtype=np.float64)
    xv = x[valid]
    m = batch_tally(Moments.of(xv, length[valid].astype(np.float64)))
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
