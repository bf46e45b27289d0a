"""One-pass CPU kernels for the estimators' steps: each would otherwise be several
primitives and NumPy expressions over whole columns.

On a batch in group order (see :meth:`mocli.core.rollouts.Batch.grouped`) each kernel reads its
rows front to back, once or twice per group while they are still in cache, and writes the
result once. The tests hold every kernel to the naive reference (and grpo's z-score to
the same rule composed of a primitive and NumPy, bit for bit). The per-group steps
(``STEPS``) are compiled for the GPU from the same Python bodies by
:mod:`mocli.kernels.cuda`; a :class:`mocli.kernels.Device` carries the device's. The
batch-wide sums here run on the host on either device.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from numba import njit
from numba.core import config as numba_config

from .cpu import _JIT, _corrected, _denominator, _u, seg_group_z, split  # noqa: F401  (a step: STEPS names it)

# the per-group estimator steps a backend provides (this module on the CPU, kernels.cuda
# on a GPU): the same names, signatures and numbers
STEPS = ("seg_group_z", "seg_expand", "seg_objective_sum", "seg_gd2po", "seg_dvao")

# a parallel reduction over rows is split into this many fixed blocks, so that the
# rounding of its sums never depends on the number of threads
_BLOCKS = 64
# the per-group kernels that need scratch take the groups in this many runs, one
# scratch per run
_GROUP_BLOCKS = 1024


# ---------------------------------------------------------------------------------------
# per-group affine map of the rows
# ---------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _expand_of(j, x, valid, order, offsets, shift, mul, den, live, dest, out):
    a = offsets[j]
    b = offsets[j + 1]
    if not live[j]:
        for p in range(a, b):
            out[_u(dest[_u(p)])] = 0.0
        return
    sh = shift[j]
    m = mul[j]
    d = den[j]
    for p in range(a, b):
        i = _u(order[_u(p)])
        out[_u(dest[_u(p)])] = (x[i] - sh) * m / d if valid[i] else 0.0


@njit(**_JIT)
def _seg_expand(part_lo, part_hi, x, valid, order, offsets, shift, mul, den, live, dest, out):
    for j in range(part_lo, part_hi):
        _expand_of(j, x, valid, order, offsets, shift, mul, den, live, dest, out)


def seg_expand(x, valid, order, offsets, shift, mul, den, live, dest=None):
    """Per row ``(x - shift_g) * mul_g / den_g`` on valid rows of live groups, else 0
    (``shift``, ``mul``, ``den`` and ``live`` are per group). The value of row ``order[p]``
    goes to ``out[dest[p]]`` (default ``dest = order``)."""
    out = np.empty(x.shape[0])
    split(_seg_expand, offsets.shape[0] - 1, x, valid, order, offsets, shift, mul, den, live, order if dest is None else dest, out)
    return out


# ---------------------------------------------------------------------------------------
# the vectoriser
# ---------------------------------------------------------------------------------------
# Numba leaves the SLP vectoriser off by default (it miscompiled other code in 2023);
# these kernels turn it on for their own compilation only. Division by zero cannot happen
# in them (every divisor is checked or a denominator), so they skip Python's zero test,
# which would otherwise put a branch between the lanes.
_VECTOR = dict(_JIT, error_model="numpy")
# the quad helpers that the per-group loops call (not inlined: Numba's array analysis
# fails on them) allocate nothing; without Numba's reference counting a call no longer
# increments and decrements the counts of its array arguments on entry and exit, atomic
# operations on counters that every thread shares (gd2po's kernel ~10% faster)
_CALLED = dict(_VECTOR, _nrt=False)


@contextlib.contextmanager
def _vectorised():
    """Compile whatever compiles inside with LLVM's SLP vectoriser on (Numba's
    process-wide setting, put back on the way out: a kernel that another thread compiles
    at that moment gets it too)."""
    before = numba_config.SLP_VECTORIZE
    numba_config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba_config.SLP_VECTORIZE = before


@njit(inline="always", **_VECTOR)
def _pick(c, a, b):
    return a if c else b


# ---------------------------------------------------------------------------------------
# batch-wide moments and whitening of the valid rows
# ---------------------------------------------------------------------------------------
# Each fixed block of rows is summed in four lanes, row ``a + 4q + l`` of the block
# ``[a, b)`` into lane ``l``, the lanes kept side by side, so that the vectoriser takes the
# four as one (the same order whatever the threads: the blocks are fixed). Four running
# sums instead of one also cut the chain of dependent additions a row waits on, and the
# lanes need no branch on the mask, which may follow no pattern (gd2po whitens its kept
# rows only): a branch there cost ~50% more than over an all-valid mask.
@njit(inline="always", **_VECTOR)
def _lane_cells(x, valid, i, b):
    """Rows ``i .. i+3``: four values and whether each counts (valid and before ``b``,
    the block's end). A full quad of rows is one load; only a block's last, partial
    quad reads fewer rows."""
    if i + 4 <= b:
        u = _u(i)
        one = np.uint64(1)
        return ((x[u], x[u + one], x[u + 2 * one], x[u + 3 * one]),
                (valid[u], valid[u + one], valid[u + 2 * one], valid[u + 3 * one]))
    last = b - 1
    v = (x[min(i, last)], x[min(i + 1, last)], x[min(i + 2, last)], x[min(i + 3, last)])
    return v, (valid[min(i, last)] & (i < b), valid[min(i + 1, last)] & (i + 1 < b),
               valid[min(i + 2, last)] & (i + 2 < b), valid[min(i + 3, last)] & (i + 3 < b))


@njit(**_VECTOR)
def _masked_moments(part_lo, part_hi, x, valid, parts):
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in range(part_lo, part_hi):
        a = blk * step
        b = min(a + step, n_rows)
        n0 = n1 = n2 = n3 = 0.0
        s0 = s1 = s2 = s3 = 0.0
        l0 = l1 = l2 = l3 = np.inf
        h0 = h1 = h2 = h3 = -np.inf
        for i in range(a, b, 4):
            (v0, v1, v2, v3), (o0, o1, o2, o3) = _lane_cells(x, valid, i, b)
            # the lanes written out, as in _quad_moments: with one helper per lane (the
            # same operations) the objective kernels ran 40-60% slower (lanes not paired)
            n0 += _pick(o0, 1.0, 0.0)
            n1 += _pick(o1, 1.0, 0.0)
            n2 += _pick(o2, 1.0, 0.0)
            n3 += _pick(o3, 1.0, 0.0)
            s0 += _pick(o0, v0, 0.0)
            s1 += _pick(o1, v1, 0.0)
            s2 += _pick(o2, v2, 0.0)
            s3 += _pick(o3, v3, 0.0)
            t0, t1 = _pick(o0, v0, np.inf), _pick(o1, v1, np.inf)
            t2, t3 = _pick(o2, v2, np.inf), _pick(o3, v3, np.inf)
            l0, l1, l2, l3 = _pick(t0 < l0, t0, l0), _pick(t1 < l1, t1, l1), _pick(t2 < l2, t2, l2), _pick(t3 < l3, t3, l3)
            t0, t1 = _pick(o0, v0, -np.inf), _pick(o1, v1, -np.inf)
            t2, t3 = _pick(o2, v2, -np.inf), _pick(o3, v3, -np.inf)
            h0, h1, h2, h3 = _pick(t0 > h0, t0, h0), _pick(t1 > h1, t1, h1), _pick(t2 > h2, t2, h2), _pick(t3 > h3, t3, h3)
        parts[blk, 0], parts[blk, 1], parts[blk, 2], parts[blk, 3] = n0, n1, n2, n3
        parts[blk, 4], parts[blk, 5], parts[blk, 6], parts[blk, 7] = s0, s1, s2, s3
        parts[blk, 8], parts[blk, 9], parts[blk, 10], parts[blk, 11] = l0, l1, l2, l3
        parts[blk, 12], parts[blk, 13], parts[blk, 14], parts[blk, 15] = h0, h1, h2, h3


@njit(**_VECTOR)
def _masked_centred(part_lo, part_hi, x, valid, m, parts):
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in range(part_lo, part_hi):
        a = blk * step
        b = min(a + step, n_rows)
        c0 = c1 = c2 = c3 = 0.0
        q0 = q1 = q2 = q3 = 0.0
        for i in range(a, b, 4):
            (v0, v1, v2, v3), (o0, o1, o2, o3) = _lane_cells(x, valid, i, b)
            d0, d1 = _pick(o0, v0 - m, 0.0), _pick(o1, v1 - m, 0.0)
            d2, d3 = _pick(o2, v2 - m, 0.0), _pick(o3, v3 - m, 0.0)
            c0 += d0
            c1 += d1
            c2 += d2
            c3 += d3
            q0 += d0 * d0
            q1 += d1 * d1
            q2 += d2 * d2
            q3 += d3 * d3
        parts[blk, 0], parts[blk, 1], parts[blk, 2], parts[blk, 3] = c0, c1, c2, c3
        parts[blk, 4], parts[blk, 5], parts[blk, 6], parts[blk, 7] = q0, q1, q2, q3


def masked_moments(x, valid):
    """Count, mean, centred sum of squares, minimum and maximum of ``x[valid]`` (corrected
    two-pass, as :meth:`mocli.core.tally.Moments.of`), without copying the valid rows out."""
    parts = np.empty((_BLOCKS, 16))
    with _vectorised():
        split(_masked_moments, _BLOCKS, x, valid, parts, size=x.shape[0])
    n = float(parts[:, 0:4].sum())
    lo, hi = float(parts[:, 8:12].min()), float(parts[:, 12:16].max())
    if n == 0 or lo == hi:
        return n, (lo if n else 0.0), 0.0, lo, hi
    m = float(parts[:, 4:8].sum()) / n
    cs = np.empty((_BLOCKS, 8))
    with _vectorised():
        split(_masked_centred, _BLOCKS, x, valid, m, cs, size=x.shape[0])
    c = float(cs[:, 0:4].sum())
    return n, m + c / n, max(float(cs[:, 4:8].sum()) - c * c / n, 0.0), lo, hi


@njit(**_JIT)
def _pair_pass(part_lo, part_hi, x, y, vx, vy, mx, my, parts):
    """Per fixed block of rows where ``vx`` and ``vy`` hold: count, and the sums of ``dx``,
    ``dy``, ``dx^2``, ``dy^2`` and ``dx dy`` with ``dx = x - mx``, ``dy = y - my``."""
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in range(part_lo, part_hi):
        n = 0
        cx = 0.0
        cy = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for i in range(blk * step, min(blk * step + step, n_rows)):
            if vx[i] and vy[i]:
                dx = x[i] - mx
                dy = y[i] - my
                n += 1
                cx += dx
                cy += dy
                sxx += dx * dx
                syy += dy * dy
                sxy += dx * dy
        parts[blk, 0] = n
        parts[blk, 1] = cx
        parts[blk, 2] = cy
        parts[blk, 3] = sxx
        parts[blk, 4] = syy
        parts[blk, 5] = sxy


def masked_comoments(x, y, vx, vy):
    """Count, means and centred sums of squares and cross products (corrected two-pass)
    of ``(x, y)`` over the rows where both ``vx`` and ``vy`` hold, reading the columns in
    place (strided views of a matrix will do): the numbers of
    :meth:`mocli.core.tally.CoMoments.of` on the selected rows, to rounding. The same kernel
    makes both passes, about 0 and then about the means."""
    parts = np.empty((_BLOCKS, 6))
    split(_pair_pass, _BLOCKS, x, y, vx, vy, 0.0, 0.0, parts, size=x.shape[0])
    n = float(parts[:, 0].sum())
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    mx, my = float(parts[:, 1].sum()) / n, float(parts[:, 2].sum()) / n
    split(_pair_pass, _BLOCKS, x, y, vx, vy, mx, my, parts, size=x.shape[0])
    _, cx, cy, sxx, syy, sxy = (float(v) for v in parts.sum(axis=0))
    return (n, mx + cx / n, my + cy / n, max(sxx - cx * cx / n, 0.0), max(syy - cy * cy / n, 0.0),
            sxy - cx * cy / n)


@njit(**_JIT)
def _masked_affine(part_lo, part_hi, x, valid, shift, den, out):
    for i in range(part_lo, part_hi):
        out[i] = (x[i] - shift) / den if valid[i] else 0.0


@njit(**_JIT)
def _masked_affine_to(part_lo, part_hi, x, valid, shift, den, dest, out):
    for i in range(part_lo, part_hi):
        out[dest[i]] = (x[i] - shift) / den if valid[i] else 0.0


def masked_affine(x, valid, shift, den, dest=None):
    """``(x - shift) / den`` on valid rows, 0 elsewhere; row ``i``'s value goes to
    ``out[dest[i]]`` when ``dest`` is given."""
    out = np.empty(x.shape[0])
    if dest is None:
        split(_masked_affine, x.shape[0], x, valid, float(shift), float(den), out)
    else:
        split(_masked_affine_to, x.shape[0], x, valid, float(shift), float(den), dest, out)
    return out


# ---------------------------------------------------------------------------------------
# per-objective group statistics (gdpo, advantage_sum, gd2po, dvao)
#
# These kernels read the reward matrix as it lies, row-major, flattened (``flat``: row p's
# K cells at ``p*K ...``; see ``_flat``), and the rows are in group order, so a group's
# cells lie together and stay in cache while the group's passes read them. Four weighted
# objectives that sit side by side in the matrix are taken together ("a quad"): a row's
# four cells are one load, and LLVM's SLP vectoriser turns the four lanes' arithmetic into
# vector instructions (about twice as fast as four column passes on 4M rows x 4). Any
# other objective is taken on its own. A quad's arithmetic per lane is its column pass's,
# so both ways give the same numbers (the tests hold a quad's lanes to the column pass).
# ---------------------------------------------------------------------------------------
def _width(k):
    """The width argument of the objective kernels (see ``_flat``): ``(0,) * k`` where a
    quad fits (four or more columns), else ``()``, so that narrower matrices share one
    compiled kernel that reads the width at run time."""
    return (0,) * k if k >= 4 else ()


def _flat(r):
    """The reward matrix as the objective kernels read it: row-major, flattened (a view
    of the usual C-ordered matrix) and its number of columns.

    The CPU kernels also take the number of columns as the length of a tuple, ``(0,) *
    K`` (``_width``), whose length is part of its type: each width that can hold a quad
    gets its own compiled kernel in which the distance between two rows' cells is a
    constant, which is what lets LLVM vectorise the row loops that read a quad's cells
    across rows (four rows at a time, the cells regrouped in registers): gd2po's kernel
    54 -> 44 ms, dvao's 33 -> 30, the objective sum 36 -> 32 on 4M rows x 4 (lower
    quartiles of 21 alternating calls). A new width costs one compilation of the three
    kernels (~35 s, cached on disk); narrower matrices, which have no quad to gain, share
    one. Rows are indexed with unsigned positions there too, so that no negative-index
    fix-up stands in the way."""
    r = np.ascontiguousarray(r, dtype=np.float64)
    return r.reshape(-1), r.shape[1]


@njit(inline="always", **_VECTOR)
def _is_quad(cols, c):
    """Whether weighted objectives ``c .. c+3`` are neighbouring matrix columns."""
    if c + 4 > cols.shape[0]:
        return False
    k = cols[c]
    return cols[c + 1] == k + 1 and cols[c + 2] == k + 2 and cols[c + 3] == k + 3


@njit(inline="always", **_VECTOR)
def _quad_cells(flat, K, p, k):
    """Cells ``k .. k+3`` of row ``p``. Unsigned positions: no negative-index fix-up
    between them, so LLVM sees four neighbours (one load)."""
    u = np.uint64(p * K + k)
    return flat[u], flat[u + np.uint64(1)], flat[u + np.uint64(2)], flat[u + np.uint64(3)]


@njit(inline="always", **_VECTOR)
def _column_moments(x, sc, a, b):
    """Count, mean, centred sum of squares (corrected two-pass, as ``_two_pass``), least
    and largest value of the valid cells of ``x[a:b]`` (one column of the matrix, a
    strided view; valid: scorable and not NaN), and whether every cell of the run is valid
    (then the callers skip the cell tests)."""
    n = 0
    s = 0.0
    lo = np.inf
    hi = -np.inf
    for p in range(a, b):
        v = x[p]
        ok = sc[p] and not math.isnan(v)
        n += 1 if ok else 0
        s += v if ok else 0.0
        lo = min(lo, v if ok else np.inf)
        hi = max(hi, v if ok else -np.inf)
    dense = n == b - a
    if n == 0 or lo == hi:
        return n, (lo if n else 0.0), 0.0, lo, hi, dense
    m = s / n
    c = 0.0
    ss = 0.0
    if dense:
        for p in range(a, b):
            d = x[p] - m
            c += d
            ss += d * d
    else:
        for p in range(a, b):
            v = x[p]
            d = v - m if sc[p] and not math.isnan(v) else 0.0
            c += d
            ss += d * d
    mean, ss = _corrected(n, m, c, ss)
    return n, mean, ss, lo, hi, dense


# a quad's statistics, lane by lane: count, mean, centred sum of squares, least and
# largest value, and the centred pass's plain sum
_N, _MEAN, _SS, _LO, _HI, _C = 0, 4, 8, 12, 16, 20
STATS = 24


@njit(**_CALLED)
def _quad_sums(flat, K, k, sc, a, b, st):
    """The two passes of ``_column_moments`` over columns ``k .. k+3`` side by side, lane
    by lane the same operations, into ``st`` (see ``STATS``; the count as a float), not
    yet finished: ``_MEAN`` holds the first pass's mean, ``_C`` and ``_SS`` the centred
    pass's sums. Each pass ends by storing its four lanes next to each other: that is what
    lets the SLP vectoriser take the loop (sums kept only in registers are left scalar)."""
    n0 = n1 = n2 = n3 = 0.0
    s0 = s1 = s2 = s3 = 0.0
    l0 = l1 = l2 = l3 = np.inf
    h0 = h1 = h2 = h3 = -np.inf
    for p in range(a, b):
        ok = sc[_u(p)]
        v0, v1, v2, v3 = _quad_cells(flat, K, p, k)
        o0, o1, o2, o3 = ok & (v0 == v0), ok & (v1 == v1), ok & (v2 == v2), ok & (v3 == v3)
        n0 += _pick(o0, 1.0, 0.0)
        n1 += _pick(o1, 1.0, 0.0)
        n2 += _pick(o2, 1.0, 0.0)
        n3 += _pick(o3, 1.0, 0.0)
        s0 += _pick(o0, v0, 0.0)
        s1 += _pick(o1, v1, 0.0)
        s2 += _pick(o2, v2, 0.0)
        s3 += _pick(o3, v3, 0.0)
        t0, t1, t2, t3 = _pick(o0, v0, np.inf), _pick(o1, v1, np.inf), _pick(o2, v2, np.inf), _pick(o3, v3, np.inf)
        l0, l1, l2, l3 = _pick(t0 < l0, t0, l0), _pick(t1 < l1, t1, l1), _pick(t2 < l2, t2, l2), _pick(t3 < l3, t3, l3)
        t0, t1, t2, t3 = _pick(o0, v0, -np.inf), _pick(o1, v1, -np.inf), _pick(o2, v2, -np.inf), _pick(o3, v3, -np.inf)
        h0, h1, h2, h3 = _pick(t0 > h0, t0, h0), _pick(t1 > h1, t1, h1), _pick(t2 > h2, t2, h2), _pick(t3 > h3, t3, h3)
    m0, m1, m2, m3 = s0 / max(n0, 1.0), s1 / max(n1, 1.0), s2 / max(n2, 1.0), s3 / max(n3, 1.0)
    st[_N], st[_N + 1], st[_N + 2], st[_N + 3] = n0, n1, n2, n3
    st[_MEAN], st[_MEAN + 1], st[_MEAN + 2], st[_MEAN + 3] = m0, m1, m2, m3
    st[_LO], st[_LO + 1], st[_LO + 2], st[_LO + 3] = l0, l1, l2, l3
    st[_HI], st[_HI + 1], st[_HI + 2], st[_HI + 3] = h0, h1, h2, h3
    c0 = c1 = c2 = c3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    for p in range(a, b):
        ok = sc[_u(p)]
        v0, v1, v2, v3 = _quad_cells(flat, K, p, k)
        d0 = _pick(ok & (v0 == v0), v0 - m0, 0.0)
        d1 = _pick(ok & (v1 == v1), v1 - m1, 0.0)
        d2 = _pick(ok & (v2 == v2), v2 - m2, 0.0)
        d3 = _pick(ok & (v3 == v3), v3 - m3, 0.0)
        c0 += d0
        c1 += d1
        c2 += d2
        c3 += d3
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
    st[_C], st[_C + 1], st[_C + 2], st[_C + 3] = c0, c1, c2, c3
    st[_SS], st[_SS + 1], st[_SS + 2], st[_SS + 3] = q0, q1, q2, q3


@njit(inline="always", **_VECTOR)
def _lane_finish(st, i):
    """Lane ``i``'s mean and centred sum of squares from its unfinished sums
    (``_quad_sums``), as ``_column_moments`` finishes, with selects in place of branches
    (the same operations on the same values where a result is kept, so the same bits)."""
    n = st[_N + i]
    lo = st[_LO + i]
    mean, ss = _corrected(_pick(n > 1.0, n, 1.0), st[_MEAN + i], st[_C + i], st[_SS + i])
    varies = (n > 0.0) & (lo != st[_HI + i])
    return _pick(varies, mean, _pick(n > 0.0, lo, 0.0)), _pick(varies, ss, 0.0)


@njit(**_CALLED)
def _quad_moments(flat, K, k, sc, a, b, st):
    """``_column_moments`` of columns ``k .. k+3`` into ``st``: ``_quad_sums`` finished
    lane by lane (``_lane_finish``), the lanes stored side by side."""
    _quad_sums(flat, K, k, sc, a, b, st)
    m0, q0 = _lane_finish(st, 0)
    m1, q1 = _lane_finish(st, 1)
    m2, q2 = _lane_finish(st, 2)
    m3, q3 = _lane_finish(st, 3)
    st[_MEAN], st[_MEAN + 1], st[_MEAN + 2], st[_MEAN + 3] = m0, m1, m2, m3
    st[_SS], st[_SS + 1], st[_SS + 2], st[_SS + 3] = q0, q1, q2, q3


@njit(inline="always", **_VECTOR)
def _z_rule(n, m, ss, lo, hi, ddof, eps, mode, raw_single):
    """The z-score rule of ``_seg_group_z`` for one objective of one group from its
    moments: ``(shift, den, live, top)``; a valid cell's z is ``(x - shift) / den`` when
    ``live``, and every cell's z is 0 otherwise. ``top`` is the largest ``|z|`` of the
    group's cells (the same bits as taking it cell by cell: rounding is monotone, so it
    sits at the least or the largest value; dividing the larger distance from the mean
    once by the positive ``den`` gives the larger of the two quotients).

    Selects in place of branches on the group's state (whether an objective is constant
    in a group, or lone, follows no pattern a branch predictor could learn; for a quad,
    LLVM also puts part of the four lanes' divisions into vector instructions): the same
    operations on the same values where a result is used, so the same bits."""
    var = _pick(n > ddof, ss / _pick(n > ddof, n - ddof, 1.0), 0.0)
    den = _denominator(math.sqrt(var), eps, mode)
    live = (n > 1) & (lo != hi)
    single = raw_single & (n == 1)
    lone = _denominator(1.0, eps, mode)
    spread = max(abs(lo - m), abs(hi - m))
    return (_pick(live, m, 0.0), _pick(single, lone, _pick(live, den, 1.0)), live | single,
            _pick(live, spread / den, _pick(single, abs(lo) / lone, 0.0)))


@njit(inline="always", **_VECTOR)
def _column_z(x, sc, a, b, ddof, eps, mode, raw_single):
    """``_z_rule`` for the cells ``x[a:b]``: ``(shift, den, live, dense, top)``
    (``dense``: every cell valid)."""
    n, m, ss, lo, hi, dense = _column_moments(x, sc, a, b)
    shift, den, live, top = _z_rule(n, m, ss, lo, hi, ddof, eps, mode, raw_single)
    return shift, den, live, dense, top


@njit(inline="always", **_VECTOR)
def _lane_rule(st, i, ddof, eps, mode, raw_single):
    """``_z_rule`` of lane ``i`` of a quad from its unfinished sums (``_quad_sums``)."""
    mean, ss = _lane_finish(st, i)
    return _z_rule(st[_N + i], mean, ss, st[_LO + i], st[_HI + i], ddof, eps, mode, raw_single)


@njit(**_CALLED)
def _quad_z(flat, K, k, sc, a, b, ddof, eps, mode, raw_single, st):
    """``_z_rule`` for columns ``k .. k+3``: 4-tuples ``shift, den, live, top``."""
    _quad_sums(flat, K, k, sc, a, b, st)
    r0 = _lane_rule(st, 0, ddof, eps, mode, raw_single)
    r1 = _lane_rule(st, 1, ddof, eps, mode, raw_single)
    r2 = _lane_rule(st, 2, ddof, eps, mode, raw_single)
    r3 = _lane_rule(st, 3, ddof, eps, mode, raw_single)
    return ((r0[0], r1[0], r2[0], r3[0]), (r0[1], r1[1], r2[1], r3[1]), (r0[2], r1[2], r2[2], r3[2]),
            (r0[3], r1[3], r2[3], r3[3]))


@njit(inline="always", **_VECTOR)
def _weigh(acc, w0, w1, w2, w3, z0, z1, z2, z3):
    """``acc + sum w z`` over a quad's lanes, added in column order (the order the column
    pass adds them)."""
    return (((acc + w0 * z0) + w1 * z1) + w2 * z2) + w3 * z3


@njit(inline="always", **_VECTOR)
def _quad_row_z(flat, K, p, k, ok, shift, den, live):
    """Row ``p``'s four z values of columns ``k .. k+3`` (0 for an invalid cell or a dead
    lane)."""
    v0, v1, v2, v3 = _quad_cells(flat, K, p, k)
    return (_pick(live[0] & ok & (v0 == v0), (v0 - shift[0]) / den[0], 0.0),
            _pick(live[1] & ok & (v1 == v1), (v1 - shift[1]) / den[1], 0.0),
            _pick(live[2] & ok & (v2 == v2), (v2 - shift[2]) / den[2], 0.0),
            _pick(live[3] & ok & (v3 == v3), (v3 - shift[3]) / den[3], 0.0))


@njit(inline="always", **_VECTOR)
def _add_column(flat, K, k, wc, sc, a, b, ddof, eps, mode, raw_single, out):
    """Add ``wc`` times column ``k``'s z-scores to the rows ``a:b`` of ``out``."""
    x = flat[k::K]  # column k, a strided view
    shift, den, live, dense, _ = _column_z(x, sc, a, b, ddof, eps, mode, raw_single)
    if not live:
        return
    if dense:
        for p in range(a, b):
            out[p] += wc * ((x[p] - shift) / den)
    else:
        for p in range(a, b):
            v = x[p]
            if sc[p] and not math.isnan(v):
                out[p] += wc * ((v - shift) / den)


@njit(inline="always", **_VECTOR)
def _objective_sum_of(j, flat, K, cols, w, sc, offsets, ddof, eps, mode, raw_single, st, out):
    a = offsets[j]
    b = offsets[j + 1]
    for p in range(a, b):
        out[_u(p)] = 0.0
    c = 0
    while c < cols.shape[0]:
        k = cols[c]
        if _is_quad(cols, c):
            q_shift, q_den, q_live, _ = _quad_z(flat, K, k, sc, a, b, ddof, eps, mode, raw_single, st)
            w0, w1, w2, w3 = w[c], w[c + 1], w[c + 2], w[c + 3]
            for p in range(a, b):
                u = _u(p)
                z0, z1, z2, z3 = _quad_row_z(flat, K, p, k, sc[u], q_shift, q_den, q_live)
                out[u] = _weigh(out[u], w0, w1, w2, w3, z0, z1, z2, z3)
            c += 4
            continue
        _add_column(flat, K, k, w[c], sc, a, b, ddof, eps, mode, raw_single, out)
        c += 1


@njit(**_VECTOR)
def _seg_objective_sum(part_lo, part_hi, flat, n_cols, width, cols, w, sc, offsets, ddof, eps, mode, raw_single, out):
    K = len(width) if len(width) > 0 else n_cols  # see _width
    g = offsets.shape[0] - 1
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        st = np.empty(STATS)  # a quad's statistics, per worker
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            _objective_sum_of(j, flat, K, cols, w, sc, offsets, ddof, eps, mode, raw_single, st, out)


@njit(**_VECTOR)
def _seg_column_sum(part_lo, part_hi, flat, K, cols, w, sc, offsets, ddof, eps, mode, raw_single, out):
    """``_seg_objective_sum`` where no four weighted objectives are neighbours: the same
    column passes, without the quad code (a smaller kernel, compiled in a few seconds)."""
    for j in range(part_lo, part_hi):
        a = offsets[j]
        b = offsets[j + 1]
        for p in range(a, b):
            out[p] = 0.0
        for c in range(cols.shape[0]):
            _add_column(flat, K, cols[c], w[c], sc, a, b, ddof, eps, mode, raw_single, out)


def has_quad(cols) -> bool:
    """Whether four of the weighted objectives ``cols`` are neighbouring columns."""
    cols = np.asarray(cols)
    return any(cols[c + 3] - cols[c] == 3 for c in range(cols.shape[0] - 3))


def seg_objective_sum(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single, out=None):
    """``sum_c w_c z_c`` per row, ``z_c`` being reward column ``cols[c]``'s group z-score
    over the scorable rows where it is not NaN (the rule of ``seg_group_z`` per column; 0
    elsewhere), for rows in group order (``offsets``), into ``out`` (a new array when
    None; every row is written). (Writing straight to file order from here measured
    slower than the separate scatter that follows.)"""
    out = np.empty(r.shape[0]) if out is None else out
    cols = np.asarray(cols, dtype=np.int64)
    flat, K = _flat(r)
    if not has_quad(cols):
        split(_seg_column_sum, offsets.shape[0] - 1, flat, K, cols, np.asarray(w, dtype=np.float64), scorable, offsets, int(ddof), float(eps),
                        int(mode), bool(raw_single), out)
        return out
    with _vectorised():
        split(_seg_objective_sum, min(offsets.shape[0] - 1, _GROUP_BLOCKS), flat, K, _width(K), cols,
              np.asarray(w, dtype=np.float64), scorable, offsets, int(ddof), float(eps), int(mode), bool(raw_single), out,
              size=offsets.shape[0] - 1)
    return out


@njit(inline="always", **_VECTOR)
def _signs(z, tol):
    """Bit 1: ``z`` above the zero test's band, bit 2: below it."""
    return (1 if z > tol else 0) | (2 if z < -tol else 0)


@njit(**_CALLED)
def _gd2po_quad(flat, K, k, w, sc, a, b, ddof, eps, mode, raw_single, tau, st, v_out, kept):
    """``_gd2po_of`` when the weighted objectives are exactly one quad (four objectives
    side by side, the usual case): a row's conflict state is complete once its four z
    values are made, so the row is decided in the same loop, with selects only, and no
    per-row state is kept. With the matrix width a compile-time constant (see
    ``_seg_gd2po``) LLVM vectorises that loop across rows, four at a time. The same
    operations in the same order as the general path, so the same bits."""
    q_shift, q_den, q_live, q_top = _quad_z(flat, K, k, sc, a, b, ddof, eps, mode, raw_single, st)
    t0, t1, t2, t3 = (1e-9 * max(q_top[0], 1.0), 1e-9 * max(q_top[1], 1.0), 1e-9 * max(q_top[2], 1.0),
                      1e-9 * max(q_top[3], 1.0))
    w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
    n_scorable = 0
    n_kept = 0
    for p in range(a, b):
        u = _u(p)
        ok = sc[u]
        z0, z1, z2, z3 = _quad_row_z(flat, K, p, k, ok, q_shift, q_den, q_live)
        conflict = (_signs(z0, t0) | _signs(z1, t1) | _signs(z2, t2) | _signs(z3, t3)) == 3
        total = (((0.0 + abs(z0)) + abs(z1)) + abs(z2)) + abs(z3)
        share = ((((0.0 + z0) + z1) + z2) + z3) / _pick(total > 0.0, total, 1.0)
        keep = ok & (not (conflict & (abs(share) < tau)))
        kept[u] = keep
        n_scorable += _pick(ok, 1, 0)
        n_kept += _pick(keep, 1, 0)
        v_out[u] = _weigh(0.0, w0, w1, w2, w3, z0, z1, z2, z3)
    rho = n_kept / n_scorable if n_scorable > 0 else 0.0
    for p in range(a, b):
        v_out[_u(p)] *= rho


@njit(inline="always", **_VECTOR)
def _gd2po_of(j, flat, K, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, st, sign, total, sm, base, v_out,
              kept):
    """Group ``j``'s rows of :func:`seg_gd2po`; its per-row conflict state lives in
    ``sign``, ``total``, ``sm`` from ``base`` on (a scratch run per worker on the CPU, the
    group's own rows of row-sized arrays on a GPU), a quad's statistics in ``st``."""
    a = offsets[j]
    b = offsets[j + 1]
    if cols.shape[0] == 4 and _is_quad(cols, 0):
        _gd2po_quad(flat, K, cols[0], w, sc, a, b, ddof, eps, mode, raw_single, tau, st, v_out, kept)
        return
    for q in range(b - a):
        sign[base + q] = 0
        total[base + q] = 0.0
        sm[base + q] = 0.0
        v_out[a + q] = 0.0
    c = 0
    while c < cols.shape[0]:
        k = cols[c]
        if _is_quad(cols, c):
            q_shift, q_den, q_live, q_top = _quad_z(flat, K, k, sc, a, b, ddof, eps, mode, raw_single, st)
            # the zero test's scale per lane
            t0, t1, t2, t3 = (1e-9 * max(q_top[0], 1.0), 1e-9 * max(q_top[1], 1.0), 1e-9 * max(q_top[2], 1.0),
                              1e-9 * max(q_top[3], 1.0))
            w0, w1, w2, w3 = w[c], w[c + 1], w[c + 2], w[c + 3]
            for p in range(a, b):
                z0, z1, z2, z3 = _quad_row_z(flat, K, p, k, sc[p], q_shift, q_den, q_live)
                q = base + p - a
                sign[q] |= _signs(z0, t0) | _signs(z1, t1) | _signs(z2, t2) | _signs(z3, t3)
                total[q] = (((total[q] + abs(z0)) + abs(z1)) + abs(z2)) + abs(z3)
                sm[q] = (((sm[q] + z0) + z1) + z2) + z3
                v_out[p] = _weigh(v_out[p], w0, w1, w2, w3, z0, z1, z2, z3)
            c += 4
            continue
        x = flat[k::K]  # column k, a strided view
        shift, den, live, dense, top = _column_z(x, sc, a, b, ddof, eps, mode, raw_single)
        wc = w[c]
        c += 1
        if not live:
            continue  # z = 0 on every row: no sign, nothing to add
        tol = 1e-9 * max(top, 1.0)  # the zero test's scale
        for p in range(a, b):
            v = x[p]
            zz = (v - shift) / den if dense or (sc[p] and not math.isnan(v)) else 0.0
            q = base + p - a
            sign[q] |= _signs(zz, tol)
            total[q] += abs(zz)
            sm[q] += zz
            v_out[p] += wc * zz
    n_scorable = 0
    n_kept = 0
    for p in range(a, b):
        q = base + p - a
        share = sm[q] / total[q] if total[q] > 0.0 else 0.0
        ok = sc[p]
        keep = ok and not (sign[q] == 3 and abs(share) < tau)
        kept[p] = keep
        n_scorable += 1 if ok else 0
        n_kept += 1 if keep else 0
    rho = n_kept / n_scorable if n_scorable > 0 else 0.0
    for p in range(a, b):
        v_out[p] = v_out[p] * rho


@njit(**_VECTOR)
def _seg_gd2po(part_lo, part_hi, flat, n_cols, width, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, v_out, kept):
    K = len(width) if len(width) > 0 else n_cols  # see _width
    g = offsets.shape[0] - 1
    size = 0
    for j in range(g):
        size = max(size, offsets[j + 1] - offsets[j])
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        # per row of the group: sign bits seen (1: some z > 0, 2: some z < 0 beyond the
        # zero test), sum of |z|, sum of z; the weighted sum gathers in v_out
        sign = np.empty(size, dtype=np.int64)
        total = np.empty(size)
        sm = np.empty(size)
        st = np.empty(STATS)
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            _gd2po_of(j, flat, K, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, st, sign, total, sm, 0, v_out,
                      kept)


def seg_gd2po(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single, tau, out=None):
    """gd2po up to its batch whitening, rows in group order: per row ``v = (sum_k w_k
    z_k) * rho_g`` and the ``kept`` mask (see the estimator), into ``out = (v, kept)``
    (new arrays when None; every row is written)."""
    n = r.shape[0]
    v, kept = (np.empty(n), np.empty(n, dtype=np.bool_)) if out is None else out
    with _vectorised():
        flat, K = _flat(r)
        split(_seg_gd2po, min(offsets.shape[0] - 1, _GROUP_BLOCKS), flat, K, _width(K), np.asarray(cols, dtype=np.int64),
              np.asarray(w, dtype=np.float64), scorable, offsets, int(ddof), float(eps), int(mode), bool(raw_single),
              float(tau), v, kept, size=offsets.shape[0] - 1)
    return v, kept


@njit(inline="always", **_VECTOR)
def _lane_varies(st, i):
    """Whether lane ``i`` of a quad has valid cells that are not all equal."""
    return st[_N + i] > 0.0 and st[_LO + i] != st[_HI + i]


@njit(inline="always", **_VECTOR)
def _lane_sigma(st, i):
    """Lane ``i``'s population standard deviation (0 for a lane without valid cells)."""
    return math.sqrt(st[_SS + i] / max(st[_N + i], 1.0))


@njit(inline="always", **_VECTOR)
def _dvao_of(j, flat, K, cols, w, sc, offsets, raw_lone, st, out):
    a = offsets[j]
    b = offsets[j + 1]
    nc = cols.shape[0]
    lone = 0
    for p in range(a, b):
        lone += 1 if sc[p] else 0
    if lone == 1:
        for p in range(a, b):
            v = 0.0
            if raw_lone and sc[p]:
                num = 0.0
                sw = 0.0
                for c in range(nc):
                    x = flat[p * K + cols[c]]
                    if not math.isnan(x):
                        num += w[c] * x
                        sw += w[c]
                v = num / sw if sw != 0.0 else 0.0
            out[p] = v
        return
    for p in range(a, b):
        out[_u(p)] = 0.0
    den = 0.0
    c = 0
    while c < nc:
        k = cols[c]
        if _is_quad(cols, c):
            _quad_moments(flat, K, k, sc, a, b, st)
            # a lane whose centred values are exactly 0 (no valid cell, or constant) adds
            # nothing to either sum
            l0, l1, l2, l3 = (_lane_varies(st, 0), _lane_varies(st, 1), _lane_varies(st, 2), _lane_varies(st, 3))
            w0, w1, w2, w3 = (_pick(l0, w[c], 0.0), _pick(l1, w[c + 1], 0.0), _pick(l2, w[c + 2], 0.0),
                              _pick(l3, w[c + 3], 0.0))
            den = ((((den + w0 * _lane_sigma(st, 0)) + w1 * _lane_sigma(st, 1)) + w2 * _lane_sigma(st, 2))
                   + w3 * _lane_sigma(st, 3))
            m0, m1, m2, m3 = st[_MEAN], st[_MEAN + 1], st[_MEAN + 2], st[_MEAN + 3]
            for p in range(a, b):
                u = _u(p)
                ok = sc[u]
                v0, v1, v2, v3 = _quad_cells(flat, K, p, k)
                out[u] = ((((out[u] + _pick(l0 & ok & (v0 == v0), w0 * (v0 - m0), 0.0))
                            + _pick(l1 & ok & (v1 == v1), w1 * (v1 - m1), 0.0))
                           + _pick(l2 & ok & (v2 == v2), w2 * (v2 - m2), 0.0))
                          + _pick(l3 & ok & (v3 == v3), w3 * (v3 - m3), 0.0))
            c += 4
            continue
        x = flat[k::K]  # column k, a strided view
        n, m, ss, lo, hi, dense = _column_moments(x, sc, a, b)
        wc = w[c]
        c += 1
        if n == 0 or lo == hi:
            continue  # centred values exactly 0, sigma 0
        den += wc * math.sqrt(ss / n)
        if dense:
            for p in range(a, b):
                out[p] += wc * (x[p] - m)
        else:
            for p in range(a, b):
                v = x[p]
                if sc[p] and not math.isnan(v):
                    out[p] += wc * (v - m)
    for p in range(a, b):
        u = _u(p)
        out[u] = out[u] / den if den != 0.0 else 0.0


@njit(**_VECTOR)
def _seg_dvao(part_lo, part_hi, flat, n_cols, width, cols, w, sc, offsets, raw_lone, out):
    K = len(width) if len(width) > 0 else n_cols  # see _width
    g = offsets.shape[0] - 1
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        st = np.empty(STATS)
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            _dvao_of(j, flat, K, cols, w, sc, offsets, raw_lone, st, out)


def seg_dvao(r, cols, w, scorable, offsets, raw_lone, out=None):
    """dvao's advantages (see the estimator) for rows in group order, into ``out`` (a new
    array when None; every row is written)."""
    out = np.empty(r.shape[0]) if out is None else out
    with _vectorised():
        flat, K = _flat(r)
        split(_seg_dvao, min(offsets.shape[0] - 1, _GROUP_BLOCKS), flat, K, _width(K), np.asarray(cols, dtype=np.int64),
              np.asarray(w, dtype=np.float64), scorable, offsets, bool(raw_lone), out, size=offsets.shape[0] - 1)
    return out
