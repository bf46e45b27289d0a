"""Training batches (--batch-by, a dump's step): batch-wide statistics are each batch's
own, exactly as separate runs on each batch would give, in memory, streamed and through
the Torch API."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import mocli

from .test_stream import rollout_table

BATCH_WIDE = [
    "gdpo", "grpo:scale=batch", "reinforce_pp", "reinforce_pp_baseline:token_weighted=true", "rloo:normalize=true",
    "gpg", "gd2po", "grpo",
]


def _table(tmp_path, rows=3000, seed=0):
    path = tmp_path / "r.parquet"
    table = rollout_table(rows, seed=seed)
    # the same prompt ids recur at every step: under --batch-by they are other groups
    table = table.with_columns((pl.col("prompt_id") % 97).alias("prompt_id"))
    table.write_parquet(path)
    return path, table


@pytest.mark.parametrize("scheme", ["weighted_sum", "chebyshev"])
def test_batch_by_equals_a_separate_run_on_each_batch(tmp_path, run_cli, scheme):
    path, table = _table(tmp_path)
    out = tmp_path / "adv.parquet"
    flags = [a for e in BATCH_WIDE for a in ("-e", e)] + ["--length", "response_length", "--scheme", scheme]
    code, _, err = run_cli("advantages", path, "--batch-by", "step", *flags, "-o", out)
    assert code == 0, err
    got = pl.read_parquet(out)
    for step in sorted(table["step"].unique().to_list()):
        part = tmp_path / f"step{step}.parquet"
        table.filter(pl.col("step") == step).write_parquet(part)
        alone = tmp_path / f"alone{step}.parquet"
        code, _, err = run_cli("advantages", part, *flags, "-o", alone)
        assert code == 0, err
        ref = pl.read_parquet(alone)
        mine = got.filter(pl.col("step") == step)
        for e in BATCH_WIDE:
            np.testing.assert_allclose(mine[f"adv:{e}"].to_numpy(), ref[f"adv:{e}"].to_numpy(), rtol=1e-12, atol=1e-12)
    # the whole table as one batch differs where a statistic is batch-wide
    code, _, _ = run_cli("advantages", path, *flags, "-o", out)
    whole = pl.read_parquet(out)
    assert not np.allclose(whole["adv:gdpo"].to_numpy(), got["adv:gdpo"].to_numpy())


def test_the_json_says_which_batch(tmp_path, run_cli):
    path, _ = _table(tmp_path, rows=600)
    code, out, _ = run_cli("analyze", path, "--batch-by", "step", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and {e["params"]["batch"] for e in doc["estimators"].values()} == {"step"}
    assert doc["input"]["batch_by"] == "step"
    # groups are taken within a step: prompt ids recur across steps
    grouped = pl.read_parquet(path).group_by("step", "prompt_id").len().height
    assert doc["input"]["groups"] == grouped
    code, out, _ = run_cli("analyze", path, "--format", "json")
    assert {e["params"]["batch"] for e in json.loads(out)["estimators"].values()} == {"whole table"}
    assert json.loads(out)["input"]["batch_by"] is None
    code, _, err = run_cli("analyze", path, "--batch-by", "stepp")
    assert code == 2 and "batch column 'stepp' not found" in err and "did you mean 'step'" in err


def test_streamed_batches_equal_the_in_memory_ones(tmp_path, run_cli):
    path, table = _table(tmp_path, rows=20000, seed=3)
    args = ["-e", "gdpo", "-e", "grpo:scale=batch", "-e", "rloo:normalize=true", "--batch-by", "step"]
    whole, streamed = tmp_path / "w.parquet", tmp_path / "s.parquet"
    code, _, err = run_cli("advantages", path, *args, "-o", whole, "--memory-limit", "100GB")
    assert code == 0 and "streamed in" not in err
    code, _, err = run_cli("advantages", path, *args, "-o", streamed, "--memory-limit", str(table.height * 8))
    assert code == 0 and "streamed in" in err, err
    a, b = pl.read_parquet(whole), pl.read_parquet(streamed)
    for col in ("adv:gdpo", "adv:grpo:scale=batch", "adv:rloo:normalize=true"):
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-9, atol=1e-12)
    code, mem, _ = run_cli("analyze", path, *args, "--format", "json", "--memory-limit", "100GB")
    code, out, err = run_cli("analyze", path, *args, "--format", "json", "--memory-limit", str(table.height * 8))
    assert code == 0 and "streamed in" in err
    m, s = json.loads(mem), json.loads(out)
    for label in m["estimators"]:
        assert m["estimators"][label]["advantage"]["std"] == pytest.approx(s["estimators"][label]["advantage"]["std"], rel=1e-9)
        assert m["estimators"][label]["sign_flip"] == pytest.approx(s["estimators"][label]["sign_flip"])


def test_torch_batch_index_equals_batch_by(tmp_path, run_cli):
    torch = pytest.importorskip("torch")
    import mocli.torch as mt

    path, table = _table(tmp_path, rows=900)
    out = tmp_path / "adv.parquet"
    code, _, err = run_cli("advantages", path, "-g", "prompt_id", "-r", "correct_reward", "-r", "format_reward",
                           "--batch-by", "step", "-e", "gdpo", "-o", out)
    assert code == 0, err
    rewards = torch.tensor(table.select("correct_reward", "format_reward").to_numpy())
    adv = mt.advantages(rewards, table["prompt_id"].to_numpy(), "gdpo", batch_index=table["step"].to_numpy(), dtype=torch.float64)
    np.testing.assert_allclose(adv.numpy(), pl.read_parquet(out)["adv:gdpo"].to_numpy(), rtol=1e-12, atol=1e-12)


def test_from_arrays_takes_groups_within_batches():
    ro = mocli.Rollouts.from_arrays([[1.0], [0.0], [1.0], [0.0]], ["a", "a", "a", "a"], batch=[1, 1, 2, 2])
    assert ro.n_groups == 2 and len(ro.batches()) == 2
