"""Segment kernels against plain loops, including ragged, non-contiguous groups."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri as scipy_ndtri

from mocli import Rollouts, kernels, prepare
from mocli.core.work import Work
from mocli.kernels import CPU, cpu


@st.composite
def segments(draw):
    n = draw(st.integers(1, 50))
    codes = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)))
    _, codes = np.unique(codes, return_inverse=True)
    x = np.array(draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 2.0]), st.floats(-5, 5)), min_size=n, max_size=n)))
    valid = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    order, offsets = CPU.csr_from_codes(codes, codes.max() + 1)
    return x, valid, codes, order, offsets


def members(codes, valid, j):
    return [i for i in range(len(codes)) if codes[i] == j and valid[i]]


@settings(max_examples=200, deadline=None)
@given(seg=segments(), ddof=st.sampled_from([0, 1]))
def test_mean_var_and_loo(seg, ddof):
    x, valid, codes, order, offsets = seg
    mean, var, count, const = CPU.seg_mean_var(x, valid, order, offsets, ddof)
    lm, lv = CPU.seg_loo_mean_var(x, valid, order, offsets, ddof)
    for j in range(len(offsets) - 1):
        rows = members(codes, valid, j)
        vals = [x[i] for i in rows]
        assert count[j] == len(vals)
        if not vals:
            assert math.isnan(mean[j])
            continue
        assert mean[j] == pytest.approx(math.fsum(vals) / len(vals), abs=1e-12)
        want = statistics.variance(vals) if ddof == 1 and len(vals) > 1 else (statistics.pvariance(vals) if ddof == 0 else 0.0)
        assert var[j] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert const[j] == (len(set(vals)) == 1)
        for i in rows:
            others = [x[q] for q in rows if q != i]
            if not others:
                assert math.isnan(lm[i])
                continue
            assert lm[i] == pytest.approx(math.fsum(others) / len(others), abs=1e-12)
            w = 0.0 if len(others) <= ddof else (statistics.variance(others) if ddof else statistics.pvariance(others))
            assert lv[i] == pytest.approx(w, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(seg=segments())
def test_order_statistics(seg):
    x, valid, codes, order, offsets = seg
    med = CPU.seg_median(x, valid, order, offsets)
    top, second, arg = CPU.seg_top2(x, valid, order, offsets)
    lo, hi = CPU.seg_min_max(x, valid, order, offsets)
    rank = CPU.seg_rank(x, valid, order, offsets)
    normal = CPU.seg_normal_scores(x, valid, order, offsets)
    for j in range(len(offsets) - 1):
        rows = members(codes, valid, j)
        vals = [x[i] for i in rows]
        if not vals:
            assert math.isnan(med[j]) and arg[j] == -1 and lo[j] == np.inf and hi[j] == -np.inf
            continue
        assert med[j] == statistics.median(vals)
        assert top[j] == max(vals) == hi[j] and lo[j] == min(vals)
        assert second[j] == (sorted(vals)[-2] if len(vals) > 1 else -np.inf)
        assert arg[j] == next(i for i in rows if x[i] == max(vals))
        srt = sorted(vals)
        for i in rows:
            pos = [t for t, v in enumerate(srt) if v == x[i]]
            assert rank[i] == pytest.approx(sum(pos) / len(pos) + 1)
            want = 0.0 if len(pos) == len(vals) else float(np.mean(scipy_ndtri([(t + 0.5) / len(vals) for t in pos])))
            assert normal[i] == pytest.approx(want, abs=1e-12)
    assert np.all(np.isnan(rank[~valid]))


@pytest.mark.parametrize("extra", [False, True])
def test_order_statistics_on_groups_either_side_of_the_insertion_limit(extra):
    """Small groups sort by insertion as rows are read (the median) or rank by counting
    (ranks, normal scores), large ones by mergesort: each gives the median, ranks and
    normal scores of a plain sort (ties and invalid rows included)."""
    rng = np.random.default_rng(8)
    sizes = [1, 2, cpu._INSERTION - 1, cpu._INSERTION, cpu._INSERTION + 1, 3 * cpu._INSERTION + 7]
    sizes += [cpu._COUNTING - 1, cpu._COUNTING, cpu._COUNTING + 1]
    sizes += [cpu._EVERY_SIZE + 40] if extra else []  # normal scores: the sizes that occur, counted
    codes = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    x = np.round(rng.normal(size=codes.shape[0]), 1)  # rounded: many ties
    valid = rng.random(codes.shape[0]) < 0.9
    order, offsets = CPU.csr_from_codes(codes, len(sizes))
    med = CPU.seg_median(x, valid, order, offsets)
    rank = CPU.seg_rank(x, valid, order, offsets)
    normal = CPU.seg_normal_scores(x, valid, order, offsets)
    for j in range(len(sizes)):
        rows = members(codes, valid, j)
        vals = sorted(x[i] for i in rows)
        assert (med[j] == statistics.median(vals)) if vals else math.isnan(med[j])
        for i in rows:
            pos = [t for t, v in enumerate(vals) if v == x[i]]
            assert rank[i] == sum(pos) / len(pos) + 1
            want = 0.0 if len(pos) == len(vals) else float(np.mean(scipy_ndtri([(t + 0.5) / len(vals) for t in pos])))
            assert normal[i] == pytest.approx(want, abs=1e-12)
    assert np.all(np.isnan(rank[~valid]))


@pytest.mark.parametrize("ddof", [0, 1])
def test_median_with_moments_gives_the_moments_kernel_bits(ddof):
    """mc_grpo's one pass (median, then the group moments from the same read) equals
    seg_median and seg_mean_var bit for bit: groups either side of the insertion limit,
    constant, all-invalid and single-row groups, values offset by 1e8."""
    rng = np.random.default_rng(9)
    sizes = [1, 1, 2, 5, 16, cpu._INSERTION, cpu._INSERTION + 1, 130]
    codes = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    x = 1e8 + np.round(rng.normal(size=codes.shape[0]), 2)
    valid = rng.random(codes.shape[0]) < 0.85
    valid[codes == 0] = False
    x[codes == 3] = 1e8 + 0.1  # constant group
    order, offsets = CPU.csr_from_codes(codes, len(sizes))
    med, *moments = cpu.seg_median_mean_var(x, valid, order, offsets, ddof)
    np.testing.assert_array_equal(med, cpu.seg_median(x, valid, order, offsets))
    for got, want in zip(moments, cpu.seg_mean_var(x, valid, order, offsets, ddof)):
        np.testing.assert_array_equal(got, want)
    assert moments[3][3] and moments[2][0] == 0 and np.isnan(moments[0][0])


def test_ndtri_matches_scipy():
    p = np.concatenate([np.linspace(1e-12, 1 - 1e-12, 2001), [1e-300, 0.02425, 0.97575]])
    np.testing.assert_allclose(CPU.ndtri(p), scipy_ndtri(p), rtol=1e-13, atol=1e-13)


@settings(max_examples=150, deadline=None)
@given(seg=segments(), k=st.integers(1, 3), holes=st.lists(st.integers(0, 149), max_size=12), offset=st.sampled_from([0.0, 1e8]))
def test_objective_deviations_equal_the_primitives_and_the_definition(seg, k, holes, offset):
    """The diagnostics' one-pass view against the segment primitives it replaces (bit for
    bit: the same mean, the same tolerance) and against the definition: count of scorable
    rows, d = r - group mean of the valid cells, sign beyond 1e-9 * max(1, max |r|)."""
    x, scorable, codes, order, offsets = seg
    n = x.shape[0]
    r = np.stack([np.roll(x, c) * (c + 1) + offset for c in range(k)], axis=1)
    for h in holes:
        r[h % n, h % k] = np.nan
    count, tolk, varies, valid_k, d, sign = CPU.objective_deviations(r, scorable, order, offsets, 1e-9)
    for c in range(k):
        col = r[:, c]
        valid = scorable & ~np.isnan(col)
        xc = np.where(valid, col, 0.0)
        mean, _, cnt, _ = CPU.seg_mean_var(xc, valid, order, offsets, 0)
        lo, hi = CPU.seg_min_max(xc, valid, order, offsets)
        tol = 1e-9 * np.maximum(1.0, np.where(cnt > 0, np.maximum(np.abs(lo), np.abs(hi)), 0.0))
        assert np.array_equal(tolk[:, c], tol) and np.array_equal(valid_k[:, c], valid)
        assert np.array_equal(varies[:, c], (cnt >= 2) & (hi - lo > tol))
        dk = np.where(valid, xc - mean[codes], 0.0)
        assert np.array_equal(d[:, c], dk)
        assert np.array_equal(sign[:, c], np.where(dk > tol[codes], 1, np.where(dk < -tol[codes], -1, 0)))
        for j in range(len(offsets) - 1):
            rows = members(codes, valid, j)
            assert count[j] == len(members(codes, scorable, j))
            for i in rows:
                want = col[i] - math.fsum(col[q] for q in rows) / len(rows)
                assert d[i, c] == pytest.approx(want, abs=1e-12 * max(1.0, abs(offset)))


def test_csr_is_stable_and_complete():
    codes = np.array([2, 0, 2, 1, 0, 2])
    order, offsets = CPU.csr_from_codes(codes, 3)
    assert offsets.tolist() == [0, 2, 3, 6]
    assert order.tolist() == [1, 4, 3, 0, 2, 5]


def test_weighted_mean():
    x = np.array([1.0, 0.0, 1.0, 5.0])
    w = np.array([1.0, 3.0, 0.0, 0.0])
    order, offsets = CPU.csr_from_codes(np.array([0, 0, 0, 1]), 2)
    out = CPU.seg_weighted_mean(x, w, np.ones(4, bool), order, offsets)
    assert out[0] == 0.25 and math.isnan(out[1])


def test_large_group_loo_path():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    order, offsets = CPU.csr_from_codes(np.zeros(1000, dtype=np.int64), 1)
    lm, lv = CPU.seg_loo_mean_var(x, np.ones(1000, bool), order, offsets, 1)
    for i in (0, 17, 999):
        others = np.delete(x, i)
        assert lm[i] == pytest.approx(others.mean(), abs=1e-12)
        assert lv[i] == pytest.approx(others.var(ddof=1), rel=1e-10)


def test_a_device_has_every_primitive_and_step():
    from mocli.kernels import fused

    for name in cpu.PRIMITIVES + fused.STEPS:
        assert callable(getattr(CPU, name))
    assert kernels.device("cpu") is CPU and CPU.name == "cpu"


def composed_group_z(x, valid, b, *, eps, eps_mode, ddof, singleton, scaled):
    """The grpo rule written as a primitive and NumPy expressions over whole columns: the
    reference the one-pass kernel is held to, bit for bit."""
    from mocli.estimators.normalise import divide

    mean, var, count, const = CPU.seg_mean_var(x, valid, b.order, b.offsets, ddof)
    c = b.codes
    live = valid & ~const[c] & (count[c] > 1)
    z = x - mean[c]
    if scaled:
        z = divide(z, np.sqrt(var)[c], eps, eps_mode)
    z = np.where(live, z, 0.0)
    lone = valid & (count[c] == 1)
    if singleton == "raw":
        return np.where(lone, divide(x, 1.0, eps, eps_mode) if scaled else x, z)
    return np.where(lone, 0.0, z)


@pytest.mark.parametrize("eps_mode", ["add", "floor", "skip_zero"])
@pytest.mark.parametrize("singleton", ["zero", "raw"])
def test_fused_group_z_equals_the_composed_rule_bit_for_bit(eps_mode, singleton):
    """grpo's rule runs as one kernel pass; the same rule composed of a primitive and NumPy
    (:func:`composed_group_z`) gives the very same bits, for every eps mode, ddof and
    singleton policy, and unscaled (the group-centred values of dr_grpo and
    reinforce_pp_baseline)."""
    from mocli.core.work import Work
    from mocli.engine.pipeline import make_scheme
    from mocli.estimators.normalise import group_z

    rng = np.random.default_rng(11)
    n = 5000
    r = np.where(rng.random((n, 2)) < 0.1, np.nan, np.round(rng.normal(size=(n, 2)), 1))
    b = prepare(Rollouts.from_arrays(r, rng.integers(0, n // 4, n)), make_scheme())
    for ddof, eps, scaled in itertools.product((0, 1), (0.0, 1e-6, 3.0), (True, False)):
        kw = dict(eps=eps, eps_mode=eps_mode, ddof=ddof, singleton=singleton, scaled=scaled)
        fused = group_z(b.scalar, b.scorable, b, Work(), **kw)
        composed = composed_group_z(np.where(b.scorable, b.scalar, 0.0), b.scorable, b, **kw)
        assert np.array_equal(fused, composed)
        assert np.all(fused[~b.scorable] == 0.0)


def test_group_order_layout_gathers_and_scatters_exactly():
    """take / put_finished are x[order] and its inverse (zeroing and clipping fused);
    a batch's grouped copy holds the same rows with each group contiguous."""
    from mocli import Rollouts, prepare
    from mocli.engine.pipeline import make_scheme

    rng = np.random.default_rng(5)
    n = 3000
    codes = rng.integers(0, 400, n)
    order, offsets = cpu.csr_from_codes(np.unique(codes, return_inverse=True)[1], 400)
    x = rng.normal(size=n)
    m = rng.normal(size=(n, 3))
    assert np.array_equal(cpu.take(x, order), x[order])
    assert np.array_equal(cpu.take(m, order), m[order])
    assert np.array_equal(cpu.take(x > 0, order), (x > 0)[order])
    valid = rng.random(n) < 0.8
    a = rng.normal(size=n) * 3
    want = np.empty(n)
    want[order] = np.clip(np.where(valid, a, 0.0), -1.5, 1.5)
    assert np.array_equal(cpu.put_finished(a, valid, 1.5, order), want)
    want[order] = np.where(valid, a, 0.0)
    assert np.array_equal(cpu.put_finished(a, valid, 0.0, order), want)
    # rows already in file order (estimators without group statistics): last steps only
    assert np.array_equal(cpu.put_finished(a, valid, 1.5, None), np.clip(np.where(valid, a, 0.0), -1.5, 1.5))
    assert cpu.in_group_order(np.arange(7)) and not cpu.in_group_order(np.array([0, 2, 1]))

    r = np.where(rng.random((n, 2)) < 0.1, np.nan, rng.normal(size=(n, 2)))
    b = prepare(Rollouts.from_arrays(r, codes, length=rng.integers(1, 50, n)), make_scheme())
    g = b.grouped(with_rewards=False)
    assert g.rewards.shape == (n, 0) and g is b.grouped(False)
    g = b.grouped()
    o = b.order
    assert np.array_equal(g.rewards, b.rewards[o], equal_nan=True)
    assert np.array_equal(g.scalar, b.scalar[o], equal_nan=True)
    assert np.array_equal(g.scorable, b.scorable[o]) and np.array_equal(g.length, b.length[o])
    assert np.array_equal(g.codes, b.codes[o]) and np.array_equal(g.order, np.arange(n))
    assert cpu.in_group_order(g.order) and g.grouped() is g
    d = b.destination()  # the scatter back to file order reads a 32-bit copy of the order
    assert d.dtype == np.int32 and np.array_equal(d, o) and b.destination() is d
    b.release()
    assert "grouped" not in b._cache and "destination" not in b._cache
    ordered = prepare(Rollouts.from_arrays(r, np.sort(codes)), make_scheme())
    assert ordered.grouped() is ordered  # already in group order: no copy
    assert ordered.destination() is None  # and nothing to put back


FUSED_SPECS = [
    "grpo", "grpo:scale=batch,singleton=raw", "grpo:scale=none,ddof=0", "dr_grpo:singleton=raw",
    "rloo", "rloo:singleton=raw,normalize=true", "reinforce_pp", "reinforce_pp_baseline:singleton=raw",
    "opo", "opo:singleton=raw", "gpg", "gpg:singleton=raw", "mc_grpo", "mc_grpo:singleton=raw,eps_mode=floor",
    "g2rpo", "ngrpo", "ngrpo:singleton=raw,r_max=2", "gdpo", "gdpo:singleton=raw,eps_mode=skip_zero", "gdpo:singleton=raw,eps_mode=floor",
    "advantage_sum:ddof=0", "dvao", "dvao:singleton=raw", "gd2po", "gd2po:tau=0.3,singleton=raw",
]


# reward weights: three objectives (each taken on its own); six with the weighted ones
# forming a run of four side by side (a "quad" of the objective kernels) and one more,
# the quad at the start or after an unweighted column; exactly one quad, as the whole
# matrix or before an unweighted column (gd2po decides its rows in the quad's loop then)
WEIGHTS = {"k3": [1.0, 0.5, 2.0], "k6-quad-first": [1.0, 0.5, 2.0, -1.0, 0.0, 0.7],
           "k6-quad-second": [0.0, 1.0, 0.5, 2.0, -1.0, 0.7], "k4-quad": [1.0, 0.5, 2.0, -1.0],
           "k5-quad-only": [1.0, 0.5, 2.0, -1.0, 0.0]}
WIDE = {"k6-quad-first", "k6-quad-second", "k4-quad", "k5-quad-only"}


MULTI = ("gdpo", "advantage_sum", "dvao", "gd2po")


@pytest.mark.parametrize(("spec", "weights"), [(s, "k3") for s in FUSED_SPECS] + [
    (s, w) for s in FUSED_SPECS if s.startswith(MULTI) for w in sorted(WIDE)])
def test_one_pass_steps_equal_the_naive_reference(spec, weights):
    """The one-pass kernels (mocli.kernels.fused, compiled for the GPU too) give the naive
    reference's numbers (tests/naive.py): ragged groups, NaN cells, singletons, constant
    groups, rows out of group order; objectives taken one by one and four side by side."""
    from .test_estimators import check

    w = WEIGHTS[weights]
    k = len(w)
    rng = np.random.default_rng(23)
    n = 600
    r = np.round(rng.normal(size=(n, k)) * 4) / 4  # quarters: sums exact, so ties are ties in both

    r[:, 1] = rng.integers(0, 2, n)
    r = np.where(rng.random((n, k)) < 0.08, np.nan, r)
    codes = rng.integers(0, n // 6, n)
    codes[:10] = 10**6 + np.arange(10)  # singletons
    r[np.isin(codes, codes[10:20]), 2] = 0.5  # some constant objectives
    r[np.isin(codes, codes[20:25]), :] = np.nan  # some groups without a valid cell
    data = {"rewards": r, "codes": codes, "weights": w, "length": rng.integers(1, 90, n).astype(float),
            "baseline": rng.normal(size=n)}
    check(spec, data)


@pytest.mark.parametrize("step", ["seg_objective_sum", "seg_dvao"])
def test_a_quad_lane_gives_the_bits_of_its_column_alone(step):
    """Four objectives side by side are four lanes of the same operations as one objective
    taken alone: with one lane weighted (the others weight 0, which adds exact zeros) the
    quad's result is bit for bit the column pass's, lane by lane, NaN cells, constant
    and lone groups included."""
    from mocli.kernels import fused

    rng = np.random.default_rng(8)
    n = 3000
    r = np.where(rng.random((n, 5)) < 0.1, np.nan, np.round(rng.normal(size=(n, 5)), 1))
    sizes = rng.integers(1, 30, n)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    offsets = offsets[offsets < n]
    offsets = np.append(offsets, n)
    r[offsets[3]:offsets[4], 2] = 0.25  # a constant objective in one group
    scorable = rng.random(n) < 0.9
    fn = getattr(fused, step)
    if step == "seg_objective_sum":  # every (ddof, eps, eps mode, singleton) the z rule knows
        settings = list(itertools.product((0, 1), (0.0, 1e-6, 2.0), (0, 1, 2), (False, True)))
    else:
        settings = [(True,), (False,)]
    for args in settings:
        for start in (0, 1):
            quad = np.arange(start, start + 4)
            for lane in range(4):
                one_hot = np.where(np.arange(4) == lane, 1.5, 0.0)
                got = fn(r, quad, one_hot, scorable, offsets, *args)
                alone = fn(r, quad[lane:lane + 1], one_hot[lane:lane + 1], scorable, offsets, *args)
                np.testing.assert_array_equal(got, alone, err_msg=str(args))
                assert np.count_nonzero(alone) > n // 2


@pytest.mark.parametrize("spec", ["advantage_sum", "gdpo:batch_norm=false", "dvao", "gd2po:tau=0.3"])
def test_objective_kernels_outside_the_estimator_call(spec):
    """The multi-objective kernels read rows in group order. Called on a batch out of
    group order (``compute`` directly, not through ``__call__``) they still answer in the
    batch's own order; a table whose rows already lie in group order gives the same numbers."""
    from mocli import Rollouts, prepare
    from mocli.engine.pipeline import make_estimator, make_scheme

    rng = np.random.default_rng(5)
    n = 900
    r = np.where(rng.random((n, 3)) < 0.1, np.nan, np.round(rng.normal(size=(n, 3)), 1))
    codes = rng.integers(0, 120, n)
    est = make_estimator(spec)
    b = prepare(Rollouts.from_arrays(r, codes), make_scheme())
    want = est(b)
    got = est.compute(b, Work())
    np.testing.assert_allclose(np.where(b.scorable, got, 0.0), want, rtol=1e-12, atol=1e-12)
    assert not np.allclose(want, want[b.order])  # the order matters, so the test can tell
    o = np.argsort(codes, kind="stable")
    s = prepare(Rollouts.from_arrays(r[o], codes[o]), make_scheme())
    assert s.grouped(False) is s
    np.testing.assert_allclose(est(s), want[o], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sort_rows", [False, True])
def test_estimators_share_scratch_arrays_and_never_return_them(sort_rows):
    """The per-row work arrays of the objective and ranking steps are the batch's scratch,
    reused by every estimator run on it; what an estimator returns is always its own
    array (an advantage vector sharing a scratch array would change under the caller
    when the next estimator runs). Outside an estimator call the steps get new arrays;
    release drops the scratch."""
    from mocli import Rollouts, prepare
    from mocli.engine.pipeline import make_estimator, make_scheme

    rng = np.random.default_rng(8)
    n = 1200
    r = np.where(rng.random((n, 4)) < 0.05, np.nan, np.round(rng.normal(size=(n, 4)), 1))
    codes = rng.integers(0, 150, n)
    if sort_rows:
        codes = np.sort(codes)
    ro = Rollouts.from_arrays(r, codes)
    specs = ["advantage_sum", "gdpo:batch_norm=false", "gdpo", "dvao", "gd2po:tau=0.3", "g2rpo", "reinforce_pp_baseline",
             "grpo"]
    b = prepare(ro, make_scheme())
    got = {s: make_estimator(s)(b) for s in specs}
    scratch = [a for k, a in b._cache.items() if isinstance(k, tuple)]
    assert {k for k in b._cache if isinstance(k, tuple)} == {("scratch", "values"), ("scratch", "mask")}
    for s in specs:
        alone = make_estimator(s)(prepare(ro, make_scheme()))  # a batch of its own: fresh arrays
        np.testing.assert_array_equal(got[s], alone, err_msg=s)
        assert not any(np.shares_memory(got[s], a) for a in scratch), s
    assert not any(np.shares_memory(got[x], got[y]) for x in specs for y in specs if x < y)
    est = make_estimator("advantage_sum")
    first, second = est.compute(b, Work()), est.compute(b, Work())
    assert not np.shares_memory(first, second) and not any(np.shares_memory(first, a) for a in scratch)
    b.release()
    assert not any(isinstance(k, tuple) for k in b._cache)


@pytest.mark.parametrize("sort_rows", [False, True])
def test_group_order_copy_is_freed_on_release_without_the_garbage_collector(sort_rows):
    """The group-order copy must not refer to itself (a cycle would keep a streamed chunk's
    arrays alive until the collector runs, which piled up hundreds of MB over the chunks)."""
    import gc
    import weakref

    from mocli import Rollouts, prepare
    from mocli.engine.pipeline import make_estimator, make_scheme

    rng = np.random.default_rng(2)
    codes = rng.integers(0, 50, 400)
    if sort_rows:
        codes = np.sort(codes)
    b = prepare(Rollouts.from_arrays(rng.normal(size=(400, 3)), codes), make_scheme())
    gc.disable()
    try:
        for spec in ("gdpo", "dvao", "gd2po", "grpo"):
            make_estimator(spec)(b)
        copy = weakref.ref(b.grouped())
        assert (copy() is b) == sort_rows
        b.release()
        assert copy() is (b if sort_rows else None)
    finally:
        gc.enable()


def test_masked_comoments_read_in_place_equal_the_copied_rows():
    """The conflict correlations read two strided columns in place over the rows where both
    are valid: the co-moments of the copied rows, to rounding; none valid gives zeros."""
    from mocli.kernels import fused
    from mocli.core.tally import CoMoments

    rng = np.random.default_rng(11)
    m = rng.normal(size=(70001, 3)) * [1.0, 1e-3, 50.0] + [1e6, 0.0, -3.0]
    vx, vy = rng.random(70001) < 0.9, rng.random(70001) < 0.7
    both = vx & vy
    got = fused.masked_comoments(m[:, 0], m[:, 2], vx, vy)
    want = CoMoments.of(m[both, 0], m[both, 2])
    np.testing.assert_allclose(got, [want.n, want.mx, want.my, want.sxx, want.syy, want.sxy], rtol=1e-10)
    assert fused.masked_comoments(m[:, 0], m[:, 1], vx, np.zeros(70001, dtype=bool)) == (0.0,) * 6


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 63, 64, 65, 255, 257, 1001, 70003])
def test_masked_moments_in_four_lanes_equal_the_copied_rows(n):
    """Batch moments are summed in four lanes per fixed block of rows (row ``4q + l`` of a
    block into lane ``l``; a block's last, partial quad masks the rows past its end): the
    numbers of :meth:`Moments.of` on the copied valid rows, to rounding, whatever the
    table's length against the blocks and quads; extremes and counts exactly."""
    from mocli.kernels import fused
    from mocli.core.tally import Moments

    rng = np.random.default_rng(n)
    x = rng.normal(size=n) * 3.0 + 1e6  # offset: the corrected two-pass must hold it
    x[rng.random(n) < 0.05] = np.nan  # never valid: NaN cells lie outside the mask
    valid = (rng.random(n) < 0.6) & ~np.isnan(x)
    got = fused.masked_moments(x, valid)
    want = Moments.of(x[valid])
    assert got[0] == want.n and got[3] == want.lo and got[4] == want.hi
    np.testing.assert_allclose(got[1:3], [want.mean, want.m2], rtol=1e-9, atol=1e-12)
    everything = fused.masked_moments(x[valid], np.ones(int(valid.sum()), dtype=bool))
    np.testing.assert_allclose(everything, got, rtol=1e-9, atol=1e-12)
