"""One-pass CPU kernels for estimator steps that the composed path writes as several
primitives and NumPy expressions over whole columns.

On a batch in group order (see :meth:`mocli.batch.Batch.grouped`) each kernel reads its
rows front to back, once or twice per group while they are still in cache, and writes the
result once, where the composed path makes a NumPy pass over every row per operation.
Every kernel here gives the numbers of its composed counterpart (the tests compare them;
most are the same operations in the same order, so the same bits). The per-group steps
(``STEPS``) have CUDA twins in :mod:`mocli.kernels.cuda`; :func:`mocli.kernels.steps` picks
the device's. The batch-wide sums here run on the host on either device.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .cpu import _JIT, _denominator, seg_group_z

# the per-group estimator steps a backend provides (this module on the CPU, kernels.cuda
# on a GPU): the same names, signatures and numbers
STEPS = ("seg_group_z", "seg_expand", "seg_objective_sum", "seg_gd2po", "seg_dvao")

# a parallel reduction over rows is split into this many fixed blocks, so that the
# rounding of its sums never depends on the number of threads
_BLOCKS = 64


# ---------------------------------------------------------------------------------------
# per-group affine map of the rows
# ---------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _expand_of(j, x, valid, order, offsets, shift, mul, den, live, dest, out):
    a = offsets[j]
    b = offsets[j + 1]
    if not live[j]:
        for p in range(a, b):
            out[dest[p]] = 0.0
        return
    sh = shift[j]
    m = mul[j]
    d = den[j]
    for p in range(a, b):
        i = order[p]
        out[dest[p]] = (x[i] - sh) * m / d if valid[i] else 0.0


@njit(parallel=True, **_JIT)
def _seg_expand(x, valid, order, offsets, shift, mul, den, live, dest, out):
    for j in prange(offsets.shape[0] - 1):
        _expand_of(j, x, valid, order, offsets, shift, mul, den, live, dest, out)


def seg_expand(x, valid, order, offsets, shift, mul, den, live, dest=None):
    """Per row ``(x - shift_g) * mul_g / den_g`` on valid rows of live groups, else 0
    (``shift``, ``mul``, ``den`` and ``live`` are per group). The value of row ``order[p]``
    goes to ``out[dest[p]]`` (default ``dest = order``)."""
    out = np.empty(x.shape[0])
    _seg_expand(x, valid, order, offsets, shift, mul, den, live, order if dest is None else dest, out)
    return out


# ---------------------------------------------------------------------------------------
# batch-wide moments and whitening of the valid rows
# ---------------------------------------------------------------------------------------
@njit(parallel=True, **_JIT)
def _masked_moments(x, valid, parts):
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in prange(_BLOCKS):
        a = blk * step
        b = min(a + step, n_rows)
        n = 0
        s = 0.0
        lo = np.inf
        hi = -np.inf
        for i in range(a, b):
            if valid[i]:
                v = x[i]
                n += 1
                s += v
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
        parts[blk, 0] = n
        parts[blk, 1] = s
        parts[blk, 2] = lo
        parts[blk, 3] = hi


@njit(parallel=True, **_JIT)
def _masked_centred(x, valid, m, parts):
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in prange(_BLOCKS):
        a = blk * step
        b = min(a + step, n_rows)
        c = 0.0
        ss = 0.0
        for i in range(a, b):
            if valid[i]:
                d = x[i] - m
                c += d
                ss += d * d
        parts[blk, 0] = c
        parts[blk, 1] = ss


def masked_moments(x, valid):
    """Count, mean, centred sum of squares, minimum and maximum of ``x[valid]`` (corrected
    two-pass, as :meth:`mocli.tally.Moments.of`), without copying the valid rows out."""
    parts = np.empty((_BLOCKS, 4))
    _masked_moments(x, valid, parts)
    n = float(parts[:, 0].sum())
    lo, hi = float(parts[:, 2].min()), float(parts[:, 3].max())
    if n == 0 or lo == hi:
        return n, (lo if n else 0.0), 0.0, lo, hi
    m = float(parts[:, 1].sum()) / n
    cs = np.empty((_BLOCKS, 2))
    _masked_centred(x, valid, m, cs)
    c = float(cs[:, 0].sum())
    return n, m + c / n, max(float(cs[:, 1].sum()) - c * c / n, 0.0), lo, hi


@njit(parallel=True, **_JIT)
def _pair_pass(x, y, vx, vy, mx, my, parts):
    """Per fixed block of rows where ``vx`` and ``vy`` hold: count, and the sums of ``dx``,
    ``dy``, ``dx^2``, ``dy^2`` and ``dx dy`` with ``dx = x - mx``, ``dy = y - my``."""
    n_rows = x.shape[0]
    step = (n_rows + _BLOCKS - 1) // _BLOCKS
    for blk in prange(_BLOCKS):
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
    :meth:`mocli.tally.CoMoments.of` on the selected rows, to rounding. The same kernel
    makes both passes, about 0 and then about the means."""
    parts = np.empty((_BLOCKS, 6))
    _pair_pass(x, y, vx, vy, 0.0, 0.0, parts)
    n = float(parts[:, 0].sum())
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    mx, my = float(parts[:, 1].sum()) / n, float(parts[:, 2].sum()) / n
    _pair_pass(x, y, vx, vy, mx, my, parts)
    _, cx, cy, sxx, syy, sxy = (float(v) for v in parts.sum(axis=0))
    return (n, mx + cx / n, my + cy / n, max(sxx - cx * cx / n, 0.0), max(syy - cy * cy / n, 0.0),
            sxy - cx * cy / n)


@njit(parallel=True, **_JIT)
def _masked_affine(x, valid, shift, den, out):
    for i in prange(x.shape[0]):
        out[i] = (x[i] - shift) / den if valid[i] else 0.0


@njit(parallel=True, **_JIT)
def _masked_affine_to(x, valid, shift, den, dest, out):
    for i in prange(x.shape[0]):
        out[dest[i]] = (x[i] - shift) / den if valid[i] else 0.0


def masked_affine(x, valid, shift, den, dest=None):
    """``(x - shift) / den`` on valid rows, 0 elsewhere; row ``i``'s value goes to
    ``out[dest[i]]`` when ``dest`` is given."""
    out = np.empty(x.shape[0])
    if dest is None:
        _masked_affine(x, valid, float(shift), float(den), out)
    else:
        _masked_affine_to(x, valid, float(shift), float(den), dest, out)
    return out


# ---------------------------------------------------------------------------------------
# per-objective group statistics (gdpo, advantage_sum, gd2po, dvao)
#
# These kernels read the reward matrix column by column: ``rt`` is its transpose, (k, n)
# (see ``columns``), and the rows are in group order, so an objective's cells of a group
# lie together and stay in cache while the group's passes read them.
# ---------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _column_moments(x, sc, a, b):
    """Count, mean, centred sum of squares (corrected two-pass, as ``_two_pass``), least
    and largest value of the valid cells of ``x[a:b]`` (scorable and not NaN), and whether
    every cell of the run is valid (then the callers skip the cell tests)."""
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
    ss -= c * c / n
    return n, m + c / n, (ss if ss > 0.0 else 0.0), lo, hi, dense


@njit(inline="always", **_JIT)
def _column_z(x, sc, a, b, ddof, eps, mode, raw_single):
    """The z-score rule of ``_seg_group_z`` for one objective of one group: ``(shift,
    den, live, dense, top)``; a valid cell's z is ``(x - shift) / den`` when ``live``, and
    every cell's z is 0 otherwise. ``top`` is the largest ``|z|`` of the group's cells
    (the same bits as taking it cell by cell: rounding is monotone, so it sits at the
    least or the largest value)."""
    n, m, ss, lo, hi, dense = _column_moments(x, sc, a, b)
    if n == 1 and raw_single:
        den = _denominator(1.0, eps, mode)
        return 0.0, den, True, dense, abs(lo / den)
    if n <= 1 or lo == hi:
        return 0.0, 1.0, False, dense, 0.0
    var = ss / (n - ddof) if n > ddof else 0.0
    den = _denominator(math.sqrt(var), eps, mode)
    return m, den, True, dense, max(abs((lo - m) / den), abs((hi - m) / den))


@njit(inline="always", **_JIT)
def _objective_sum_of(j, rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, out):
    a = offsets[j]
    b = offsets[j + 1]
    for p in range(a, b):
        out[p] = 0.0
    for c in range(cols.shape[0]):
        x = rt[cols[c]]
        shift, den, live, dense, _ = _column_z(x, sc, a, b, ddof, eps, mode, raw_single)
        if not live:
            continue
        wc = w[c]
        if dense:
            for p in range(a, b):
                out[p] += wc * ((x[p] - shift) / den)
        else:
            for p in range(a, b):
                v = x[p]
                if sc[p] and not math.isnan(v):
                    out[p] += wc * ((v - shift) / den)


@njit(parallel=True, **_JIT)
def _seg_objective_sum(rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, out):
    for j in prange(offsets.shape[0] - 1):
        _objective_sum_of(j, rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, out)


def columns(r):
    """The ``(k, n)`` transpose the objective kernels read, a view (strided rows for the
    usual row-major matrix: a group's run of one objective is still a few cache lines,
    and it measured as fast as a column-major copy, which costs more to gather)."""
    return np.asarray(r, dtype=np.float64).T


def seg_objective_sum(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single):
    """``sum_c w_c z_c`` per row, ``z_c`` being reward column ``cols[c]``'s group z-score
    over the scorable rows where it is not NaN (the rule of ``seg_group_z`` per column; 0
    elsewhere), for rows in group order (``offsets``). (Writing straight to file order
    from here measured slower than the separate scatter that follows.)"""
    out = np.empty(r.shape[0])
    _seg_objective_sum(columns(r), np.asarray(cols, dtype=np.int64), np.asarray(w, dtype=np.float64), scorable,
                       offsets, int(ddof), float(eps), int(mode), bool(raw_single), out)
    return out


@njit(inline="always", **_JIT)
def _gd2po_of(j, rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, sign, total, sm, base, v_out, kept):
    """Group ``j``'s rows of :func:`seg_gd2po`; its per-row conflict state lives in
    ``sign``, ``total``, ``sm`` from ``base`` on (a scratch run per worker on the CPU, the
    group's own rows of row-sized arrays on a GPU)."""
    a = offsets[j]
    b = offsets[j + 1]
    for q in range(b - a):
        sign[base + q] = 0
        total[base + q] = 0.0
        sm[base + q] = 0.0
        v_out[a + q] = 0.0
    for c in range(cols.shape[0]):
        x = rt[cols[c]]
        shift, den, live, dense, top = _column_z(x, sc, a, b, ddof, eps, mode, raw_single)
        if not live:
            continue  # z = 0 on every row: no sign, nothing to add
        tol = 1e-9 * (top if top > 1.0 else 1.0)  # the zero test's scale
        wc = w[c]
        for p in range(a, b):
            v = x[p]
            zz = (v - shift) / den if dense or (sc[p] and not math.isnan(v)) else 0.0
            q = base + p - a
            sign[q] |= (1 if zz > tol else 0) | (2 if zz < -tol else 0)
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


@njit(parallel=True, **_JIT)
def _seg_gd2po(rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, v_out, kept):
    g = offsets.shape[0] - 1
    size = 0
    for j in range(g):
        size = max(size, offsets[j + 1] - offsets[j])
    n_blocks = min(g, 1024)
    for blk in prange(n_blocks):
        # per row of the group: sign bits seen (1: some z > 0, 2: some z < 0 beyond the
        # zero test), sum of |z|, sum of z; the weighted sum gathers in v_out
        sign = np.empty(size, dtype=np.int64)
        total = np.empty(size)
        sm = np.empty(size)
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            _gd2po_of(j, rt, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, sign, total, sm, 0, v_out, kept)


def seg_gd2po(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single, tau):
    """gd2po up to its batch whitening, rows in group order: per row ``v = (sum_k w_k
    z_k) * rho_g`` and the ``kept`` mask (see the estimator)."""
    n = r.shape[0]
    v = np.empty(n)
    kept = np.empty(n, dtype=np.bool_)
    _seg_gd2po(columns(r), np.asarray(cols, dtype=np.int64), np.asarray(w, dtype=np.float64), scorable, offsets,
               int(ddof), float(eps), int(mode), bool(raw_single), float(tau), v, kept)
    return v, kept


@njit(inline="always", **_JIT)
def _dvao_of(j, rt, cols, w, sc, offsets, raw_lone, out):
    a = offsets[j]
    b = offsets[j + 1]
    K = cols.shape[0]
    lone = 0
    for p in range(a, b):
        lone += 1 if sc[p] else 0
    if lone == 1:
        for p in range(a, b):
            v = 0.0
            if raw_lone and sc[p]:
                num = 0.0
                sw = 0.0
                for c in range(K):
                    x = rt[cols[c], p]
                    if not math.isnan(x):
                        num += w[c] * x
                        sw += w[c]
                v = num / sw if sw != 0.0 else 0.0
            out[p] = v
        return
    for p in range(a, b):
        out[p] = 0.0
    den = 0.0
    for c in range(K):
        x = rt[cols[c]]
        n, m, ss, lo, hi, dense = _column_moments(x, sc, a, b)
        if n == 0 or lo == hi:
            continue  # centred values exactly 0, sigma 0
        den += w[c] * math.sqrt(ss / n)
        wc = w[c]
        if dense:
            for p in range(a, b):
                out[p] += wc * (x[p] - m)
        else:
            for p in range(a, b):
                v = x[p]
                if sc[p] and not math.isnan(v):
                    out[p] += wc * (v - m)
    for p in range(a, b):
        out[p] = out[p] / den if den != 0.0 else 0.0


@njit(parallel=True, **_JIT)
def _seg_dvao(rt, cols, w, sc, offsets, raw_lone, out):
    for j in prange(offsets.shape[0] - 1):
        _dvao_of(j, rt, cols, w, sc, offsets, raw_lone, out)


def seg_dvao(r, cols, w, scorable, offsets, raw_lone):
    """dvao's advantages (see the estimator) for rows in group order."""
    out = np.empty(r.shape[0])
    _seg_dvao(columns(r), np.asarray(cols, dtype=np.int64), np.asarray(w, dtype=np.float64), scorable, offsets,
              bool(raw_lone), out)
    return out
