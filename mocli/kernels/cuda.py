"""Segment kernels for NVIDIA GPUs with numba-cuda (``pip install mocli[cuda]``).

The same primitive names and signatures as :mod:`mocli.kernels.cpu`, the same one-pass
estimator steps as :mod:`mocli.kernels.fused` (``fused.STEPS``), and the same numbers
(float64, the same corrected two-pass sums, the same tie and constant rules): host arrays
in, host arrays out. One thread per group. Where the CPU kernel's work for one group is a
function of its own (the moments, the steps), the GPU compiles that same Python body
(:func:`_device`); the order statistics sort each group in a scratch slice of a global
buffer (insertion sort: groups are small). Importing this module
needs numba-cuda but does not touch a GPU; the first launch does. Tested on CPU-only
machines with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import math
import os
import types
import warnings

import numpy as np
import numba
from numba import cuda

from . import cpu, fused
from .cpu import PRIMITIVES, csr_from_codes  # noqa: F401  (the layout is built on the host)

BLOCK = int(os.environ.get("MOCLI_CUDA_BLOCK", "128"))


def _launch(n_items: int) -> tuple[int, int]:
    block = max(1, min(BLOCK, 1024))
    return max(1, (n_items + block - 1) // block), block


def _go(kernel, n_items: int, *args) -> None:
    """Launch ``kernel`` with one thread per item. numba-cuda warns when a grid has too few
    blocks to fill the GPU; small inputs are expected here, so that warning is kept out of
    the caller's stderr (for this launch only)."""
    grid, block = _launch(n_items)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Grid size \d+ will likely result in GPU under-utilization")
        kernel[grid, block](*args)


def _d(a, dtype=None):
    return cuda.to_device(np.ascontiguousarray(a if dtype is None else np.asarray(a, dtype=dtype)))


# ---------------------------------------------------------------------------------------
# device helpers
# ---------------------------------------------------------------------------------------
# the device versions made so far, by the CPU helper's name
_ON_DEVICE: dict[str, object] = {}


def _device(fn):
    """A CUDA device function compiled from the Python body of the CPU helper ``fn`` (a
    Numba CPU function): one source and the same arithmetic on both devices. The helpers
    that body calls are swapped for their device versions, which must be made first (a
    CPU helper left in would pass under the simulator and fail on a GPU, so it is refused
    here, at import)."""
    py = getattr(fn, "py_func", fn)
    names = dict(py.__globals__)
    for name in py.__code__.co_names:
        if name in _ON_DEVICE:
            names[name] = _ON_DEVICE[name]
        elif hasattr(names.get(name), "py_func"):
            raise RuntimeError(f"{py.__name__} calls {name}, which has no device version yet")
    dev = cuda.jit(device=True)(types.FunctionType(py.__code__, names, py.__name__, py.__defaults__, py.__closure__))
    _ON_DEVICE[py.__name__] = dev
    return dev


_u = _device(cpu._u)
_first_pass = _device(cpu._count_sum_range)
_corrected = _device(cpu._corrected)
_two_pass = _device(cpu._two_pass)
_put_mean_var = _device(cpu._put_mean_var)


_ndtri_lower = _device(cpu._ndtri_lower)
_ndtri = _device(cpu._ndtri)
_loo_of = _device(cpu._loo_of)
_top2_of = _device(cpu._top2_of)


@cuda.jit(device=True)
def _gather_sorted(x, valid, order, a, b, buf, rows):
    """Copy the group's valid values (and rows) to ``buf[a:]``/``rows[a:]``, sorted stably
    by value; returns their count."""
    n = 0
    for p in range(a, b):
        i = order[p]
        if valid[i]:
            v = x[i]
            t = a + n
            while t > a and buf[t - 1] > v:
                buf[t] = buf[t - 1]
                rows[t] = rows[t - 1]
                t -= 1
            buf[t] = v
            rows[t] = i
            n += 1
    return n


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------
@cuda.jit
def _k_mean_var(x, valid, order, offsets, ddof, mean, var, count, const):
    j = cuda.grid(1)
    if j >= offsets.shape[0] - 1:
        return
    a = offsets[j]
    b = offsets[j + 1]
    n, s, lo, hi = _first_pass(x, valid, order, a, b)
    _put_mean_var(x, valid, order, a, b, j, n, s, lo, hi, ddof, mean, var, count, const)


def seg_mean_var(x, valid, order, offsets, ddof=1):
    g = offsets.shape[0] - 1
    mean, var = cuda.device_array(g), cuda.device_array(g)
    count, const = cuda.device_array(g, dtype=np.int64), cuda.device_array(g, dtype=np.bool_)
    _go(_k_mean_var, g, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), int(ddof), mean, var, count, const)
    return mean.copy_to_host(), var.copy_to_host(), count.copy_to_host(), const.copy_to_host()


@cuda.jit
def _k_weighted_mean(x, w, valid, order, offsets, out):
    j = cuda.grid(1)
    if j >= offsets.shape[0] - 1:
        return
    sw = 0.0
    swx = 0.0
    for p in range(offsets[j], offsets[j + 1]):
        i = order[p]
        if valid[i]:
            sw += w[i]
            swx += w[i] * x[i]
    out[j] = swx / sw if sw != 0.0 else math.nan


def seg_weighted_mean(x, w, valid, order, offsets):
    g = offsets.shape[0] - 1
    out = cuda.device_array(g)
    _go(_k_weighted_mean, g, _d(x, np.float64), _d(w, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), out)
    return out.copy_to_host()


@cuda.jit
def _k_loo(x, valid, order, offsets, ddof, loo_mean, loo_var):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        _loo_of(j, x, valid, order, offsets, ddof, loo_mean, loo_var)


def seg_loo_mean_var(x, valid, order, offsets, ddof=1):
    n = x.shape[0]
    lm = cuda.to_device(np.zeros(n))
    lv = cuda.to_device(np.zeros(n))
    _go(_k_loo, offsets.shape[0] - 1, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), int(ddof), lm, lv)
    return lm.copy_to_host(), lv.copy_to_host()


@cuda.jit
def _k_min_max(x, valid, order, offsets, lo, hi):
    j = cuda.grid(1)
    if j >= offsets.shape[0] - 1:
        return
    n, s, smallest, largest = _first_pass(x, valid, order, offsets[j], offsets[j + 1])
    lo[j] = smallest
    hi[j] = largest


def seg_min_max(x, valid, order, offsets):
    g = offsets.shape[0] - 1
    lo, hi = cuda.device_array(g), cuda.device_array(g)
    _go(_k_min_max, g, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), lo, hi)
    return lo.copy_to_host(), hi.copy_to_host()


@cuda.jit
def _k_top2(x, valid, order, offsets, top, second, arg):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        _top2_of(j, x, valid, order, offsets, top, second, arg)


def seg_top2(x, valid, order, offsets):
    g = offsets.shape[0] - 1
    top, second = cuda.device_array(g), cuda.device_array(g)
    arg = cuda.device_array(g, dtype=np.int64)
    _go(_k_top2, g, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), top, second, arg)
    return top.copy_to_host(), second.copy_to_host(), arg.copy_to_host()


@cuda.jit
def _k_median(x, valid, order, offsets, buf, rows, out):
    j = cuda.grid(1)
    if j >= offsets.shape[0] - 1:
        return
    a = offsets[j]
    n = _gather_sorted(x, valid, order, a, offsets[j + 1], buf, rows)
    if n == 0:
        out[j] = math.nan
        return
    h = n // 2
    out[j] = buf[a + h] if n % 2 == 1 else 0.5 * (buf[a + h - 1] + buf[a + h])


def seg_median(x, valid, order, offsets):
    g = offsets.shape[0] - 1
    n = x.shape[0]
    out = cuda.device_array(g)
    _go(_k_median, g, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets),
        cuda.device_array(max(n, 1)), cuda.device_array(max(n, 1), dtype=np.int64), out)
    return out.copy_to_host()


def seg_median_mean_var(x, valid, order, offsets, ddof=1):
    # two kernels here; the CPU reads each group once for both
    return (seg_median(x, valid, order, offsets), *seg_mean_var(x, valid, order, offsets, ddof))


@cuda.jit
def _k_ranks(x, valid, order, offsets, normal, buf, rows, out):
    j = cuda.grid(1)
    if j >= offsets.shape[0] - 1:
        return
    a = offsets[j]
    n = _gather_sorted(x, valid, order, a, offsets[j + 1], buf, rows)
    q = 0
    while q < n:
        r = q
        while r + 1 < n and buf[a + r + 1] == buf[a + q]:
            r += 1
        if normal:
            if q == 0 and r == n - 1:
                val = 0.0
            else:
                acc = 0.0
                for t in range(q, r + 1):
                    acc += _ndtri((t + 0.5) / n)
                val = acc / (r - q + 1)
        else:
            val = 0.5 * (q + r) + 1.0
        for t in range(q, r + 1):
            out[rows[a + t]] = val
        q = r + 1


def _ranks(x, valid, order, offsets, normal, out=None):
    n = x.shape[0]
    d_out = cuda.to_device(np.full(n, np.nan))
    _go(_k_ranks, offsets.shape[0] - 1, _d(x, np.float64), _d(valid, np.bool_), _d(order), _d(offsets), bool(normal),
        cuda.device_array(max(n, 1)), cuda.device_array(max(n, 1), dtype=np.int64), d_out)
    return _to_host(d_out, n, out)


def seg_rank(x, valid, order, offsets, out=None):
    return _ranks(x, valid, order, offsets, False, out)


def seg_normal_scores(x, valid, order, offsets, out=None):
    return _ranks(x, valid, order, offsets, True, out)


@cuda.jit
def _k_ndtri(p, out):
    i = cuda.grid(1)
    if i < p.shape[0]:
        out[i] = _ndtri(p[i])


def probe() -> None:
    """Compile and run one small kernel (numba-cuda raises if it cannot)."""
    got = ndtri(np.array([0.5]))
    if got[0] != 0.0:
        raise RuntimeError(f"a probe kernel returned {got[0]!r} instead of 0.0")


def ndtri(p):
    p = np.ascontiguousarray(np.asarray(p, dtype=np.float64)).ravel()
    out = cuda.device_array(max(p.shape[0], 1))
    _go(_k_ndtri, p.shape[0], _d(p), out)
    return out.copy_to_host()[: p.shape[0]]


# ---------------------------------------------------------------------------------------
# one-pass estimator steps (fused.STEPS, exposed by a kernels.Device): one thread per group runs
# the CPU kernel's own per-group body, compiled for the GPU
# ---------------------------------------------------------------------------------------
_den = _device(cpu._denominator)
_group_z_of = _device(cpu._group_z_of)
_expand_of = _device(fused._expand_of)
_pick = _device(fused._pick)
_is_quad = _device(fused._is_quad)
_quad_cells = _device(fused._quad_cells)
_column_moments = _device(fused._column_moments)
_quad_sums = _device(fused._quad_sums)
_lane_finish = _device(fused._lane_finish)
_quad_moments = _device(fused._quad_moments)
_z_rule = _device(fused._z_rule)
_column_z = _device(fused._column_z)
_lane_rule = _device(fused._lane_rule)
_quad_z = _device(fused._quad_z)
_weigh = _device(fused._weigh)
_quad_row_z = _device(fused._quad_row_z)
_signs = _device(fused._signs)
_lane_varies = _device(fused._lane_varies)
_lane_sigma = _device(fused._lane_sigma)
_add_column = _device(fused._add_column)
_objective_sum_of = _device(fused._objective_sum_of)
_gd2po_quad = _device(fused._gd2po_quad)
_gd2po_of = _device(fused._gd2po_of)
_dvao_of = _device(fused._dvao_of)


@cuda.jit
def _k_group_z(x, valid, order, offsets, ddof, eps, mode, raw_single, scaled, dest, out):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        _group_z_of(j, x, valid, order, offsets, ddof, eps, mode, raw_single, scaled, dest, out)


def seg_group_z(x, valid, order, offsets, ddof, eps, mode, raw_single, dest=None, scaled=True, out=None):
    n = x.shape[0]
    d_out = cuda.device_array(max(n, 1))
    d_order = _d(order)
    _go(_k_group_z, offsets.shape[0] - 1,
        _d(x, np.float64), _d(valid, np.bool_), d_order, _d(offsets), int(ddof), float(eps), int(mode),
        bool(raw_single), bool(scaled), d_order if dest is None else _d(dest), d_out)
    return _to_host(d_out, n, out)


@cuda.jit
def _k_expand(x, valid, order, offsets, shift, mul, den, live, dest, out):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        _expand_of(j, x, valid, order, offsets, shift, mul, den, live, dest, out)


def seg_expand(x, valid, order, offsets, shift, mul, den, live, dest=None):
    n = x.shape[0]
    out = cuda.device_array(max(n, 1))
    d_order = _d(order)
    _go(_k_expand, offsets.shape[0] - 1,
        _d(x, np.float64), _d(valid, np.bool_), d_order, _d(offsets), _d(shift, np.float64), _d(mul, np.float64),
        _d(den, np.float64), _d(live, np.bool_), d_order if dest is None else _d(dest), out)
    return _to_host(out, n, None)


def _to_host(d_out, n, out):
    """The first ``n`` values of a result on the GPU (sized ``n`` or ``max(n, 1)``) in host
    memory: into ``out`` when given (a step's ``out`` argument), else a new array."""
    if out is None:
        return d_out.copy_to_host()[:n]
    if n:
        d_out[:n].copy_to_host(out)
    return out


# a thread's quad statistics; a local array's size must be a constant when the kernel is
# compiled for a real GPU, which a plain global is and a module attribute (fused.STATS) is not
_STATS = fused.STATS


def _matrix_args(r, cols, w, scorable):
    """The objective steps' inputs on the GPU: the reward matrix flattened row-major and
    its number of columns (as the CPU kernels read it), the weighted columns, their
    weights and the scorable mask."""
    flat, k = fused._flat(r)
    return (cuda.to_device(flat), k, _d(cols, np.int64), _d(w, np.float64), _d(scorable, np.bool_))


@cuda.jit
def _k_objective_sum(flat, k, cols, w, sc, offsets, ddof, eps, mode, raw_single, out):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        st = cuda.local.array(_STATS, numba.float64)
        _objective_sum_of(j, flat, k, cols, w, sc, offsets, ddof, eps, mode, raw_single, st, out)


def seg_objective_sum(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single, out=None):
    n = r.shape[0]
    d_out = cuda.device_array(max(n, 1))
    _go(_k_objective_sum, offsets.shape[0] - 1,
        *_matrix_args(r, cols, w, scorable), _d(offsets), int(ddof), float(eps), int(mode), bool(raw_single), d_out)
    return _to_host(d_out, n, out)


@cuda.jit
def _k_gd2po(flat, k, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, sign, total, sm, v_out, kept):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:  # the group's own rows of the row-sized scratch
        st = cuda.local.array(_STATS, numba.float64)
        _gd2po_of(j, flat, k, cols, w, sc, offsets, ddof, eps, mode, raw_single, tau, st, sign, total, sm, offsets[j],
                  v_out, kept)


def seg_gd2po(r, cols, w, scorable, offsets, ddof, eps, mode, raw_single, tau, out=None):
    n = max(r.shape[0], 1)
    v, kept = cuda.device_array(n), cuda.device_array(n, dtype=np.bool_)
    _go(_k_gd2po, offsets.shape[0] - 1,
        *_matrix_args(r, cols, w, scorable), _d(offsets), int(ddof), float(eps), int(mode), bool(raw_single),
        float(tau), cuda.device_array(n, dtype=np.int64), cuda.device_array(n), cuda.device_array(n), v, kept)
    v_out, kept_out = (None, None) if out is None else out
    return _to_host(v, r.shape[0], v_out), _to_host(kept, r.shape[0], kept_out)


@cuda.jit
def _k_dvao(flat, k, cols, w, sc, offsets, raw_lone, out):
    j = cuda.grid(1)
    if j < offsets.shape[0] - 1:
        st = cuda.local.array(_STATS, numba.float64)
        _dvao_of(j, flat, k, cols, w, sc, offsets, raw_lone, st, out)


def seg_dvao(r, cols, w, scorable, offsets, raw_lone, out=None):
    n = r.shape[0]
    d_out = cuda.device_array(max(n, 1))
    _go(_k_dvao, offsets.shape[0] - 1, *_matrix_args(r, cols, w, scorable), _d(offsets), bool(raw_lone), d_out)
    return _to_host(d_out, n, out)
