"""One-pass CPU kernels for estimator steps that the composed path writes as several
primitives and NumPy expressions over whole columns.

On a batch in group order (see :meth:`mocli.batch.Batch.grouped`) each kernel reads its
rows front to back, once or twice per group while they are still in cache, and writes the
result once, where the composed path makes a NumPy pass over every row per operation.
Every kernel here gives the numbers of its composed counterpart (the tests compare them;
most are the same operations in the same order, so the same bits). The composed path stays
what runs under ``--device cuda``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .cpu import _JIT, _denominator

# a parallel reduction over rows is split into this many fixed blocks, so that the
# rounding of its sums never depends on the number of threads
_BLOCKS = 64


# ---------------------------------------------------------------------------------------
# per-group affine map of the rows
# ---------------------------------------------------------------------------------------
@njit(parallel=True, **_JIT)
def _seg_expand(x, valid, order, offsets, shift, mul, den, live, dest, out):
    g = offsets.shape[0] - 1
    for j in prange(g):
        a = offsets[j]
        b = offsets[j + 1]
        if not live[j]:
            for p in range(a, b):
                out[dest[p]] = 0.0
            continue
        sh = shift[j]
        m = mul[j]
        d = den[j]
        for p in range(a, b):
            i = order[p]
            out[dest[p]] = (x[i] - sh) * m / d if valid[i] else 0.0


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
# per-objective group z-scores (gdpo, advantage_sum, gd2po) and dvao
# ---------------------------------------------------------------------------------------
@njit(**_JIT)
def _scratch(K):
    """Scratch of the objective kernels, one per block of groups, so that one pass over a
    row serves every objective: (9, K) floats (six running sums, shift, den, a spare row)
    and the live flags."""
    return np.empty((9, K)), np.empty(K, dtype=np.bool_)


@njit(**_JIT)
def _objective_group(r, cols, scorable, order, a, b, ddof, eps, mode, raw_single, scratch, live):
    """Per objective ``cols[c]`` of the group ``order[a:b]``: ``z = (r - shift[c]) /
    den[c]`` on its valid cells when ``live[c]``, else 0 (the rule of ``_seg_group_z``),
    with ``shift`` and ``den`` rows 6 and 7 of ``scratch``."""
    K = cols.shape[0]
    cnt = scratch[0]
    sm = scratch[1]
    lo = scratch[2]
    hi = scratch[3]
    cs = scratch[4]
    ss = scratch[5]
    shift = scratch[6]
    den = scratch[7]
    for c in range(K):
        cnt[c] = 0.0
        sm[c] = 0.0
        lo[c] = np.inf
        hi[c] = -np.inf
        cs[c] = 0.0
        ss[c] = 0.0
    for p in range(a, b):
        i = order[p]
        if scorable[i]:
            for c in range(K):
                v = r[i, cols[c]]
                if not math.isnan(v):
                    cnt[c] += 1.0
                    sm[c] += v
                    if v < lo[c]:
                        lo[c] = v
                    if v > hi[c]:
                        hi[c] = v
    spread = False
    for c in range(K):
        n = cnt[c]
        if n == 1.0 and raw_single:
            shift[c] = 0.0
            den[c] = _denominator(1.0, eps, mode)
            live[c] = True
        elif n <= 1.0 or lo[c] == hi[c]:
            shift[c] = 0.0
            den[c] = 1.0
            live[c] = False
        else:
            shift[c] = sm[c] / n
            live[c] = True
            spread = True
    if not spread:
        return
    for p in range(a, b):
        i = order[p]
        if scorable[i]:
            for c in range(K):
                v = r[i, cols[c]]
                if not math.isnan(v):
                    d = v - shift[c]
                    cs[c] += d
                    ss[c] += d * d
    for c in range(K):
        n = cnt[c]
        if live[c] and n > 1.0:
            q = ss[c] - cs[c] * cs[c] / n
            if q < 0.0:
                q = 0.0
            var = q / (n - ddof) if n > ddof else 0.0
            shift[c] = shift[c] + cs[c] / n
            den[c] = _denominator(math.sqrt(var), eps, mode)


@njit(**_JIT)
def _z(r, i, k, ok, live, shift, den):
    v = r[i, k]
    return (v - shift) / den if ok and live and not math.isnan(v) else 0.0


@njit(parallel=True, **_JIT)
def _seg_objective_z(r, cols, w, scorable, order, offsets, ddof, eps, mode, raw_single, want_z, z, out):
    g = offsets.shape[0] - 1
    K = cols.shape[0]
    n_blocks = min(g, 1024)
    for blk in prange(n_blocks):
        scratch, live = _scratch(K)
        shift, den = scratch[6], scratch[7]
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            a = offsets[j]
            b = offsets[j + 1]
            _objective_group(r, cols, scorable, order, a, b, ddof, eps, mode, raw_single, scratch, live)
            for p in range(a, b):
                i = order[p]
                acc = 0.0
                ok = scorable[i]
                for c in range(K):
                    zz = _z(r, i, cols[c], ok, live[c], shift[c], den[c])
                    if want_z:
                        z[i, c] = zz
                    acc += w[c] * zz
                out[i] = acc


def seg_objective_z(r, cols, w, scorable, order, offsets, ddof, eps, mode, raw_single, want_z=False):
    """Each reward column ``cols[c]``'s group z-score over the scorable rows where it is
    not NaN (the rule of ``seg_group_z`` per column), and their weighted sum ``sum_c w_c
    z_c`` per row, in one pass over the rows for all columns. Returns ``(z, sum)``; ``z``
    (``(n, len(cols))``) only with ``want_z``, else None."""
    n = r.shape[0]
    cols = np.asarray(cols, dtype=np.int64)
    z = np.empty((n, cols.shape[0]) if want_z else (1, cols.shape[0]))
    out = np.empty(n)
    _seg_objective_z(np.ascontiguousarray(r), cols, np.asarray(w, dtype=np.float64), scorable, order, offsets,
                     int(ddof), float(eps), int(mode), bool(raw_single), bool(want_z), z, out)
    return (z if want_z else None), out


@njit(parallel=True, **_JIT)
def _seg_gd2po(r, cols, w, scorable, order, offsets, ddof, eps, mode, raw_single, tau, v_out, kept):
    g = offsets.shape[0] - 1
    K = cols.shape[0]
    n_blocks = min(g, 1024)
    for blk in prange(n_blocks):
        scratch, live = _scratch(K)
        shift, den, tol = scratch[6], scratch[7], scratch[8]
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            a = offsets[j]
            b = offsets[j + 1]
            _objective_group(r, cols, scorable, order, a, b, ddof, eps, mode, raw_single, scratch, live)
            # the zero test's scale: each objective's largest |A| in the group
            for c in range(K):
                top = 0.0 if b > a else -np.inf
                for p in range(a, b):
                    i = order[p]
                    zz = abs(_z(r, i, cols[c], scorable[i], live[c], shift[c], den[c]))
                    if zz > top:
                        top = zz
                tol[c] = 1e-9 * (top if top > 1.0 else 1.0)
            n_scorable = 0
            n_kept = 0
            for p in range(a, b):
                i = order[p]
                ok = scorable[i]
                pos = False
                neg = False
                total = 0.0
                sm = 0.0
                acc = 0.0
                for c in range(K):
                    zz = _z(r, i, cols[c], ok, live[c], shift[c], den[c])
                    if zz > tol[c]:
                        pos = True
                    if zz < -tol[c]:
                        neg = True
                    total += abs(zz)
                    sm += zz
                    acc += w[c] * zz
                share = sm / total if total > 0.0 else 0.0
                dropped = pos and neg and ok and abs(share) < tau
                keep = ok and not dropped
                kept[i] = keep
                v_out[i] = acc
                if ok:
                    n_scorable += 1
                if keep:
                    n_kept += 1
            rho = n_kept / n_scorable if n_scorable > 0 else 0.0
            for p in range(a, b):
                i = order[p]
                v_out[i] = v_out[i] * rho


def seg_gd2po(r, cols, w, scorable, order, offsets, ddof, eps, mode, raw_single, tau):
    """gd2po up to its batch whitening: per row ``v = (sum_k w_k z_k) * rho_g`` and the
    ``kept`` mask (see the estimator)."""
    n = r.shape[0]
    v = np.empty(n)
    kept = np.empty(n, dtype=np.bool_)
    _seg_gd2po(np.ascontiguousarray(r), np.asarray(cols, dtype=np.int64), np.asarray(w, dtype=np.float64),
               scorable, order, offsets, int(ddof), float(eps), int(mode), bool(raw_single), float(tau), v, kept)
    return v, kept


@njit(parallel=True, **_JIT)
def _seg_dvao(r, cols, w, scorable, order, offsets, raw_lone, out):
    g = offsets.shape[0] - 1
    K = cols.shape[0]
    for j in prange(g):
        a = offsets[j]
        b = offsets[j + 1]
        size = 0
        for p in range(a, b):
            if scorable[order[p]]:
                size += 1
        if size == 1:
            for p in range(a, b):
                i = order[p]
                v = 0.0
                if raw_lone and scorable[i]:
                    num = 0.0
                    sw = 0.0
                    for c in range(K):
                        x = r[i, cols[c]]
                        if not math.isnan(x):
                            num += w[c] * x
                            sw += w[c]
                    v = num / sw if sw != 0.0 else 0.0
                out[i] = v
            continue
        for p in range(a, b):
            out[order[p]] = 0.0
        den = 0.0
        for c in range(K):
            k = cols[c]
            n = 0
            s = 0.0
            lo = np.inf
            hi = -np.inf
            for p in range(a, b):
                i = order[p]
                x = r[i, k]
                if scorable[i] and not math.isnan(x):
                    n += 1
                    s += x
                    if x < lo:
                        lo = x
                    if x > hi:
                        hi = x
            if n == 0 or lo == hi:
                continue  # centred values exactly 0, sigma 0
            m = s / n
            cc = 0.0
            ss = 0.0
            for p in range(a, b):
                i = order[p]
                x = r[i, k]
                if scorable[i] and not math.isnan(x):
                    d = x - m
                    cc += d
                    ss += d * d
            ss -= cc * cc / n
            m = m + cc / n
            den += w[c] * math.sqrt((ss if ss > 0.0 else 0.0) / n)
            for p in range(a, b):
                i = order[p]
                x = r[i, k]
                if scorable[i] and not math.isnan(x):
                    out[i] += w[c] * (x - m)
        for p in range(a, b):
            i = order[p]
            out[i] = out[i] / den if den != 0.0 else 0.0


def seg_dvao(r, cols, w, scorable, order, offsets, raw_lone):
    """dvao's ``sum_k w_k (r_k - mu_gk) / sum_k w_k sigma_gk`` per row (see the estimator)."""
    out = np.empty(r.shape[0])
    _seg_dvao(np.ascontiguousarray(r), np.asarray(cols, dtype=np.int64), np.asarray(w, dtype=np.float64),
              scorable, order, offsets, bool(raw_lone), out)
    return out
