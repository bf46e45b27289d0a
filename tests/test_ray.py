"""``--engine ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``): the report equals
the local engine's, for every estimator and metric, batch-wide statistics merged across
partitions included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
# every estimator with a batch-wide step, and plain ones beside them
ESTIMATORS = ["grpo", "gdpo", "rloo:normalize=true", "reinforce_pp", "grpo:scale=batch", "gpg", "dr_grpo"]


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


def close(a, b, path=""):
    """The same document: the same keys and values, numbers to 1e-12 (the order of sums)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def both(run_cli, command, *args):
    code, local, err = run_cli(command, *args, "--format", "json")
    assert code in (0, 1), err
    code2, distributed, err2 = run_cli(command, *args, "--format", "json", "--engine", "ray")
    assert code2 == code, err2
    assert "worked through on Ray" in err2 or command == "check"
    return json.loads(local), json.loads(distributed)


def test_analyze_equals_the_local_engine(cluster, run_cli):
    args = [MATH, "--by", "step", "--length", "response_length", *sum((["-e", e] for e in ESTIMATORS), [])]
    local, distributed = both(run_cli, "analyze", *args)
    close(distributed, local)


def test_compare_and_check(cluster, run_cli):
    local, distributed = both(run_cli, "compare", MATH, "-e", "grpo", "-e", "gdpo")
    local.pop("flips")  # the flipping rows are listed only for a table held on this machine
    close(distributed, local)
    # one estimator without a batch-wide step: one pass over the partitions
    local, distributed = both(run_cli, "check", MATH, "-e", "rloo", "--fail-if", "sign_flip.correct_reward > 0.1")
    assert local == distributed and not local["passed"]


def test_a_larger_table_in_many_partitions(cluster, run_cli, tmp_path):
    rng = np.random.default_rng(3)
    n = 120_000
    keys = rng.permutation(np.repeat(np.arange(n // 12), 12))  # groups scattered over the files
    frame = pl.DataFrame({
        "prompt_id": keys, "step": keys % 5,
        "correct_reward": (rng.random(n) < 0.4).astype(float),
        "format_reward": np.where(rng.random(n) < 0.05, np.nan, (rng.random(n) < 0.8).astype(float)),
        "length_reward": -rng.random(n).round(2),
    })
    folder = tmp_path / "t"
    for step in range(5):  # a hive folder, Parquet and JSON lines side by side
        part = frame.filter(pl.col("step") == step).drop("step")
        (folder / f"step={step}").mkdir(parents=True)
        if step % 2:
            part.write_ndjson(folder / f"step={step}" / "rows.jsonl")
        else:
            part.write_parquet(folder / f"step={step}" / "rows.parquet")
    from mocli.engine import ray_engine

    original = ray_engine.partitions_for
    ray_engine.partitions_for = lambda rows: 7  # more partitions than CPUs: merges of many tallies
    try:
        local, distributed = both(run_cli, "analyze", folder, "--steps", "1:4", "-e", "gdpo", "-e", "rloo:normalize=true",
                                  "-e", "reinforce_pp")
        close(distributed, local)
        # training batches: every step's statistics its own, each batch whole in one partition
        local, distributed = both(run_cli, "analyze", folder, "--batch-by", "step", "-e", "gdpo", "-e", "grpo:scale=batch")
        close(distributed, local)
    finally:
        ray_engine.partitions_for = original


@pytest.mark.parametrize("args, needle", [
    (["--engine", "spark"], "--engine must be local or ray"),
    (["--engine", "ray", "--from", "trl"], "--engine ray reads plain tables"),
])
def test_bad_engine_usage_exits_2(cluster, run_cli, args, needle):
    code, out, err = run_cli("analyze", MATH, *args)
    assert code == 2 and out == "" and err.startswith("error: ") and needle in err, err


def test_advantages_as_partitioned_parquet(cluster, run_cli, tmp_path):
    out = tmp_path / "adv"
    out.mkdir()
    (out / "old.parquet").write_bytes(b"previous run")  # a folder from before is replaced whole
    code, _, err = run_cli("advantages", MATH, "-e", "grpo", "-e", "gdpo", "--engine", "ray", "-o", out)
    assert code == 0, err
    assert "wrote 1430 rows" in err and not (out / "old.parquet").exists()
    code, _, err = run_cli("advantages", MATH, "-e", "grpo", "-e", "gdpo", "-o", tmp_path / "local.parquet")
    assert code == 0, err
    local = pl.read_parquet(tmp_path / "local.parquet")
    distributed = pl.read_parquet(out / "*.parquet")
    assert distributed.columns == local.columns and distributed.height == local.height
    key = ["prompt_id", "completion"]
    both_ = local.join(distributed, on=key, suffix="_ray")
    assert both_.height == local.height
    for label in ("adv:grpo", "adv:gdpo"):
        assert (both_[label] - both_[f"{label}_ray"]).abs().max() < 1e-12
    code, _, err = run_cli("advantages", MATH, "--engine", "ray", "-o", tmp_path / "x.parquet")
    assert code == 2 and "writes a folder of Parquet files" in err
