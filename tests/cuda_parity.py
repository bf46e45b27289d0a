"""CUDA backend against the CPU backend: every primitive and estimator, to 1e-9.

Run by tests/test_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 and a block size
of 4, so that tiny inputs span several blocks; on a GPU machine run it directly:
``python -m pytest tests/cuda_parity.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mocli import Rollouts, compute_advantages, kernels
from mocli.kernels import cpu
from mocli.kernels import cuda as gpu


def random_segments(seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 9, size=n)
    _, codes = np.unique(codes, return_inverse=True)
    x = np.where(rng.random(n) < 0.5, rng.choice([0.0, 1.0, 0.5], size=n), rng.normal(size=n))
    valid = rng.random(n) < 0.85
    order, offsets = cpu.csr_from_codes(codes, codes.max() + 1)
    return x, valid, order, offsets


@pytest.mark.parametrize("seed", range(6))
def test_primitives(seed):
    x, valid, order, offsets = random_segments(seed)
    for ddof in (0, 1):
        for a, b in zip(cpu.seg_mean_var(x, valid, order, offsets, ddof), gpu.seg_mean_var(x, valid, order, offsets, ddof)):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        for a, b in zip(cpu.seg_loo_mean_var(x, valid, order, offsets, ddof), gpu.seg_loo_mean_var(x, valid, order, offsets, ddof)):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    w = np.abs(x) + 1
    np.testing.assert_allclose(gpu.seg_weighted_mean(x, w, valid, order, offsets), cpu.seg_weighted_mean(x, w, valid, order, offsets), rtol=1e-12)
    for a, b in zip(cpu.seg_min_max(x, valid, order, offsets), gpu.seg_min_max(x, valid, order, offsets)):
        np.testing.assert_array_equal(b, a)
    for a, b in zip(cpu.seg_top2(x, valid, order, offsets), gpu.seg_top2(x, valid, order, offsets)):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(gpu.seg_median(x, valid, order, offsets), cpu.seg_median(x, valid, order, offsets))
    np.testing.assert_array_equal(gpu.seg_rank(x, valid, order, offsets), cpu.seg_rank(x, valid, order, offsets))
    np.testing.assert_allclose(gpu.seg_normal_scores(x, valid, order, offsets), cpu.seg_normal_scores(x, valid, order, offsets), rtol=1e-12, atol=1e-13)


def test_ndtri():
    p = np.linspace(1e-9, 1 - 1e-9, 101)
    np.testing.assert_allclose(gpu.ndtri(p), cpu.ndtri(p), rtol=1e-13, atol=1e-13)


SPECS = ["grpo", "grpo:leave_one_out=true,eps_mode=skip_zero", "rloo:normalize=true", "opo", "passk:normalize=false",
         "mc_grpo:scale=mad", "g2rpo", "ngrpo", "gdpo", "dvao", "gd2po", "gpg", "dr_grpo"]


@pytest.mark.parametrize("seed", range(3))
def test_estimators_on_cuda_equal_cpu(seed):
    rng = np.random.default_rng(100 + seed)
    n = 48
    r = np.where(rng.random((n, 2)) < 0.1, np.nan, rng.choice([0.0, 1.0, 0.5, 2.0], size=(n, 2)))
    group = np.repeat(np.arange(12), 4)
    rng.shuffle(group)
    ro = Rollouts.from_arrays(r, group, length=rng.integers(1, 20, n))
    specs = [s for s in SPECS if not s.startswith("passk")] + (["passk:normalize=false"])
    want = compute_advantages(ro, specs, device=kernels.device("cpu"))
    gpu_device = kernels.device("cuda")
    assert gpu_device.name == "cuda"
    got = compute_advantages(ro, specs, device=gpu_device)
    for spec in specs:
        np.testing.assert_allclose(got[spec], want[spec], rtol=1e-9, atol=1e-9, err_msg=spec)


# Under the simulator a kernel runs as Python threads, so the ragged table stays small
# there; on a GPU it is large enough for many blocks and for groups on both sides of
# the kernels' size limits (256 for the leave-one-out shortcut, the CPU's insertion sort).
SIMULATED = bool(getattr(__import__("numba").config, "ENABLE_CUDASIM", 0))
RAGGED_ROWS = 1_500 if SIMULATED else 300_000


def ragged_table(seed: int, rows: int, holes: bool = True):
    """Shuffled groups of 1-600 rows (2-600 without holes), three objectives, 5% NaN
    rewards when ``holes``."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1 if holes else 3, 2, 4, 7, 16, 33, 300, 600], size=rows // 8, p=[.05, .1, .2, .2, .3, .1, .03, .02])
    sizes = sizes[np.cumsum(sizes) <= rows]
    group = np.repeat(np.arange(sizes.size), sizes)
    rng.shuffle(group)
    n = group.size
    r = np.where(rng.random((n, 3)) < 0.5, rng.choice([0.0, 1.0, 0.25], size=(n, 3)), rng.normal(size=(n, 3)))
    if holes:
        r[rng.random((n, 3)) < 0.05] = np.nan
    return Rollouts.from_arrays(r, group, weights=[1.0, 0.5, 2.0], length=rng.integers(1, 900, n),
                                baseline=rng.random(n))


def test_primitives_on_ragged_groups():
    ro = ragged_table(7, RAGGED_ROWS)
    x = ro.rewards[:, 0]
    valid = ~np.isnan(x)
    args = (x, valid, ro.order, ro.offsets)
    for name in ("seg_mean_var", "seg_loo_mean_var", "seg_median_mean_var"):
        for a, b in zip(getattr(cpu, name)(*args), getattr(gpu, name)(*args)):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=name)
    for name in ("seg_min_max", "seg_top2"):
        for a, b in zip(getattr(cpu, name)(*args), getattr(gpu, name)(*args)):
            np.testing.assert_array_equal(b, a, err_msg=name)
    for name in ("seg_median", "seg_rank"):
        np.testing.assert_array_equal(getattr(gpu, name)(*args), getattr(cpu, name)(*args), err_msg=name)
    np.testing.assert_allclose(gpu.seg_normal_scores(*args), cpu.seg_normal_scores(*args), rtol=1e-12, atol=1e-13)


def test_every_estimator_on_ragged_groups():
    from mocli.estimators import ESTIMATORS

    for holes in (True, False):  # pass@k needs two scorable rows in every group
        ro = ragged_table(8, RAGGED_ROWS, holes)
        specs = [s for s in ESTIMATORS.names() if not (holes and s == "passk")]
        want = compute_advantages(ro, specs, device=kernels.CPU)
        got = compute_advantages(ro, specs, device=kernels.device("cuda"))
        for spec in specs:
            assert np.isfinite(want[spec]).any(), spec
            np.testing.assert_allclose(got[spec], want[spec], rtol=1e-9, atol=1e-9, err_msg=spec)


def _numbers_close(got, want, where="report"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            _numbers_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _numbers_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, (int, float)), where
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=where)
    else:
        assert got == want, where


def test_cli_on_cuda_equals_cpu(tmp_path, capfd):
    """``analyze`` and ``advantages`` with ``--device cuda`` against ``--device cpu`` on the
    bundled sample data, through the command line."""
    import json
    import polars as pl
    from pathlib import Path
    from mocli.cli import main

    data = Path(__file__).resolve().parents[1] / "sample_data" / "math.parquet"
    ests = ["-e", "grpo", "-e", "gdpo", "-e", "mc_grpo", "-e", "g2rpo", "-e", "rloo"]
    reports = {}
    for dev in ("cpu", "cuda"):
        capfd.readouterr()
        assert main(["analyze", str(data), *ests, "--device", dev, "--format", "json"]) == 0
        reports[dev] = json.loads(capfd.readouterr().out)
        assert main(["advantages", str(data), *ests, "--device", dev, "-o", str(tmp_path / f"{dev}.parquet")]) == 0
    _numbers_close(reports["cuda"], reports["cpu"])
    cpu_adv, gpu_adv = (pl.read_parquet(tmp_path / f"{d}.parquet") for d in ("cpu", "cuda"))
    assert cpu_adv.columns == gpu_adv.columns
    for col in cpu_adv.columns:
        if cpu_adv[col].dtype.is_float():
            np.testing.assert_allclose(gpu_adv[col].to_numpy(), cpu_adv[col].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col)
        else:
            assert gpu_adv[col].equals(cpu_adv[col]), col


def test_auto_picks_cuda_when_a_device_is_there():
    assert kernels.device("auto").name == "cuda" and kernels.device("cuda") is kernels.device("auto")


def test_estimator_steps_on_ragged_groups():
    """Each one-pass step (fused.STEPS) on the GPU against its CPU kernel, on rows in
    group order as the estimators call them; the per-row steps also placing rows back."""
    from mocli.kernels import fused

    ro = ragged_table(9, RAGGED_ROWS)
    order = ro.order
    offsets = ro.offsets
    x = ro.rewards[:, 1]
    valid = ~np.isnan(x)
    rows = np.ascontiguousarray(ro.rewards[order])
    scorable = np.random.default_rng(3).random(order.size) < 0.9
    cols = np.array([0, 2])
    w = np.array([1.5, -0.5])
    g = offsets.size - 1
    rng = np.random.default_rng(4)
    shift, mul, den = rng.normal(size=g), rng.normal(size=g), rng.random(g) + 0.5
    live = rng.random(g) < 0.8
    for dest in (None, np.ascontiguousarray(order[::-1])):
        for mode in range(3):
            for scaled in (True, False):
                np.testing.assert_allclose(
                    gpu.seg_group_z(x, valid, order, offsets, 1, 1e-6, mode, mode == 1, dest, scaled),
                    fused.seg_group_z(x, valid, order, offsets, 1, 1e-6, mode, mode == 1, dest, scaled),
                    rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gpu.seg_expand(x, valid, order, offsets, shift, mul, den, live, dest),
                                   fused.seg_expand(x, valid, order, offsets, shift, mul, den, live, dest), rtol=1e-12, atol=1e-12)
    # objectives one by one; six objectives whose weighted ones form a run of four side by
    # side (a quad) after an unweighted column, and one more; exactly one quad (gd2po
    # decides its rows in the quad's own loop then)
    wide = np.hstack([rows, rows[:, ::-1] * 0.5 + 0.125])
    for m, cols, w in ((rows, cols, w), (wide, np.array([1, 2, 3, 4, 5]), np.array([1.0, -0.5, 2.0, 0.7, 1.5])),
                       (wide, np.array([2, 3, 4, 5]), np.array([1.0, -0.5, 2.0, 0.7]))):
        for raw in (False, True):
            np.testing.assert_allclose(gpu.seg_objective_sum(m, cols, w, scorable, offsets, 1, 1e-4, 0, raw),
                                       fused.seg_objective_sum(m, cols, w, scorable, offsets, 1, 1e-4, 0, raw),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(gpu.seg_dvao(m, cols, w, scorable, offsets, raw),
                                       fused.seg_dvao(m, cols, w, scorable, offsets, raw), rtol=1e-12, atol=1e-12)
            for a, c in zip(gpu.seg_gd2po(m, cols, w, scorable, offsets, 0, 1e-6, 1, raw, 0.8),
                            fused.seg_gd2po(m, cols, w, scorable, offsets, 0, 1e-6, 1, raw, 0.8)):
                np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    assert set(fused.STEPS) <= set(dir(gpu))


def test_streamed_on_cuda_equals_in_memory_on_cpu(capfd):
    """Group-complete chunks through the GPU give the in-memory CPU report."""
    import json
    from pathlib import Path
    from mocli.cli import main

    data = Path(__file__).resolve().parents[1] / "sample_data" / "math.parquet"
    reports = []
    for extra in (["--device", "cpu"], ["--device", "cuda", "--memory-limit", "100KB"]):
        capfd.readouterr()
        assert main(["analyze", str(data), "-e", "grpo", "-e", "gdpo", "--format", "json", *extra]) == 0
        out, err = capfd.readouterr()
        reports.append(json.loads(out))
    assert "group-complete chunks" in err
    _numbers_close(reports[1], reports[0])
