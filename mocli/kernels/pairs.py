"""Pairwise diagnostics within groups, compiled with Numba (one group per parallel
iteration, O(n_g^2) pairs each).

Layout as in :mod:`mocli.kernels.cpu`. ``R (n, k)`` holds the directed rewards (NaN = not
applicable), ``tolk (g, k)`` the per-group, per-objective equality tolerance
``1e-9 * max(1, max |r_k| in the group)``, ``tola (g,)`` the same for the advantage. Every
kernel writes per-group counts; the caller sums them, so each pair is counted once.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def _same(x, y, tol):
    """Equal in the DIAGNOSTICS.md sense; NaN equals NaN, NaN differs from a number."""
    xn = x != x
    yn = y != y
    if xn or yn:
        return xn and yn
    return abs(x - y) <= tol


@njit(**_JIT)
def _same_vector(R, i, h, weighted, tolk, j):
    """Rows ``i`` and ``h`` have equal weighted reward vectors (NaN equals NaN)."""
    for k in range(R.shape[1]):
        if weighted[k] and not _same(R[i, k], R[h, k], tolk[j, k]):
            return False
    return True


@njit(parallel=True, **_JIT)
def _objective_pairs(R, rows_ok, weighted, order, offsets, tolk, opposed, ordered, distinct):
    """For every pair of objectives (a < b, flattened) and every group: how many row pairs
    have both objectives valid and different (``ordered``) and how many of those order the
    two rows oppositely (``opposed``). ``distinct``: distinct weighted reward vectors."""
    g = offsets.shape[0] - 1
    K = R.shape[1]
    for j in prange(g):
        a = offsets[j]
        b = offsets[j + 1]
        nd = 0
        for p in range(a, b):
            i = order[p]
            if not rows_ok[i]:
                continue
            # distinct vectors: i is new if no earlier row equals it
            new = True
            for q in range(a, p):
                h = order[q]
                if not rows_ok[h]:
                    continue
                if _same_vector(R, i, h, weighted, tolk, j):
                    new = False
                    break
            if new:
                nd += 1
            for q in range(p + 1, b):
                h = order[q]
                if not rows_ok[h]:
                    continue
                c = 0
                for ka in range(K):
                    da = R[i, ka] - R[h, ka]
                    okA = (da == da) and abs(da) > tolk[j, ka]
                    for kb in range(ka + 1, K):
                        if okA:
                            db = R[i, kb] - R[h, kb]
                            if (db == db) and abs(db) > tolk[j, kb]:
                                ordered[j, c] += 1
                                if (da > 0) != (db > 0):
                                    opposed[j, c] += 1
                        c += 1
        distinct[j] = nd


def objective_pairs(R, rows_ok, weighted, order, offsets, tolk):
    """Per group: ``(opposed, ordered)`` arrays ``(g, k(k-1)/2)`` for the discordance of
    every objective pair, and the number of distinct weighted reward vectors."""
    g = offsets.shape[0] - 1
    K = R.shape[1]
    P = K * (K - 1) // 2
    opposed = np.zeros((g, max(P, 1)), dtype=np.int64)
    ordered = np.zeros((g, max(P, 1)), dtype=np.int64)
    distinct = np.zeros(g, dtype=np.int64)
    _objective_pairs(R, rows_ok, weighted, order, offsets, tolk, opposed, ordered, distinct)
    return opposed[:, :P], ordered[:, :P], distinct


@njit(**_JIT)
def _dominates(R, i, h, weighted, tolk, j):
    """Row ``i`` Pareto-dominates row ``h``: over the weighted objectives valid in both
    (at least one), never worse and strictly better (not equal) in one."""
    K = R.shape[1]
    n_valid = 0
    better = False
    for k in range(K):
        if not weighted[k]:
            continue
        x = R[i, k]
        y = R[h, k]
        if x != x or y != y:
            continue
        n_valid += 1
        d = x - y
        if abs(d) <= tolk[j, k]:
            continue
        if d < 0:
            return False
        better = True
    return n_valid > 0 and better


@njit(parallel=True, **_JIT)
def _advantage_pairs(R, A, rows_ok, weighted, order, offsets, tolk, tola, out):
    """Per group, into ``out[j]``: 0 row pairs whose weighted vectors differ, 1 of those
    with equal A, 2 distinct A values, 3 dominance pairs, 4 of those with A_i < A_j, 5 a
    winner (max A) is dominated (0/1)."""
    g = offsets.shape[0] - 1
    for j in prange(g):
        a = offsets[j]
        b = offsets[j + 1]
        tol = tola[j]
        # distinct A by sorting
        n = 0
        for p in range(a, b):
            if rows_ok[order[p]]:
                n += 1
        if n == 0:
            continue
        vals = np.empty(n)
        rows = np.empty(n, dtype=np.int64)
        n = 0
        for p in range(a, b):
            i = order[p]
            if rows_ok[i]:
                vals[n] = A[i]
                rows[n] = i
                n += 1
        srt = np.sort(vals)
        nd = 1
        for t in range(1, n):
            if srt[t] - srt[t - 1] > tol:
                nd += 1
        out[j, 2] = nd
        top = srt[n - 1]
        diff = 0
        coll = 0
        dom = 0
        viol = 0
        winner_dominated = 0
        for u in range(n):
            i = rows[u]
            for v in range(n):
                if u == v:
                    continue
                h = rows[v]
                if u < v:
                    if not _same_vector(R, i, h, weighted, tolk, j):
                        diff += 1
                        if abs(A[i] - A[h]) <= tol:
                            coll += 1
                if _dominates(R, i, h, weighted, tolk, j):
                    dom += 1
                    if A[h] - A[i] > tol:
                        viol += 1
                    if top - A[h] <= tol:
                        winner_dominated = 1
        out[j, 0] = diff
        out[j, 1] = coll
        out[j, 3] = dom
        out[j, 4] = viol
        out[j, 5] = winner_dominated


def advantage_pairs(R, A, rows_ok, weighted, order, offsets, tolk, tola):
    """Per group ``(g, 6)`` counts: differing pairs, collapsed pairs, distinct A,
    dominance pairs, order violations, dominated winner (0/1)."""
    out = np.zeros((offsets.shape[0] - 1, 6), dtype=np.int64)
    _advantage_pairs(R, A, rows_ok, weighted, order, offsets, tolk, tola, out)
    return out


@njit(parallel=True, **_JIT)
def _kendall_tau_b(x, y, rows_ok, order, offsets, tolx, toly, out):
    g = offsets.shape[0] - 1
    for j in prange(g):
        a = offsets[j]
        b = offsets[j + 1]
        conc = 0
        disc = 0
        tx = 0
        ty = 0
        n0 = 0
        for p in range(a, b):
            i = order[p]
            if not rows_ok[i]:
                continue
            for q in range(p + 1, b):
                h = order[q]
                if not rows_ok[h]:
                    continue
                n0 += 1
                dx = x[i] - x[h]
                dy = y[i] - y[h]
                ex = abs(dx) <= tolx[j]
                ey = abs(dy) <= toly[j]
                if ex:
                    tx += 1
                if ey:
                    ty += 1
                if ex or ey:
                    continue
                if (dx > 0) == (dy > 0):
                    conc += 1
                else:
                    disc += 1
        den = (n0 - tx) * (n0 - ty)
        out[j] = (conc - disc) / np.sqrt(den) if den > 0 else np.nan


def kendall_tau_b(x, y, rows_ok, order, offsets, tolx, toly):
    """Per group Kendall's tau-b between ``x`` and ``y`` over ``rows_ok`` rows, ties in the
    tolerance sense; NaN where either is constant (or fewer than two rows)."""
    out = np.full(offsets.shape[0] - 1, np.nan)
    _kendall_tau_b(x, y, rows_ok, order, offsets, tolx, toly, out)
    return out


@njit(parallel=True, **_JIT)
def _seg_cov(x, y, valid, order, offsets, out):
    g = offsets.shape[0] - 1
    for j in prange(g):
        n = 0
        sx = 0.0
        sy = 0.0
        for p in range(offsets[j], offsets[j + 1]):
            i = order[p]
            if valid[i]:
                n += 1
                sx += x[i]
                sy += y[i]
        if n == 0:
            out[j] = np.nan
            continue
        mx = sx / n
        my = sy / n
        c = 0.0
        for p in range(offsets[j], offsets[j + 1]):
            i = order[p]
            if valid[i]:
                c += (x[i] - mx) * (y[i] - my)
        out[j] = c / n


def seg_cov(x, y, valid, order, offsets):
    """Per-group population covariance of ``x`` and ``y`` over ``valid`` rows."""
    out = np.empty(offsets.shape[0] - 1)
    _seg_cov(x, y, valid, order, offsets, out)
    return out
