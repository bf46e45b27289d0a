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


@pytest.mark.parametrize("kind", ["int", "str", "struct"])
def test_the_group_layout_is_the_stable_counting_sort_of_the_codes(kind):
    """The layout read off Polars' grouping (each group's row numbers as Polars lists them)
    is the stable counting sort of the codes: rows of a group in file order, groups in
    order of first appearance. Large enough for Polars to group on several threads."""
    from mocli.io.files import grouping
    from mocli.kernels.cpu import csr_from_codes

    rng = np.random.default_rng(7)
    n = 600_000
    keys = rng.integers(0, 40_000, n)
    series = {
        "int": pl.Series("g", keys),
        "str": pl.Series("g", keys.astype(str)),
        "struct": pl.DataFrame({"b": keys % 3, "g": keys // 3}).select(pl.struct("b", "g")).to_series(),
    }[kind]
    codes, n_groups, order, offsets = grouping(series)
    first = np.unique(keys, return_index=True)[1]
    assert n_groups == first.shape[0]
    want_order, want_offsets = csr_from_codes(codes, n_groups)
    assert np.array_equal(order, want_order) and np.array_equal(offsets, want_offsets)
    assert (codes[np.sort(first)] == np.arange(n_groups)).all()  # numbered by first appearance


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


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    """Prompts answered by two agents: the group is the (prompt, agent) pair."""
    rng = np.random.default_rng(1)
    n = 400
    prompt = rng.integers(0, 20, n)
    agent = rng.choice(["planner", "solver"], n)
    df = pl.DataFrame({"prompt": prompt, "agent": agent, "correct_reward": rng.integers(0, 2, n).astype(float),
                       "format_reward": rng.random(n), "response_length": rng.integers(5, 500, n)})
    df = df.with_columns((pl.col("prompt").cast(pl.String) + "|" + pl.col("agent")).alias("pair"))
    path = tmp_path_factory.mktemp("agents") / "agents.parquet"
    df.write_parquet(path)
    return path


def test_several_group_columns_equal_one_combined_key(run_cli, agents, tmp_path):
    """-g prompt -g agent: every estimator and diagnostic as on one column holding the
    pair, in memory and streamed; the library, the config file and mocli.torch too."""
    import json

    import mocli

    specs = ["-e", "grpo", "-e", "gdpo", "-e", "dgpo", "-e", "pref_grpo"]
    base = ["analyze", agents, *specs, "--length", "response_length", "--format", "json"]
    code, two, err = run_cli(*base, "-g", "prompt", "-g", "agent")
    assert code == 0, err
    code, one, err = run_cli(*base, "-g", "pair")
    assert code == 0, err
    a, b = json.loads(two), json.loads(one)
    assert a["input"]["groups"] == b["input"]["groups"] == 40
    for section in ("objectives", "conflict", "budget", "estimators"):
        assert a[section] == b[section], section
    code, streamed, err = run_cli(*base, "-g", "prompt", "-g", "agent", "--memory-limit", "100KB")
    assert code == 0 and "streamed in" in err
    s = json.loads(streamed)
    for label in a["estimators"]:
        for key in ("collapse", "sign_flip", "pareto"):
            assert s["estimators"][label][key] == a["estimators"][label][key], (label, key)
    # advantages
    out1, out2 = tmp_path / "two.parquet", tmp_path / "one.parquet"
    assert run_cli("advantages", agents, *specs, "--length", "response_length", "-g", "prompt", "-g", "agent", "-o", out1)[0] == 0
    assert run_cli("advantages", agents, *specs, "--length", "response_length", "-g", "pair", "-o", out2)[0] == 0
    t1, t2 = pl.read_parquet(out1), pl.read_parquet(out2)
    assert t1.columns == t2.columns and "prompt+agent" not in t1.columns
    for c in t1.columns:
        if c.startswith("adv:"):
            assert t1[c].to_list() == t2[c].to_list(), c
    # the library and the config file
    lib = mocli.analyze([agents], group=["prompt", "agent"], estimators=["grpo"]).report.to_dict()
    assert lib["estimators"]["grpo"]["collapse"] == a["estimators"]["grpo"]["collapse"]
    cfg = tmp_path / "mocli.toml"
    cfg.write_text('group = ["prompt", "agent"]\nestimators = ["grpo"]\n')
    code, out, err = run_cli("analyze", agents, "--config", cfg, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["estimators"]["grpo"]["collapse"] == a["estimators"]["grpo"]["collapse"]
    # inspect names both columns
    code, out, _ = run_cli("inspect", agents, "-g", "prompt", "-g", "agent", "--format", "json")
    doc = json.loads(out)
    assert doc["group_rule"].startswith("columns 'prompt', 'agent'") and doc["columns"]["agent"]["role"] == "group"
    # bad input
    code, _, err = run_cli("analyze", agents, "-g", "prompt", "-g", "nope")
    assert code == 2 and "'nope'" in err
    code, _, err = run_cli("analyze", agents, "-g", "prompt", "-g", "prompt")
    assert code == 2 and "twice" in err
