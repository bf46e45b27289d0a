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
    with kernels.device("cpu"):
        want = compute_advantages(ro, specs)
    with kernels.device("cuda") as used:
        assert used == "cuda"
        got = compute_advantages(ro, specs)
    for spec in specs:
        np.testing.assert_allclose(got[spec], want[spec], rtol=1e-9, atol=1e-9, err_msg=spec)
