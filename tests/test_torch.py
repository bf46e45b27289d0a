"""mocli.torch: the in-trainer API gives the CLI's numbers (skipped without torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

import mocli.torch as mt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("spec,profile", [("grpo", "trl"), ("gdpo", "trl"), ("rloo", "mocli"), ("grpo", "nemo_rl"), ("gdpo", "verl")])
def test_equals_the_cli(run_cli, tmp_path, spec, profile):
    src = ROOT / "sample_data" / "math.parquet"
    out = tmp_path / "adv.parquet"
    args = ["advantages", src, "-e", spec, "--profile", profile, "-r", "correct_reward", "-r", "format_reward=0.5",
            "-r", "length_reward", "--length", "response_length", "-o", out]
    assert run_cli(*args)[0] == 0
    cli = pl.read_parquet(out)[f"adv:{spec}"].to_numpy()
    df = pl.read_parquet(src)
    rewards = torch.tensor(df.select("correct_reward", "format_reward", "length_reward").to_numpy(), dtype=torch.float64)
    adv = mt.advantages(rewards, df["prompt_id"].to_list(), estimator=spec, profile=profile, weights=[1.0, 0.5, 1.0],
                        length=torch.tensor(df["response_length"].to_numpy()))
    assert adv.dtype == torch.float64 and adv.shape == (df.height,)
    np.testing.assert_array_equal(adv.numpy(), cli)


def test_dtype_device_and_keys():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float32)
    idx = torch.tensor([7, 7, 7, 7, 3, 3, 3, 3])
    adv = mt.advantages(r, idx, profile="trl")
    assert adv.dtype == torch.float32 and adv.device == r.device
    np.testing.assert_allclose(adv.numpy(), [0.865875, -0.865875, -0.865875, 0.865875, 0.4999, 0.4999, 0.4999, -1.4997], atol=5e-6)
    ints = mt.advantages(torch.tensor([1, 0]), ["p", "p"])
    assert ints.dtype == torch.float32
    with pytest.raises(ValueError, match="one key per row"):
        mt.advantages(r, idx[:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device for torch")
def test_tensors_on_a_gpu_come_back_there():
    """Rewards and keys on a GPU: the advantages come back on that GPU, equal to the same
    call on CPU tensors (and in bfloat16 to the float32 result, rounded)."""
    df = pl.read_parquet(ROOT / "sample_data" / "math.parquet")
    host = torch.tensor(df.select("correct_reward", "format_reward", "length_reward").to_numpy(), dtype=torch.float32)
    keys = torch.tensor(df["prompt_id"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64))
    want = mt.advantages(host, keys, estimator="gdpo", profile="trl", weights=[1.0, 0.5, 1.0])
    got = mt.advantages(host.cuda(), keys.cuda(), estimator="gdpo", profile="trl", weights=[1.0, 0.5, 1.0])
    assert got.is_cuda and got.dtype == torch.float32
    np.testing.assert_array_equal(got.cpu().numpy(), want.numpy())
    half = mt.advantages(host.cuda().bfloat16(), keys.cuda(), estimator="gdpo", profile="trl", weights=[1.0, 0.5, 1.0])
    assert half.is_cuda and half.dtype == torch.bfloat16


def test_importing_mocli_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, mocli; mocli.analyze; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_tuple_group_keys_equal_one_combined_key():
    """group_index of shape (n, 2): the (prompt, agent) pair is the group."""
    rng = np.random.default_rng(3)
    n = 60
    prompt, agent = rng.integers(0, 5, n), rng.integers(0, 2, n)
    rewards = torch.tensor(rng.random((n, 2)))
    pairs = torch.tensor(np.stack([prompt, agent], axis=1))
    for est in ("grpo", "gdpo", "dgpo"):
        two = mt.advantages(rewards, pairs, estimator=est)
        one = mt.advantages(rewards, torch.tensor(prompt * 10 + agent), estimator=est)
        assert torch.equal(two, one), est
