"""Loading: formats, directories, globs, concatenation, key types, detection, config."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mocli import InputError, Settings, UsageError, compute_advantages, load

FRAME = pl.DataFrame({
    "prompt": ["b", "a", "b", "c", "a", "b"],
    "correct_reward": [1.0, 0.0, 0.0, 1.0, 1.0, None],
    "format_reward": [1, 1, 0, 1, 0, 1],
    "tokens": [10, 20, 30, 40, 50, 60],
    "note": ["x"] * 6,
})


@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".ndjson", ".csv", ".json"])
def test_every_format_gives_the_same_arrays(tmp_path, ext):
    path = tmp_path / f"r{ext}"
    {".parquet": FRAME.write_parquet, ".jsonl": FRAME.write_ndjson, ".ndjson": FRAME.write_ndjson,
     ".csv": FRAME.write_csv, ".json": FRAME.write_json}[ext](path)
    loaded = load([path])
    ro = loaded.rollouts
    assert loaded.group == "prompt"
    assert ro.names == ("correct_reward", "format_reward")
    np.testing.assert_array_equal(ro.codes, [0, 1, 0, 2, 1, 0])  # first appearance order
    np.testing.assert_array_equal(ro.rewards[:, 0], [1, 0, 0, 1, 1, np.nan])
    assert ro.order.tolist() == [0, 2, 5, 1, 4, 3]


def test_parquet_reads_only_needed_columns(tmp_path):
    path = tmp_path / "r.parquet"
    FRAME.write_parquet(path)
    assert load([path]).frame.columns == ["prompt", "correct_reward", "format_reward"]
    assert load([path], all_columns=True).frame.columns == FRAME.columns


def test_directory_glob_and_several_inputs_concatenate(tmp_path):
    (tmp_path / "d").mkdir()
    FRAME.head(3).write_parquet(tmp_path / "d" / "part-0.parquet")
    FRAME.tail(3).drop("format_reward").write_ndjson(tmp_path / "d" / "part-1.jsonl")
    a = load([tmp_path / "d"], rewards=["correct_reward", "format_reward"])
    b = load([str(tmp_path / "d" / "part-*")], rewards=["correct_reward", "format_reward"])
    c = load([tmp_path / "d" / "part-0.parquet", tmp_path / "d" / "part-1.jsonl"], rewards=["correct_reward", "format_reward"])
    for x in (a, b, c):
        assert x.rollouts.n == 6
        assert np.isnan(x.rollouts.rewards[3:, 1]).all()  # missing column: NaN there
    np.testing.assert_array_equal(a.rollouts.rewards, c.rollouts.rewards)


@pytest.mark.parametrize("keys", [[3, 1, 3, 7, 1, 3], ["u3", "u1", "u3", "u7", "u1", "u3"], [0.5, 1.5, 0.5, 2.5, 1.5, 0.5]])
def test_group_keys_of_any_type(tmp_path, keys):
    path = tmp_path / "r.parquet"
    FRAME.with_columns(pl.Series("gid", keys)).write_parquet(path)
    ro = load([path], group="gid").rollouts
    np.testing.assert_array_equal(ro.codes, [0, 1, 0, 2, 1, 0])


def test_reward_weights_minimize_and_columns(tmp_path):
    path = tmp_path / "r.parquet"
    FRAME.write_parquet(path)
    loaded = load([path], rewards=["correct_reward=2", "tokens=0"], minimize=["tokens"], length="tokens")
    ro = loaded.rollouts
    assert ro.weights.tolist() == [2.0, 0.0]
    assert ro.minimize.tolist() == [False, True]
    assert ro.length.tolist() == [10, 20, 30, 40, 50, 60]


def test_detection_failure_lists_numeric_columns(tmp_path):
    path = tmp_path / "r.parquet"
    FRAME.rename({"correct_reward": "c", "format_reward": "f"}).write_parquet(path)
    with pytest.raises(InputError, match="numeric columns: c, f, tokens"):
        load([path])


def test_unscorable_and_ragged_groups_compute(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [{"uid": u, "r_reward": r} for u, r in [(1, 1.0), (2, None), (1, 0.0), (3, 5.0), (2, 1.0), (1, 1.0)]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ro = load([path]).rollouts
    adv = compute_advantages(ro, ["grpo:eps=0"])["grpo:eps=0"]
    # group 1: 1,0,1 -> mean 2/3, std 0.57735; group 2 has one scorable row; group 3 singleton
    np.testing.assert_allclose(adv, [0.57735027, 0.0, -1.15470054, 0.0, 0.0, 0.57735027], rtol=1e-7)


def test_config_file_and_pyproject(tmp_path, monkeypatch):
    FRAME.write_parquet(tmp_path / "r.parquet")
    cfg = tmp_path / "mocli.toml"
    cfg.write_text('group = "prompt"\nrewards = {correct_reward = 1.0, format_reward = 0.5}\nestimators = ["grpo", "rloo"]\nprofile = "trl"\n')
    s = Settings.merge(str(cfg))
    assert s.rewards == ["correct_reward=1.0", "format_reward=0.5"] and s.estimators == ["grpo", "rloo"] and s.profile == "trl"
    assert Settings.merge(str(cfg), profile="verl").profile == "verl"  # command line wins
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.mocli]\nscheme = "min"\n')
    assert Settings.merge(None).scheme == "min"
    (tmp_path / "bad.toml").write_text('estimator = ["grpo"]\n')
    with pytest.raises(UsageError, match="did you mean 'estimators'"):
        Settings.merge(str(tmp_path / "bad.toml"))
