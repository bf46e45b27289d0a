"""Pairwise diagnostics within groups, compiled with Numba (one group per parallel
iteration, O(n_g^2) pairs each).

Layout as in :mod:`mocli.kernels.cpu`. ``R (n, k)`` holds the directed rewards (NaN = not
applicable), ``tolk (g, k)`` the per-group, per-objective equality tolerance
``1e-9 * max(1, max |r_k| in the group)``, ``tola (g,)`` the same for the advantage. Every
kernel writes per-group counts; the caller sums them, so each pair is counted once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .cpu import split

_JIT = dict(cache=True, nogil=True)
# the parallel loops take the groups in this many runs, one scratch block per run
_GROUP_BLOCKS = 1024


@njit(**_JIT)
def _same(x, y, tol):
    """Equal in the DIAGNOSTICS.md sense; NaN equals NaN, NaN differs from a number."""
    xn = x != x
    yn = y != y
    if xn or yn:
        return xn and yn
    return abs(x - y) <= tol


@njit(inline="always", **_JIT)
def _gather(R, rows_ok, order, a, b, V):
    """Copy the valid rows among ``order[a:b]`` into the first rows of ``V``; their count."""
    n = 0
    for p in range(a, b):
        i = order[p]
        if rows_ok[i]:
            for k in range(R.shape[1]):
                V[n, k] = R[i, k]
            n += 1
    return n


@njit(inline="always", **_JIT)
def _gather_values(x, rows_ok, order, a, b, out):
    """Copy ``x`` of the valid rows among ``order[a:b]`` into the front of ``out``."""
    n = 0
    for p in range(a, b):
        i = order[p]
        if rows_ok[i]:
            out[n] = x[i]
            n += 1
    return n


@njit(**_JIT)
def _objective_pairs(part_lo, part_hi, R, rows_ok, weighted, order, offsets, tolk, width, opposed, ordered, distinct):
    """For every pair of objectives (a < b, flattened) and every group: how many row pairs
    have both objectives valid and different (``ordered``) and how many of those order the
    two rows oppositely (``opposed``). ``distinct``: distinct weighted reward vectors (rows
    equal to no earlier row). Each group's valid rows are gathered into a scratch block
    first (see :func:`_advantage_pairs`)."""
    g = offsets.shape[0] - 1
    K = R.shape[1]
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        V = np.empty((width, K))
        seen = np.empty(width, dtype=np.bool_)  # equal to an earlier row
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            n = _gather(R, rows_ok, order, offsets[j], offsets[j + 1], V)
            seen[:n] = False
            for u in range(n):
                for v in range(u + 1, n):
                    if not seen[v]:
                        same = True
                        for k in range(K):
                            if weighted[k] and not _same(V[u, k], V[v, k], tolk[j, k]):
                                same = False
                                break
                        if same:
                            seen[v] = True
                    c = 0
                    for ka in range(K):
                        da = V[u, ka] - V[v, ka]
                        okA = (da == da) and abs(da) > tolk[j, ka]
                        for kb in range(ka + 1, K):
                            if okA:
                                db = V[u, kb] - V[v, kb]
                                if (db == db) and abs(db) > tolk[j, kb]:
                                    ordered[j, c] += 1
                                    if (da > 0) != (db > 0):
                                        opposed[j, c] += 1
                            c += 1
            nd = 0
            for u in range(n):
                if not seen[u]:
                    nd += 1
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
    width = int(np.diff(offsets).max()) if g else 0
    split(_objective_pairs, min(g, _GROUP_BLOCKS), R, rows_ok, weighted, order, offsets, tolk, max(width, 1), opposed, ordered,
          distinct, size=g)
    return opposed[:, :P], ordered[:, :P], distinct


@njit(inline="always", **_JIT)
def _sorted_distinct(vals, n, srt, tol):
    """The number of distinct values among ``vals[:n]`` (sorted gaps larger than ``tol``,
    plus one) and the largest, sorting a copy into ``srt`` by insertion (groups are small;
    the pair loops that follow are quadratic anyway)."""
    for t in range(n):
        v = vals[t]
        q = t
        while q > 0 and srt[q - 1] > v:
            srt[q] = srt[q - 1]
            q -= 1
        srt[q] = v
    nd = 1
    for t in range(1, n):
        if srt[t] - srt[t - 1] > tol:
            nd += 1
    return nd, srt[n - 1]


@njit(**_JIT)
def _advantage_pairs(part_lo, part_hi, R, A, rows_ok, weighted, order, offsets, tolk, tola, width, out):
    """Per group, into ``out[j]``: 0 row pairs whose weighted vectors differ, 1 of those
    with equal A, 2 distinct A values, 3 dominance pairs, 4 of those with A_i < A_j, 5 a
    winner (max A) is dominated (0/1). Each group's valid rows are first gathered into a
    block of the worker's scratch (``width`` rows: the largest group), so that the
    quadratic loops read memory that is already in cache."""
    g = offsets.shape[0] - 1
    K = R.shape[1]
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        V = np.empty((width, K))
        vals = np.empty(width)
        srt = np.empty(width)
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            n = _gather(R, rows_ok, order, offsets[j], offsets[j + 1], V)
            _gather_values(A, rows_ok, order, offsets[j], offsets[j + 1], vals)
            if n == 0:
                continue
            tol = tola[j]
            nd, top = _sorted_distinct(vals, n, srt, tol)
            out[j, 2] = nd
            diff = 0
            coll = 0
            dom = 0
            viol = 0
            winner_dominated = 0
            for u in range(n):
                for v in range(u + 1, n):
                    # one pass over the objectives decides equality and dominance both ways
                    same = True
                    n_valid = 0
                    u_better = False
                    v_better = False
                    for k in range(K):
                        if not weighted[k]:
                            continue
                        x = V[u, k]
                        y = V[v, k]
                        xn = x != x
                        yn = y != y
                        if xn or yn:
                            if not (xn and yn):
                                same = False
                            continue
                        n_valid += 1
                        d = x - y
                        if abs(d) <= tolk[j, k]:
                            continue
                        same = False
                        if d < 0:
                            v_better = True
                        else:
                            u_better = True
                    if not same:
                        diff += 1
                        if abs(vals[u] - vals[v]) <= tol:
                            coll += 1
                    if n_valid > 0 and u_better != v_better:  # one dominates the other
                        if u_better:  # u dominates v
                            dom += 1
                            if vals[v] - vals[u] > tol:
                                viol += 1
                            if top - vals[v] <= tol:
                                winner_dominated = 1
                        else:
                            dom += 1
                            if vals[u] - vals[v] > tol:
                                viol += 1
                            if top - vals[u] <= tol:
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
    width = int(np.diff(offsets).max()) if offsets.shape[0] > 1 else 0
    g = offsets.shape[0] - 1
    split(_advantage_pairs, min(g, _GROUP_BLOCKS), R, A, rows_ok, weighted, order, offsets, tolk, tola, max(width, 1), out,
          size=g)
    return out


@njit(**_JIT)
def _kendall_tau_b(part_lo, part_hi, x, y, rows_ok, order, offsets, tolx, toly, width, out):
    g = offsets.shape[0] - 1
    n_blocks = min(g, _GROUP_BLOCKS)
    for blk in range(part_lo, part_hi):
        gx = np.empty(width)
        gy = np.empty(width)
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            n = _gather_values(x, rows_ok, order, offsets[j], offsets[j + 1], gx)
            _gather_values(y, rows_ok, order, offsets[j], offsets[j + 1], gy)
            conc = 0
            disc = 0
            tx = 0
            ty = 0
            for u in range(n):
                for v in range(u + 1, n):
                    dx = gx[u] - gx[v]
                    dy = gy[u] - gy[v]
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
            n0 = n * (n - 1) // 2
            den = (n0 - tx) * (n0 - ty)
            out[j] = (conc - disc) / np.sqrt(den) if den > 0 else np.nan


def kendall_tau_b(x, y, rows_ok, order, offsets, tolx, toly):
    """Per group Kendall's tau-b between ``x`` and ``y`` over ``rows_ok`` rows, ties in the
    tolerance sense; NaN where either is constant (or fewer than two rows)."""
    out = np.full(offsets.shape[0] - 1, np.nan)
    width = int(np.diff(offsets).max()) if offsets.shape[0] > 1 else 0
    g = offsets.shape[0] - 1
    split(_kendall_tau_b, min(g, _GROUP_BLOCKS), x, y, rows_ok, order, offsets, tolx, toly, max(width, 1), out, size=g)
    return out


@njit(**_JIT)
def _seg_cov(part_lo, part_hi, x, y, valid, order, offsets, out):
    for j in range(part_lo, part_hi):
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
    split(_seg_cov, offsets.shape[0] - 1, x, y, valid, order, offsets, out)
    return out
