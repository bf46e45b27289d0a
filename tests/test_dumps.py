"""Framework dumps (--from), hive partitions, many files, --steps, and mocli verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import mocli
from mocli import InputError, UsageError, load

FIXTURES = Path(__file__).parent / "fixtures"  # written by the frameworks' own code (make_*.py beside them)
TRL = FIXTURES / "trl"
VERL = FIXTURES / "verl"
NEMO = FIXTURES / "nemo_rl"


def test_trl_groups_are_runs_of_the_same_prompt_per_file_and_step():
    loaded = load([TRL / "default"], source="trl")
    ro = loaded.rollouts
    assert ro.names == ("correctness_reward", "format_reward", "length_penalty")
    assert ro.n_groups == 6 and set(np.diff(ro.offsets).tolist()) == {4}
    assert loaded.logged == "advantage" and loaded.batch == "step" and len(ro.batches()) == 3
    assert load([TRL / "default"], source="auto").rollouts.n_groups == 6
    assert [p.name for p in loaded.files] == ["completions_00001.parquet", "completions_00002.parquet", "completions_00003.parquet"]


@pytest.mark.parametrize("name", ["default", "gdpo_weighted", "batch_chat"])
def test_trl_fixtures_verify_with_their_settings(run_cli, name):
    cfg = json.loads((TRL / name / "trl_config.json").read_text())
    flags = []
    if cfg["multi_objective_aggregation"] == "normalize_then_sum":
        flags += ["-e", "gdpo"]
    elif cfg["scale_rewards"] != "group":
        flags += ["-e", f"grpo:scale={cfg['scale_rewards']}"]
    for reward, w in zip(("correctness_reward", "format_reward", "length_penalty"), cfg["reward_weights"] or []):
        flags += ["-r", f"{reward}={w}"]
    code, out, err = run_cli("verify", TRL / name, "--from", "trl", *flags, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["max_abs_diff"] < 1e-5, (doc["max_abs_diff"], err)
    if flags:  # without them, verify names what the log matches
        code, out, _ = run_cli("verify", TRL / name, "--from", "trl", "--format", "json")
        doc = json.loads(out)
        assert code == 1 and doc["hints"][0]["reproduces_log"], doc["hints"]


def test_verl_legacy_reads_components_and_the_trained_score(tmp_path):
    loaded = load([VERL / "legacy"], source="verl", length="response_length")
    ro = loaded.rollouts
    assert ro.names == ("acc", "format_reward", "length_penalty") and ro.weights.tolist() == [1.0, 0.5, 0.2]
    assert ro.n_groups == 16 and set(np.diff(ro.offsets).tolist()) == {4}
    assert np.allclose(ro.scalar, loaded.frame["score"].to_numpy())
    assert not np.all(np.diff(ro.codes) >= 0)  # the writer's rows are not in group order


def test_verl_fixture_advantages_equal_verls(run_cli, tmp_path):
    truth = pl.read_ndjson(VERL / "truth.jsonl")
    specs = {"adv_grpo": "grpo", "adv_grpo_nostd": "grpo:scale=none", "adv_rloo": "rloo",
             "adv_reinforce_plus_plus_baseline": "reinforce_pp_baseline", "adv_gdpo": "gdpo"}
    out = tmp_path / "adv.parquet"
    args = [a for spec in specs.values() for a in ("-e", spec)]
    code, _, err = run_cli("advantages", VERL / "legacy", "--from", "verl", "--length", "response_length", *args, "-o", out)
    assert code == 0, err
    joined = pl.read_parquet(out).join(truth, on=["step", "input", "output"], how="inner")
    assert joined.height == truth.height == 64
    for column, spec in specs.items():
        assert np.abs(joined[f"adv:{spec}"].to_numpy() - joined[column].to_numpy()).max() < 1e-5, column


def test_verl_without_uid_groups_by_input_within_step(tmp_path):
    d = tmp_path / "rollouts"
    d.mkdir()
    for step in (1, 2):
        lines = [json.dumps({"input": f"q{i % 2}", "output": "o", "gts": "g", "score": float(i % 3)}) for i in range(6)]
        (d / f"{step}.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load([d], source="verl")
    assert loaded.rollouts.names == ("score",)
    assert loaded.rollouts.n_groups == 4  # two inputs x two steps
    assert sorted(set(loaded.frame["step"].to_list())) == [1, 2]  # step from the file name


def test_nemo_rl_reads_the_logged_rows(run_cli, tmp_path):
    loaded = load([NEMO], source="auto", all_columns=True)
    truth = pl.read_ndjson(FIXTURES / "nemo_rl_truth.jsonl")
    assert loaded.rollouts.names == ("rewards",) and loaded.rollouts.n_groups == 12
    assert loaded.frame["prompt"].to_list() == truth["prompt"].to_list()
    assert loaded.frame["response"].to_list() == truth["response"].to_list()
    assert np.abs(loaded.frame["advantage"].to_numpy() - truth["adv_nemo"].to_numpy()).max() < 1e-6
    out = tmp_path / "adv.csv"
    code, _, err = run_cli("advantages", NEMO, "--from", "nemo_rl", "-o", out)
    assert code == 0, err
    assert np.abs(pl.read_csv(out)["adv:grpo"].to_numpy() - truth["adv_nemo"].to_numpy()).max() < 1e-5


def test_auto_detection_failure_is_clear(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n')
    with pytest.raises(InputError, match="--from trl\\|verl\\|nemo_rl"):
        load([f], source="auto")
    with pytest.raises(UsageError, match="did you mean 'verl'"):
        load([f], source="verll")


def test_verify_passes_faithful_dumps_and_names_the_cause():
    assert mocli.verify([TRL / "default"], source="trl").passed
    assert mocli.verify([NEMO], source="nemo_rl").passed  # --from nemo_rl implies its profile
    v = mocli.verify([NEMO], source="nemo_rl", profile="mocli")
    assert not v.passed and "--profile nemo_rl" in v.hints[0]["likely_cause"]


def test_verify_catches_skipped_std_scaling(tmp_path):
    """A TRL dump whose advantages were only centred (TRL 0.22.0-0.22.1's default)."""
    out = tmp_path / "completions"
    out.mkdir()
    for f in sorted((TRL / "default" / "completions").glob("*.parquet")):
        df = pl.read_parquet(f)
        s = pl.sum_horizontal("correctness_reward", "format_reward", "length_penalty")
        run = (pl.col("prompt") != pl.col("prompt").shift(1)).fill_null(True).cum_sum()
        df = df.with_columns((s - s.mean().over(run)).alias("advantage"))
        df.write_parquet(out / f.name)
    v = mocli.verify([tmp_path], source="trl")
    assert not v.passed
    assert "no std scaling" in v.hints[0]["likely_cause"] and v.hints[0]["reproduces_log"]


def test_verify_cli_on_real_run(run_cli, real_data):
    path = real_data / "grpo-math-r1zero" / "no_baseline.jsonl"
    code, out, _ = run_cli("verify", path, "-g", "group_id", "-r", "reward", "--logged", "advantage")
    assert code == 0 and "agree" in out
    code, out, _ = run_cli("verify", path, "-g", "group_id", "-r", "reward", "--logged", "advantage", "--profile", "trl", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and not doc["passed"]
    assert doc["hints"][0]["likely_cause"].startswith("another eps") and doc["hints"][0]["change"]["eps"] == 1e-6


def test_verify_usage_errors(run_cli):
    code, _, err = run_cli("verify", VERL / "legacy", "--from", "verl")
    assert code == 2 and "--logged" in err
    code, _, err = run_cli("verify", TRL / "default", "--from", "trl", "-e", "grpo", "-e", "rloo")
    assert code == 2 and "one estimator" in err


def test_hive_partitions_many_files_and_differing_schemas(tmp_path):
    root = tmp_path / "dump"
    rng = np.random.default_rng(0)
    for step in range(200):
        d = root / f"step={step}"
        d.mkdir(parents=True)
        cols = {"prompt_id": np.repeat(np.arange(3), 4) + 100 * step, "correct_reward": rng.integers(0, 2, 12).astype(float)}
        if step % 2 == 0:  # a reward column missing from some steps
            cols["format_reward"] = rng.integers(0, 2, 12).astype(float)
        pl.DataFrame(cols).write_parquet(d / "part-0.parquet")
    loaded = load([root], rewards=["correct_reward", "format_reward"], steps="10:19")
    ro = loaded.rollouts
    assert ro.n == 10 * 12 and ro.n_groups == 30
    assert sorted(set(loaded.frame["step"].to_list())) == list(range(10, 20))
    assert np.isnan(ro.rewards[loaded.frame["step"].to_numpy() % 2 == 1, 1]).all()
    rep = mocli.analyze([root], rewards=["correct_reward", "format_reward"], by="step").report
    assert len(rep.by) == 200 and rep.input["rows"] == 2400


def test_steps_option_errors(run_cli, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("g,r\n1,1\n1,0\n")
    code, _, err = run_cli("analyze", f, "-g", "g", "-r", "r", "--steps", "1:2")
    assert code == 2 and "--step COL" in err
    code, _, err = run_cli("analyze", TRL / "default", "--from", "trl", "--steps", "20:x")
    assert code == 2 and "--steps" in err
    code, _, err = run_cli("analyze", TRL / "default", "--from", "trl", "--steps", "50:60")
    assert code == 2 and "no rows" in err


def test_long_work_reports_progress(tmp_path):
    for i in range(5):
        pl.DataFrame({"g": [i, i], "r_reward": [0.0, 1.0], "step": [i, i]}).write_parquet(tmp_path / f"part-{i}.parquet")
    seen = []
    mocli.analyze([tmp_path], group="g", by="step", progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert ("reading", 5, 5) in seen and ("slices by step", 5, 5) in seen
    assert [d for s, d, t in seen if s == "reading"] == [0, 1, 2, 3, 4, 5]


def test_reports_on_dumps_by_step(run_cli):
    code, out, err = run_cli("compare", TRL / "default", "--from", "trl", "-e", "grpo", "-e", "gdpo", "--by", "step", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["by"]) == ["1", "2", "3"] and doc["input"]["groups"] == 6
    assert doc["by"]["2"]["input"]["groups"] == 2 and doc["estimators"]["gdpo"]["params"]["batch"] == "step"
    code, _, err = run_cli("analyze", VERL / "legacy", "--from", "verl", "--by", "nope")
    assert code == 2 and "'nope'" in err


def test_inspect_describes_each_file_of_a_folder_of_different_layouts(run_cli):
    samples = Path(__file__).resolve().parents[1] / "sample_data"
    code, out, err = run_cli("inspect", samples, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and "do not share one layout" in err
    by_file = {Path(d["files"][0]).name: d for d in doc["layouts"]}
    assert set(by_file) == {"gdpo_toy.csv", "math.parquet", "safety.parquet", "tool_calling.parquet"}
    assert "no group column found" in by_file["gdpo_toy.csv"]["error"]
    assert by_file["math.parquet"]["groups"] == 160 and by_file["math.parquet"]["batch"] == "whole table"
    code, out, _ = run_cli("inspect", samples)
    assert code == 0 and "sample_data/safety.parquet: 720 rows" in out.replace("\\", "/")


def test_trl_log_extra_columns_that_are_not_floats_are_carried(tmp_path):
    """Columns a reward function adds with log_extra sit between the rewards and
    advantage: integer and text ones are not objectives."""
    out = tmp_path / "completions"
    out.mkdir()
    for f in sorted((TRL / "default" / "completions").glob("*.parquet")):
        df = pl.read_parquet(f)
        extra = [pl.col("completion").str.len_chars().alias("n_chars"), pl.lit("ok").alias("judge_note")]
        cols = df.columns
        df = df.with_columns(extra).select(cols[:-1] + ["n_chars", "judge_note", "advantage"])
        df.write_parquet(out / f.name)
    loaded = load([tmp_path], source="trl")
    assert loaded.rollouts.names == ("correctness_reward", "format_reward", "length_penalty")
    assert mocli.verify([tmp_path], source="trl").passed
