"""Segment kernels over ragged groups, compiled with Numba for the CPU.

Every kernel takes the same layout: values ``x (n,)`` float64, a boolean ``valid (n,)`` mask
(rows that enter the statistic; a valid row's value is a number, never NaN), the group ``order (n,)`` (row indices sorted by group,
stable, so rows of a group keep their file order) and ``offsets (g+1,)`` (group ``j`` owns
``order[offsets[j]:offsets[j+1]]``). The public functions validate and allocate; the jitted
``_seg_*`` bodies do the work, one group per parallel iteration. Everything accumulates in
float64; ``fastmath`` is off because NaN means "not applicable" and must survive.
"""

from __future__ import annotations

import math

import numpy as np
import concurrent.futures

from numba import config as numba_config
from numba import njit

_JIT = dict(cache=True, nogil=True)
# a kernel's work under this many items (rows, groups) runs in the calling thread
_SERIAL_BELOW = 4096
_POOL: list[concurrent.futures.ThreadPoolExecutor] = []  # made on first use, one per process
# groups up to this size get leave-one-out statistics by a direct pass over the other rows
_LOO_DIRECT = 256


# ---------------------------------------------------------------------------------------
# running a kernel on the cores
# ---------------------------------------------------------------------------------------
def split(kernel, n: int, *args, size: int | None = None) -> None:
    """Run ``kernel(lo, hi, *args)`` over ``[0, n)`` (groups, rows or blocks) in contiguous
    parts, one per thread (``NUMBA_NUM_THREADS``), this thread taking the first: every
    kernel is a plain ``nogil`` Numba function over its part, which compiles in a fraction
    of the time a ``parallel=True`` one takes (a first run compiles every kernel it meets),
    and runs as fast. The parts write disjoint outputs, so the numbers do not depend on the
    number of threads. ``size``: the work in items when ``n`` counts blocks of it; under
    ``_SERIAL_BELOW`` items the whole range runs in this thread."""
    threads = max(1, int(numba_config.NUMBA_NUM_THREADS))
    parts = min(threads, n)
    if parts < 2 or (n if size is None else size) < _SERIAL_BELOW:
        kernel(0, n, *args)
        return
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(threads - 1, thread_name_prefix="mocli-kernel"))
    bounds = [n * t // parts for t in range(parts + 1)]
    futures = [_POOL[0].submit(kernel, bounds[t], bounds[t + 1], *args) for t in range(1, parts)]
    try:
        kernel(bounds[0], bounds[1], *args)
    finally:
        for f in futures:
            f.result()


# ---------------------------------------------------------------------------------------
# mean and variance
# ---------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _u(i):
    """An array position as an unsigned integer. Numba indexes with a signed one through a
    negative-index fix-up (a test and an add per access); in a loop over a group's rows,
    that is a good part of the work (the median kernel 20% faster without it)."""
    return np.uint64(i)


@njit(inline="always", **_JIT)
def _corrected(n, m, c, ss):
    """The two-pass result from the first mean ``m`` and the centred pass's sums ``c``
    (of ``x - m``) and ``ss`` (of its squares): the mean and the centred sum of squares
    with the first mean's rounding taken out (never below 0)."""
    ss -= c * c / n
    return m + c / n, (ss if ss > 0.0 else 0.0)


@njit(**_JIT)
def _two_pass(x, valid, order, a, b, n, s):
    """Corrected two-pass mean and centred sum of squares of the valid rows of
    ``order[a:b]`` given their count and plain sum (exact to rounding even for rewards
    offset by 1e8)."""
    if n == 0:
        return 0.0, 0.0
    m = s / n
    c = 0.0
    ss = 0.0
    for p in range(a, b):
        i = _u(order[_u(p)])
        if valid[i]:
            d = x[i] - m
            c += d
            ss += d * d
    return _corrected(n, m, c, ss)


@njit(**_JIT)
def _count_sum_range(x, valid, order, a, b):
    """Count, sum, minimum and maximum of the valid rows of ``order[a:b]``."""
    n = 0
    s = 0.0
    lo = np.inf
    hi = -np.inf
    for p in range(a, b):
        i = _u(order[_u(p)])
        if valid[i]:
            v = x[i]
            n += 1
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
    return n, s, lo, hi


@njit(inline="always", **_JIT)
def _put_mean_var(x, valid, order, a, b, j, n, s, lo, hi, ddof, mean, var, count, const):
    """Group ``j``'s entries of :func:`seg_mean_var` from the count, sum and extremes of
    its valid rows (the rows ``order[a:b]``)."""
    count[j] = n
    if n == 0:
        mean[j] = np.nan
        var[j] = 0.0
        const[j] = True
    elif lo == hi:
        # exactly constant: no rounding may leak into the centred values
        mean[j] = lo
        var[j] = 0.0
        const[j] = True
    else:
        m, ss = _two_pass(x, valid, order, a, b, n, s)
        mean[j] = m
        var[j] = ss / (n - ddof) if n > ddof else 0.0
        const[j] = False


@njit(**_JIT)
def _seg_mean_var(part_lo, part_hi, x, valid, order, offsets, ddof, mean, var, count, const):
    for j in range(part_lo, part_hi):
        a = offsets[j]
        b = offsets[j + 1]
        n, s, lo, hi = _count_sum_range(x, valid, order, a, b)
        _put_mean_var(x, valid, order, a, b, j, n, s, lo, hi, ddof, mean, var, count, const)


def seg_mean_var(x, valid, order, offsets, ddof=1):
    """Per-group mean, variance (``ddof``), count of valid rows and an exact-constant flag.

    A group with no valid row has mean NaN; a group with fewer than ``ddof + 1`` valid rows
    or with all valid values equal has variance exactly 0 (and, if constant, mean equal to
    that value, so that centring gives exact zeros).
    """
    g = offsets.shape[0] - 1
    mean = np.empty(g)
    var = np.empty(g)
    count = np.empty(g, dtype=np.int64)
    const = np.empty(g, dtype=np.bool_)
    split(_seg_mean_var, offsets.shape[0] - 1, x, valid, order, offsets, int(ddof), mean, var, count, const)
    return mean, var, count, const


@njit(inline="always", **_JIT)
def _group_z_of(j, x, valid, order, offsets, ddof, eps, mode, raw_single, scaled, dest, out):
    """Group ``j``'s rows of :func:`seg_group_z` (the CUDA kernel runs this body too)."""
    a = offsets[j]
    b = offsets[j + 1]
    n, s, lo, hi = _count_sum_range(x, valid, order, a, b)
    if n == 1 and raw_single:
        den = _denominator(1.0, eps, mode) if scaled else 1.0
        for p in range(a, b):
            i = _u(order[_u(p)])
            out[_u(dest[_u(p)])] = x[i] / den if valid[i] else 0.0
        return
    if n <= 1 or lo == hi:
        for p in range(a, b):
            out[_u(dest[_u(p)])] = 0.0
        return
    m, ss = _two_pass(x, valid, order, a, b, n, s)
    var = ss / (n - ddof) if n > ddof else 0.0
    den = _denominator(math.sqrt(var), eps, mode) if scaled else 1.0  # / 1.0 is exact
    for p in range(a, b):
        i = _u(order[_u(p)])
        out[_u(dest[_u(p)])] = (x[i] - m) / den if valid[i] else 0.0


@njit(**_JIT)
def _seg_group_z(part_lo, part_hi, x, valid, order, offsets, ddof, eps, mode, raw_single, scaled, dest, out):
    for j in range(part_lo, part_hi):
        _group_z_of(j, x, valid, order, offsets, ddof, eps, mode, raw_single, scaled, dest, out)


@njit(**_JIT)
def _denominator(sigma, eps, mode):
    """``sigma + eps`` (mode 0), ``max(sigma, eps)`` (1), ``sigma + eps`` where ``sigma > 0``
    else 1 (2); a zero denominator becomes 1."""
    if mode == 0:
        den = sigma + eps
    elif mode == 1:
        den = sigma if sigma > eps else eps
    else:
        den = sigma + eps if sigma > 0.0 else 1.0
    return den if den != 0.0 else 1.0


@njit(**_JIT)
def _denominators(sigma, eps, mode, out):
    for j in range(sigma.shape[0]):
        out[j] = _denominator(sigma[j], eps, mode)


def denominators(sigma, eps, mode):
    """:func:`_denominator` of every value of ``sigma`` (any shape), as the kernels take it."""
    sigma = np.asarray(sigma, dtype=np.float64)
    flat = np.ascontiguousarray(sigma).reshape(-1)
    out = np.empty(flat.shape[0])
    _denominators(flat, float(eps), int(mode), out)
    return out.reshape(sigma.shape)


def seg_group_z(x, valid, order, offsets, ddof, eps, mode, raw_single, dest=None, scaled=True, out=None):
    """The grpo rule in one pass per group: ``(x - mean_g) / den(sigma_g)`` on valid rows of
    groups with two or more valid, not all equal values; 0 elsewhere, except a group with one
    valid row under ``raw_single`` (``x / den(1)``). ``mode``: 0 add, 1 floor, 2 skip_zero.
    Without ``scaled`` every ``den`` is 1: the group-centred values (Dr. GRPO, the baseline
    of reinforce_pp_baseline). The value of row ``order[p]`` goes to ``out[dest[p]]``
    (default ``dest = order``); ``out`` a new array when None (every row is written)."""
    out = np.empty(x.shape[0]) if out is None else out
    dest = order if dest is None else dest
    split(_seg_group_z, offsets.shape[0] - 1, x, valid, order, offsets, int(ddof), float(eps), int(mode), bool(raw_single), bool(scaled), dest, out)
    return out


@njit(**_JIT)
def _seg_weighted_mean(part_lo, part_hi, x, w, valid, order, offsets, out):
    for j in range(part_lo, part_hi):
        sw = 0.0
        swx = 0.0
        for p in range(offsets[j], offsets[j + 1]):
            i = order[p]
            if valid[i]:
                sw += w[i]
                swx += w[i] * x[i]
        out[j] = swx / sw if sw != 0.0 else np.nan


def seg_weighted_mean(x, w, valid, order, offsets):
    """Per-group ``sum(w x) / sum(w)`` over valid rows (NaN when the weights sum to 0)."""
    out = np.empty(offsets.shape[0] - 1)
    split(_seg_weighted_mean, offsets.shape[0] - 1, x, w, valid, order, offsets, out)
    return out


# ---------------------------------------------------------------------------------------
# leave-one-out mean and standard deviation
# ---------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _loo_of(j, x, valid, order, offsets, ddof, loo_mean, loo_var):
    """Group ``j``'s rows of :func:`seg_loo_mean_var` (the CUDA kernel runs this same body)."""
    a = offsets[j]
    b = offsets[j + 1]
    n = 0
    s = 0.0
    min1 = np.inf
    min2 = np.inf
    nmin = 0
    max1 = -np.inf
    max2 = -np.inf
    nmax = 0
    for p in range(a, b):
        i = order[p]
        if not valid[i]:
            continue
        v = x[i]
        n += 1
        s += v
        if v < min1:
            min2 = min1
            min1 = v
            nmin = 1
        elif v == min1:
            nmin += 1
        elif v < min2:
            min2 = v
        if v > max1:
            max2 = max1
            max1 = v
            nmax = 1
        elif v == max1:
            nmax += 1
        elif v > max2:
            max2 = v
    m, ss = _two_pass(x, valid, order, a, b, n, s)
    for p in range(a, b):
        i = order[p]
        k = n - 1
        if not valid[i] or k == 0:
            loo_mean[i] = np.nan
            loo_var[i] = 0.0
            continue
        v = x[i]
        omin = min2 if (v == min1 and nmin == 1) else min1
        omax = max2 if (v == max1 and nmax == 1) else max1
        if omin == omax:
            loo_mean[i] = omin
            loo_var[i] = 0.0
            continue
        if n <= _LOO_DIRECT:
            # exact: two passes over the other rows (O(n_g^2), groups are small)
            so = 0.0
            for q in range(a, b):
                h = order[q]
                if valid[h] and h != i:
                    so += x[h]
            lm = so / k
            sk = 0.0
            ck = 0.0
            for q in range(a, b):
                h = order[q]
                if valid[h] and h != i:
                    e = x[h] - lm
                    ck += e
                    sk += e * e
            lm += ck / k
            sk -= ck * ck / k
        else:
            # large groups: downdate the group's sum of squares (O(n_g))
            d = v - m
            lm = m - d / k
            sk = ss - d * d * n / k
        if sk < 0.0:
            sk = 0.0
        loo_mean[i] = lm
        loo_var[i] = sk / (k - ddof) if k > ddof else 0.0


@njit(**_JIT)
def _seg_loo(part_lo, part_hi, x, valid, order, offsets, ddof, loo_mean, loo_var):
    for j in range(part_lo, part_hi):
        _loo_of(j, x, valid, order, offsets, ddof, loo_mean, loo_var)


def seg_loo_mean_var(x, valid, order, offsets, ddof=1):
    """Per row: mean and variance (``ddof``) of the *other* valid rows of its group.

    Rows that are invalid or alone in their group get mean NaN. When the other rows are all
    equal the variance is exactly 0 and the mean is exactly their value.
    """
    n = x.shape[0]
    loo_mean = np.zeros(n)
    loo_var = np.zeros(n)
    split(_seg_loo, offsets.shape[0] - 1, x, valid, order, offsets, int(ddof), loo_mean, loo_var)
    return loo_mean, loo_var


# ---------------------------------------------------------------------------------------
# order statistics
# ---------------------------------------------------------------------------------------
# groups up to this size are sorted by insertion as their rows are read (stable; fewer
# moves than a general sort on a handful of values), larger ones by mergesort
_INSERTION = 48
# ranks: a row of a group up to this size finds its place by counting the smaller and
# the equal values of its group (no sort; the counting loop is vectorised)
_COUNTING = 64
# normal scores: when no group is larger than this, the table covers every size up to the
# largest (at most ~33,000 scores) instead of counting which sizes occur
_EVERY_SIZE = 256


@njit(**_JIT)
def _merge_sort_pairs(vals, rows, a, n):
    srt = np.argsort(vals[a:a + n], kind="mergesort")
    v = vals[a:a + n][srt]
    r = rows[a:a + n][srt]
    vals[a:a + n] = v
    rows[a:a + n] = r


@njit(inline="always", **_JIT)
def _insert(vals, a, n, y):
    """Put ``y`` into the sorted run ``vals[a:a+n]``, after any equal values.

    Branch-free: ``y`` walks the whole run, taking the place of the first larger value,
    which walks on in its stead. On random values this beat stopping at the right place
    (whose exit branch the processor mispredicts once per value) by ~40% on the median
    of 16-row groups. ``y`` is not NaN."""
    for t in range(a, a + n):
        k = _u(t)
        u = vals[k]
        move = y < u
        vals[k] = y if move else u
        y = u if move else y
    vals[a + n] = y


@njit(**_JIT)
def _seg_median(part_lo, part_hi, x, valid, order, offsets, ddof, buf, out, mean, var, count, const):
    for j in range(part_lo, part_hi):
        a = offsets[j]
        b = offsets[j + 1]
        # the sums of seg_mean_var, in the same (file) order, while the values are sorted
        n = 0
        s = 0.0
        lo = np.inf
        hi = -np.inf
        if b - a <= _INSERTION:  # each valid value goes into place as it is read
            for p in range(a, b):
                i = _u(order[_u(p)])
                if valid[i]:
                    v = x[i]
                    _insert(buf, a, n, v)
                    n += 1
                    s += v
                    lo = min(lo, v)
                    hi = max(hi, v)
        else:
            for p in range(a, b):
                i = order[p]
                v = x[i]
                buf[a + n] = v
                if valid[i]:
                    n += 1
                    s += v
                    lo = min(lo, v)
                    hi = max(hi, v)
            buf[a:a + n] = np.sort(buf[a:a + n])
        _put_mean_var(x, valid, order, a, b, j, n, s, lo, hi, ddof, mean, var, count, const)
        if n == 0:
            out[j] = np.nan
            continue
        h = a + n // 2
        out[j] = buf[h] if n % 2 == 1 else 0.5 * (buf[h - 1] + buf[h])


def seg_median_mean_var(x, valid, order, offsets, ddof=1):
    """Per-group median of the valid rows (NaN for a group with none) and, from the same
    pass, :func:`seg_mean_var`'s ``(mean, var, count, const)`` (the same numbers)."""
    g = offsets.shape[0] - 1
    med, mean, var = np.empty(g), np.empty(g), np.empty(g)
    count = np.empty(g, dtype=np.int64)
    const = np.empty(g, dtype=np.bool_)
    split(_seg_median, offsets.shape[0] - 1, x, valid, order, offsets, int(ddof), np.empty(x.shape[0]), med, mean, var, count, const)
    return med, mean, var, count, const


def seg_median(x, valid, order, offsets):
    """Per-group median of the valid rows (NaN for a group with none)."""
    return seg_median_mean_var(x, valid, order, offsets)[0]


@njit(**_JIT)
def _seg_min_max(part_lo, part_hi, x, valid, order, offsets, lo, hi):
    for j in range(part_lo, part_hi):
        a = np.inf
        b = -np.inf
        for p in range(offsets[j], offsets[j + 1]):
            i = order[p]
            if valid[i]:
                v = x[i]
                if v < a:
                    a = v
                if v > b:
                    b = v
        lo[j] = a
        hi[j] = b


def seg_min_max(x, valid, order, offsets):
    """Per-group minimum and maximum of the valid rows (+inf / -inf for a group with none)."""
    g = offsets.shape[0] - 1
    lo = np.empty(g)
    hi = np.empty(g)
    split(_seg_min_max, offsets.shape[0] - 1, x, valid, order, offsets, lo, hi)
    return lo, hi


@njit(inline="always", **_JIT)
def _top2_of(j, x, valid, order, offsets, top, second, arg):
    """Group ``j``'s entries of :func:`seg_top2` (the CUDA kernel runs this same body)."""
    t1 = -np.inf
    t2 = -np.inf
    at = -1
    for p in range(offsets[j], offsets[j + 1]):
        i = order[p]
        if not valid[i]:
            continue
        v = x[i]
        if at < 0 or v > t1:
            t2 = t1
            t1 = v
            at = i
        elif v > t2:
            t2 = v
    top[j] = t1
    second[j] = t2
    arg[j] = at


@njit(**_JIT)
def _seg_top2(part_lo, part_hi, x, valid, order, offsets, top, second, arg):
    for j in range(part_lo, part_hi):
        _top2_of(j, x, valid, order, offsets, top, second, arg)


def seg_top2(x, valid, order, offsets):
    """Per group: the largest value, the second largest (equal to it on ties) and the row
    index of the first (in file order) row holding the largest; -1 for an empty group."""
    g = offsets.shape[0] - 1
    top = np.empty(g)
    second = np.empty(g)
    arg = np.empty(g, dtype=np.int64)
    split(_seg_top2, offsets.shape[0] - 1, x, valid, order, offsets, top, second, arg)
    return top, second, arg


@njit(cache=True)
def _ndtri_lower(p):
    """Inverse of the standard normal CDF for ``0 < p < 0.5``: Acklam's rational
    approximation plus two Halley steps against ``erfc``, accurate to about 1e-15 relative."""
    a1 = -3.969683028665376e01
    a2 = 2.209460984245205e02
    a3 = -2.759285104469687e02
    a4 = 1.383577518672690e02
    a5 = -3.066479806614716e01
    a6 = 2.506628277459239e00
    b1 = -5.447609879822406e01
    b2 = 1.615858368580409e02
    b3 = -1.556989798598866e02
    b4 = 6.680131188771972e01
    b5 = -1.328068155288572e01
    c1 = -7.784894002430293e-03
    c2 = -3.223964580411365e-01
    c3 = -2.400758277161838e00
    c4 = -2.549732539343734e00
    c5 = 4.374664141464968e00
    c6 = 2.938163982698783e00
    d1 = 7.784695709041462e-03
    d2 = 3.224671290700398e-01
    d3 = 2.445134137142996e00
    d4 = 3.754408661907416e00
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        z = (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / (
            (((d1 * q + d2) * q + d3) * q + d4) * q + 1.0
        )
    else:
        q = p - 0.5
        r = q * q
        z = (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q / (
            ((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1.0
        )
    for _ in range(2):
        e = 0.5 * math.erfc(-z / math.sqrt(2.0)) - p
        u = e * math.sqrt(2.0 * math.pi) * math.exp(z * z / 2.0)
        z = z - u / (1.0 + z * u / 2.0)
    return z




@njit(cache=True)
def _ndtri(p):
    """Inverse of the standard normal CDF (the CUDA kernels compile this same body)."""
    if p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return np.inf
    if p == 0.5:
        return 0.0
    if p > 0.5:
        # symmetry keeps the refinement in the accurate (lower) tail; 1 - p is exact here
        return -_ndtri_lower(1.0 - p)
    return _ndtri_lower(p)


def ndtri(p):
    """Vectorised inverse normal CDF (used by tests and the naive reference)."""
    p = np.asarray(p, dtype=np.float64)
    return np.vectorize(_ndtri, otypes=[np.float64])(p)


@njit(inline="always", **_JIT)
def _tied_value(q, r, n, normal, table, base):
    """The value shared by the rows at sorted positions ``q..r`` (0-based) of a group of
    ``n`` valid rows: the mean of those positions' normal scores (exactly 0 when the whole
    group is tied), or their mean rank (1-based)."""
    if not normal:
        return 0.5 * (q + r) + 1.0
    if q == 0 and r == n - 1:
        return 0.0
    acc = 0.0
    for t in range(q, r + 1):  # table[base + t] = _ndtri((t + 0.5) / n)
        acc += table[base + t]
    return acc / (r - q + 1)


@njit(error_model="numpy", **_JIT)
def _seg_ranks(part_lo, part_hi, x, valid, order, offsets, normal, start_of, table, vals, pos, out):
    g = offsets.shape[0] - 1
    n_blocks = min(g, 1024)
    for blk in range(part_lo, part_hi):
        here = np.empty(_COUNTING)  # a small group's values, NaN for its invalid rows
        for j in range(blk * g // n_blocks, (blk + 1) * g // n_blocks):
            a = offsets[j]
            b = offsets[j + 1]
            if b - a <= _COUNTING:
                # a row's sorted positions are q = #smaller .. q + #equal - 1 (NaN is
                # neither), and every row of a tie counts the same: no sort
                n = 0
                for p in range(a, b):
                    i = _u(order[_u(p)])
                    ok = valid[i]
                    here[_u(p - a)] = x[i] if ok else np.nan
                    n += 1 if ok else 0
                # padded with NaN (neither smaller nor equal) to a multiple of 16 cells, so
                # that the counting loop below runs whole vector iterations and no scalar
                # remainder
                width = (b - a + 15) & ~15
                for t in range(b - a, width):
                    here[_u(t)] = np.nan
                for p in range(a, b):
                    y = here[_u(p - a)]
                    if y != y:
                        out[_u(order[_u(p)])] = np.nan
                        continue
                    less = 0
                    same = 0
                    for t in range(width):
                        less += 1 if here[_u(t)] < y else 0
                        same += 1 if here[_u(t)] == y else 0
                    out[_u(order[_u(p)])] = _tied_value(less, less + same - 1, n, normal, table, start_of[n] if normal else 0)
                continue
            n = 0
            for p in range(a, b):
                i = order[p]
                pos[a + n] = p
                vals[a + n] = x[i]
                if valid[i]:
                    n += 1
                else:
                    out[i] = np.nan
            _merge_sort_pairs(vals, pos, a, n)
            q = 0
            while q < n:
                r = q
                while r + 1 < n and vals[a + r + 1] == vals[a + q]:
                    r += 1
                val = _tied_value(q, r, n, normal, table, start_of[n] if normal else 0)
                for t in range(q, r + 1):
                    out[order[pos[a + t]]] = val
                q = r + 1


def _ranks(x, valid, order, offsets, normal, out=None):
    n = x.shape[0]
    out = np.empty(n) if out is None else out  # every row is written: its value, or NaN when invalid
    if normal:  # the scores of every position, once per group size
        largest = int(np.diff(offsets).max()) if offsets.shape[0] > 1 else 0
        if largest <= _EVERY_SIZE:  # every size up to the largest group: no counting pass
            sizes = np.arange(1, largest + 1)
        else:  # the sizes that occur (a group's valid rows may be fewer than its rows)
            count = np.empty(offsets.shape[0] - 1, dtype=np.int64)
            split(_valid_counts, offsets.shape[0] - 1, valid, order, offsets, count)
            sizes = np.flatnonzero(np.bincount(count)[1:]) + 1
        starts = np.zeros(sizes.shape[0], dtype=np.int64)
        starts[1:] = np.cumsum(sizes)[:-1]
        start_of = np.zeros(int(sizes.max()) + 1 if sizes.shape[0] else 1, dtype=np.int64)
        start_of[sizes] = starts
        table = np.empty(int(sizes.sum()))
        split(_fill_scores, sizes.shape[0], sizes, starts, table)
    else:
        start_of, table = np.zeros(1, dtype=np.int64), np.zeros(1)
    split(_seg_ranks, min(offsets.shape[0] - 1, 1024), x, valid, order, offsets, normal, start_of, table, np.empty(n),
          np.empty(n, dtype=np.int64), out, size=offsets.shape[0] - 1)
    return out


@njit(**_JIT)
def _valid_counts(part_lo, part_hi, valid, order, offsets, count):
    for j in range(part_lo, part_hi):
        n = 0
        for p in range(offsets[j], offsets[j + 1]):
            if valid[order[p]]:
                n += 1
        count[j] = n


@njit(**_JIT)
def _fill_scores(part_lo, part_hi, sizes, starts, table):
    for q in range(part_lo, part_hi):
        n = sizes[q]
        for t in range(n):
            table[starts[q] + t] = _ndtri((t + 0.5) / n)


def seg_rank(x, valid, order, offsets, out=None):
    """Per row: 1-based rank within its group (ties share the mean rank); NaN if invalid.
    Into ``out`` when given (every row is written), else a new array."""
    return _ranks(x, valid, order, offsets, False, out)


def seg_normal_scores(x, valid, order, offsets, out=None):
    """Per row: ``Phi^-1((rank - 0.5) / n_g)``; tied rows share the mean of their positions'
    scores, and an all-tied group gets exactly 0. NaN for invalid rows. The scores of the
    positions are computed once per distinct group size, not once per row. Into ``out``
    when given (every row is written), else a new array."""
    return _ranks(x, valid, order, offsets, True, out)


# ---------------------------------------------------------------------------------------
# each objective's deviation from its group mean (the diagnostics' shared view)
# ---------------------------------------------------------------------------------------
@njit(**_JIT)
def _objective_deviations(part_lo, part_hi, r, scorable, order, offsets, rel, count, tolk, varies, valid_k, d, sign):
    K = r.shape[1]
    for j in range(part_lo, part_hi):
        a = offsets[j]
        b = offsets[j + 1]
        c = 0
        for p in range(a, b):
            if scorable[_u(order[_u(p)])]:
                c += 1
        count[j] = c
        for k in range(K):
            col = r[:, k]
            ok = valid_k[:, k]
            for p in range(a, b):
                i = _u(order[_u(p)])
                ok[i] = scorable[i] and col[i] == col[i]
            # the mean exactly as seg_mean_var has it
            n, s, lo, hi = _count_sum_range(col, ok, order, a, b)
            if n == 0:
                m = np.nan
            elif lo == hi:
                m = lo
            else:
                m, _ = _two_pass(col, ok, order, a, b, n, s)
            top = max(abs(lo), abs(hi)) if n > 0 else 0.0
            tol = rel * (top if top > 1.0 else 1.0)
            tolk[j, k] = tol
            varies[j, k] = n >= 2 and hi - lo > tol
            for p in range(a, b):
                i = _u(order[_u(p)])
                dk = col[i] - m if ok[i] else 0.0
                d[i, k] = dk
                sign[i, k] = 1 if dk > tol else (-1 if dk < -tol else 0)


def objective_deviations(r, scorable, order, offsets, rel):
    """One pass over each group's rows for every objective: ``count (g,)`` scorable rows;
    ``tolk (g, k)`` the zero tolerance ``rel * max(1, max |r| over valid cells)``;
    ``varies (g, k)`` two or more valid cells more than that apart; and per cell
    ``valid_k`` (scorable row, value not NaN), ``d`` (value minus the group mean of
    :func:`seg_mean_var`, 0 where not valid) and ``sign`` (+1 / -1 beyond the tolerance,
    else 0, int8)."""
    n, K = r.shape
    g = offsets.shape[0] - 1
    count = np.empty(g, dtype=np.int64)
    tolk = np.empty((g, K))
    varies = np.empty((g, K), dtype=np.bool_)
    valid_k = np.zeros((n, K), dtype=np.bool_)
    d = np.zeros((n, K))
    sign = np.zeros((n, K), dtype=np.int8)
    split(_objective_deviations, g, np.asarray(r, dtype=np.float64), scorable, order, offsets, float(rel), count, tolk,
          varies, valid_k, d, sign, size=n)
    return count, tolk, varies, valid_k, d, sign


# ---------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------
@njit(**_JIT)
def _csr_from_codes(codes, n_groups, order, offsets):
    counts = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(codes.shape[0]):
        counts[codes[i] + 1] += 1
    for j in range(n_groups):
        counts[j + 1] += counts[j]
    for j in range(n_groups + 1):
        offsets[j] = counts[j]
    for i in range(codes.shape[0]):
        c = codes[i]
        order[counts[c]] = i
        counts[c] += 1


def csr_from_codes(codes, n_groups):
    """Counting sort of dense group codes: the stable ``order`` and ``offsets`` (O(n))."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    order = np.empty(codes.shape[0], dtype=np.int64)
    offsets = np.empty(n_groups + 1, dtype=np.int64)
    _csr_from_codes(codes, int(n_groups), order, offsets)
    return order, offsets


@njit(**_JIT)
def _weighted_nansum(part_lo, part_hi, r, w, out):
    for i in range(part_lo, part_hi):
        s = 0.0
        for k in range(r.shape[1]):
            v = r[i, k]
            s += w[k] * v if not math.isnan(v) else 0.0
        out[i] = s


def weighted_nansum(r, w):
    """``sum_k w_k r_ik`` per row with NaN cells left out, added in column order (each
    product rounded, then added: what ``(r * w).nansum(dim=1)`` does), in one pass over
    the matrix without temporaries of its size."""
    out = np.empty(r.shape[0])
    split(_weighted_nansum, r.shape[0], np.asarray(r, dtype=np.float64), np.ascontiguousarray(w, dtype=np.float64), out)
    return out


# ---------------------------------------------------------------------------------------
# group-order layout: gather rows into group order, scatter results back
# ---------------------------------------------------------------------------------------
@njit(**_JIT)
def _take(part_lo, part_hi, x, order, out):
    for p in range(part_lo, part_hi):
        out[p] = x[order[p]]


@njit(**_JIT)
def _take_rows(part_lo, part_hi, x, order, out):
    k = x.shape[1]
    for p in range(part_lo, part_hi):
        i = order[p]
        for c in range(k):
            out[p, c] = x[i, c]


def take(x, order):
    """``x[order]`` (1-d, or rows of a 2-d array) as a parallel gather."""
    x = np.ascontiguousarray(x)
    out = np.empty((order.shape[0],) + x.shape[1:], dtype=x.dtype)
    split(_take_rows if x.ndim == 2 else _take, order.shape[0], x, order, out)
    return out


@njit(inline="always", **_JIT)
def _finished(v, ok, clip):
    v = v if ok else 0.0
    if clip > 0.0:
        if v > clip:
            v = clip
        elif v < -clip:
            v = -clip
    return v


@njit(**_JIT)
def _put_finished(part_lo, part_hi, a, valid, clip, order, out):
    for p in range(part_lo, part_hi):
        out[order[p]] = _finished(a[p], valid[p], clip)


@njit(**_JIT)
def _finish_rows(part_lo, part_hi, a, valid, clip, out):
    for p in range(part_lo, part_hi):
        out[p] = _finished(a[p], valid[p], clip)


def put_finished(a, valid, clip, order):
    """Advantages computed in group order back in file order: ``out[order[p]] = a[p]``,
    0 where ``valid`` is false, clipped to ``[-clip, clip]`` when ``clip > 0`` (the
    estimator contract's last steps, fused into the scatter). ``order`` None: ``a`` is in
    file order already, and only the last steps are made."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    out = np.empty(a.shape[0])
    if order is None:
        split(_finish_rows, a.shape[0], a, valid, float(clip), out)
    else:
        split(_put_finished, order.shape[0], a, valid, float(clip), order, out)
    return out


@njit(**_JIT)
def _in_group_order(order):
    for p in range(order.shape[0]):
        if order[p] != p:
            return False
    return True


def in_group_order(order):
    """True when the rows already lie in group order (``order`` is the identity)."""
    return bool(_in_group_order(order))


PRIMITIVES = (
    "seg_mean_var",
    "seg_weighted_mean",
    "seg_loo_mean_var",
    "seg_median",
    "seg_median_mean_var",
    "seg_min_max",
    "seg_top2",
    "seg_rank",
    "seg_normal_scores",
    "ndtri",
)
