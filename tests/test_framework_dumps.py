"""mocli against dumps written by the frameworks' own code (../shared/data/dumps: TRL 1.16,
verl 0.9.1, NeMo-RL), compared with the advantages each framework computed. Every folder
found there is checked; the module skips when the folder is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import mocli

DUMPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dumps"
TRL = DUMPS / "trl-1.16.0"
VERL = DUMPS / "verl-0.9.1"
NEMO = DUMPS / "nemo-rl"

pytestmark = pytest.mark.skipif(not DUMPS.is_dir(), reason="../shared/data/dumps is not present")


def _folders(root: Path, skip: tuple[str, ...] = ()) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in skip) if root.is_dir() else []


def trl_flags(folder: Path) -> list[str]:
    """The flags a folder's trl_config.json implies, and nothing else."""
    cfg = json.loads((folder / "trl_config.json").read_text())
    flags: list[str] = []
    if cfg.get("multi_objective_aggregation") == "normalize_then_sum":
        flags += ["-e", "gdpo"]
    elif cfg.get("scale_rewards") in ("batch", "none", False):
        flags += ["-e", f"grpo:scale={cfg['scale_rewards'] or 'none'}"]
    if cfg.get("reward_weights"):
        names = pl.read_parquet(next((folder / "completions").glob("*.parquet"))).columns
        rewards = names[names.index("completion") + 1:names.index("advantage")]
        for name, w in zip(rewards, cfg["reward_weights"]):
            flags += ["-r", f"{name}={w}"]
    return flags


@pytest.mark.parametrize("name", _folders(TRL))
def test_trl_verify_passes_with_the_configs_flags(run_cli, name):
    folder = TRL / name
    code, out, err = run_cli("verify", folder, "--from", "trl", *trl_flags(folder), "--format", "json")
    doc = json.loads(out)
    assert code == 0, (doc["max_abs_diff"], doc["hints"], err)
    assert doc["profile"] == "trl" and doc["params"]["batch"] == "step"
    assert doc["rows"] == (32 if name == "spg2" else 64) and doc["max_abs_diff"] < 1e-5


@pytest.mark.parametrize("name", _folders(TRL))
def test_trl_reports_run_on_every_folder(run_cli, name):
    folder = TRL / name
    for args in (["inspect"], ["analyze"], ["analyze", "--by", "step", "--format", "json"]):
        code, out, err = run_cli(*args[:1], folder, "--from", "trl", *args[1:])
        assert code == 0, (args, err)
        assert "__mocli" not in out and "internal error" not in err
    doc = json.loads(out)
    repeated = name == "spg2"  # files 2 and 4 repeat files 1 and 3
    assert doc["input"]["rows"] == (32 if repeated else 64) and doc["input"]["groups"] == (8 if repeated else 16)
    assert list(doc["by"]) == (["1", "3"] if repeated else ["1", "2", "3", "4"])
    assert all(e["params"]["batch"] == "step" for e in doc["estimators"].values())


def test_trl_verify_names_the_setting_that_was_used(run_cli):
    """No flags: verify fails and names what reproduces the log."""
    expected = {
        "gdpo": "-e gdpo", "unscorable_gdpo": "-e gdpo", "batch": "batch std",
        "none": "no std scaling", "weighted": "-r correctness_reward=1 -r format_reward=0.5 -r length_penalty=2",
    }
    for name, phrase in expected.items():
        code, out, _ = run_cli("verify", TRL / name, "--from", "trl", "--format", "json")
        doc = json.loads(out)
        assert code == 1 and doc["hints"] and doc["hints"][0]["reproduces_log"], name
        assert phrase in doc["hints"][0]["likely_cause"], (name, doc["hints"])


def test_trl_batch_statistics_are_per_generation_batch():
    """scale_rewards="batch" over four files: each file's std, not the whole dump's."""
    loaded = mocli.load([TRL / "batch"], source="trl")
    assert loaded.batch == "step" and len(loaded.rollouts.batches()) == 4
    whole = mocli.compute_advantages(
        mocli.Rollouts.from_arrays(loaded.rollouts.rewards, loaded.rollouts.codes), ["grpo:scale=batch"], profile="trl"
    )["grpo:scale=batch"]
    per_step = mocli.compute_advantages(loaded.rollouts, ["grpo:scale=batch"], profile="trl")["grpo:scale=batch"]
    logged = loaded.frame["advantage"].to_numpy()
    assert np.abs(per_step - logged).max() < 1e-5
    assert np.abs(whole - logged).max() > 0.1  # the whole dump is a batch that never trained


def test_trl_chat_prompts_group_by_conversation():
    loaded = mocli.load([TRL / "chat"], source="trl", all_columns=True)
    assert loaded.rollouts.n_groups == 16 and set(np.diff(loaded.rollouts.offsets)) == {4}
    assert loaded.frame.schema["prompt"] != pl.String  # the conversation is kept as written


def test_trl_repeated_files_are_read_once(run_cli):
    code, out, err = run_cli("inspect", TRL / "spg2", "--from", "trl", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["rows"] == 32 and len(doc["files"]) == 4
    assert any("repeat the previous file" in w for w in doc["warnings"]) and "warning: 2 file(s) repeat" in err
    assert list(doc["group_size_by_batch"]) == ["1", "3"]


def test_trl_advantages_output_has_no_internal_columns(run_cli, tmp_path):
    out = tmp_path / "adv.parquet"
    code, _, err = run_cli("advantages", TRL / "chat", "--from", "trl", "-o", out)
    assert code == 0, err
    cols = pl.read_parquet(out).columns
    assert cols == ["step", "prompt", "completion", "correctness_reward", "format_reward", "length_penalty", "advantage", "adv:grpo"]
    assert "read 4 file(s)" in err


def test_auto_takes_globs(run_cli):
    code, out, err = run_cli("inspect", str(TRL / "default" / "completions" / "*.parquet"), "--from", "auto", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["source"] == "trl" and json.loads(out)["profile"] == "trl"


# ---------------------------------------------------------------------------------------
# verl
# ---------------------------------------------------------------------------------------
VERL_SPECS = {
    "adv_grpo": "grpo", "adv_rloo": "rloo", "adv_grpo_nostd": "grpo:scale=none", "adv_opo": "opo",
    "adv_reinforce_plus_plus_baseline": "reinforce_pp_baseline", "adv_gdpo": "gdpo",
}
TOKEN_COUNTS = ("adv_opo", "adv_reinforce_plus_plus_baseline", "adv_gdpo")  # need the response lengths


@pytest.mark.parametrize("name", _folders(VERL, skip=("truth",)))
def test_verl_advantages_equal_verls(run_cli, tmp_path, name):
    truth = pl.read_ndjson(VERL / "truth" / f"{name}.jsonl")
    has_length = "response_length" in pl.read_ndjson(next((VERL / name).glob("*.jsonl"))).columns
    columns = [c for c in truth.columns if c in VERL_SPECS and (has_length or c not in TOKEN_COUNTS)]
    out = tmp_path / "adv.parquet"
    args = ["advantages", VERL / name, "--from", "verl", "-o", out] + [a for c in columns for a in ("-e", VERL_SPECS[c])]
    if has_length:
        args += ["--length", "response_length"]
    code, _, err = run_cli(*args)
    assert code == 0, err
    got = pl.read_parquet(out)
    assert got.height == truth.height and not any(c.startswith("__") for c in got.columns)
    joined = got.join(truth, on=["step", "input", "output"], how="inner")
    assert joined.height == truth.height
    merged = np.zeros(joined.height, dtype=bool)
    if name == "v0_epochs":  # one prompt listed twice in step 1: verl kept two groups apart
        assert "warning: group sizes differ within 1 step(s): step 1 has 1 group(s) of 8" in err
        sizes = joined.group_by("step", "input").len()
        big = sizes.filter(pl.col("len") > 4)
        merged = joined.join(big, on=["step", "input"], how="left")["len"].is_not_null().to_numpy()
        assert merged.sum() == 8
    else:
        assert "warning:" not in err
    for c in columns:
        diff = np.abs(joined[f"adv:{VERL_SPECS[c]}"].to_numpy() - joined[c].to_numpy())
        assert diff[~merged].max() < 1e-5, (c, diff.max())


@pytest.mark.parametrize("name", _folders(VERL, skip=("truth",)))
def test_verl_reports_run_on_every_folder_with_the_defaults(run_cli, name):
    """`mocli analyze DUMP --from verl` and nothing else: verl's gdpo weighs rows by their
    tokens and its dumps carry no lengths, so gdpo runs over rows, says so in its label, on
    stderr and in the JSON; with --length it is verl's own gdpo, without that warning."""
    folder = VERL / name
    code, out, err = run_cli("analyze", folder, "--from", "verl", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    said = [w for w in doc["input"]["warnings"] if "ran over rows instead" in w]
    if len(doc["input"]["objectives"]) >= 2:
        assert list(doc["estimators"]) == ["grpo", "gdpo:token_weighted=false"]
        assert said and f"warning: {said[0]}" in err and "pass --length COL" in said[0]
    else:
        assert list(doc["estimators"]) == ["grpo"] and not said
    if "response_length" in pl.read_ndjson(next(folder.glob("*.jsonl"))).columns:
        code, out, err = run_cli("analyze", folder, "--from", "verl", "--length", "response_length", "--format", "json")
        doc = json.loads(out)
        assert code == 0 and list(doc["estimators"]) == ["grpo", "gdpo"]
        assert not any("ran over rows" in w for w in doc["input"]["warnings"])


def test_verl_score_is_the_trained_scalar_and_weights_are_found(run_cli):
    code, out, err = run_cli("inspect", VERL / "v0_weighted", "--from", "verl", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["trained_scalar"] == "'score' as logged"
    assert {k: v["weight"] for k, v in doc["rewards"].items()} == {"acc": 1.0, "format_reward": 0.5, "length_penalty": 0.2}
    assert "score = 1*acc + 0.5*format_reward + 0.2*length_penalty" in err
    code, out, err = run_cli("inspect", VERL / "v0_dapo", "--from", "verl", "--format", "json")
    doc = json.loads(out)
    assert doc["rewards"]["acc"]["weight"] == 2.0 and doc["columns"]["pred"]["role"] is None
    assert "score = 2*acc - 1" in err


def test_verl_components_that_do_not_explain_score_are_said(tmp_path, run_cli):
    d = tmp_path / "dump"
    d.mkdir()
    rng = np.random.default_rng(0)
    for step in (1, 2):
        rows = [{"input": f"q{i // 4}", "output": f"o{i}", "gts": "1", "score": float(rng.normal()), "step": step,
                 "acc": float(rng.integers(0, 2))} for i in range(16)]
        (d / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli("analyze", d, "--from", "verl", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and any("do not explain 'score'" in w for w in doc["input"]["warnings"])
    assert "warning: the components acc do not explain 'score'" in err


def test_verl_v1_uid_groups_by_prompt(run_cli):
    loaded = mocli.load([VERL / "v1_default"], source="verl")
    assert loaded.rollouts.n_groups == 96 and set(np.diff(loaded.rollouts.offsets)) == {4}
    assert loaded.rollouts.names == ("score",) and not loaded.warnings


def test_singleton_groups_are_warned(run_cli, tmp_path):
    """Grouped by the whole v1 uid (unique per response), every group is one row."""
    code, out, err = run_cli("analyze", VERL / "v1_default", "--from", "verl", "-g", "uid", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["input"]["singleton_groups"] == 384
    assert doc["input"]["warnings"] and "every group has one row" in doc["input"]["warnings"][0]
    code, out, _ = run_cli("analyze", VERL / "v1_default", "--from", "verl", "-g", "uid")
    assert "warning: every group has one row" in out.split("What to look at first")[1]


# ---------------------------------------------------------------------------------------
# NeMo-RL
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["june2025", "newer"])
def test_nemo_rl_advantages_equal_newer_nemo_rl(run_cli, tmp_path, layout):
    truth = pl.read_ndjson(NEMO / "truth" / "nemo.jsonl")
    out = tmp_path / "adv.parquet"
    code, _, err = run_cli("advantages", NEMO / layout, "--from", "nemo_rl", "-o", out)
    assert code == 0, err
    got = pl.read_parquet(out)
    assert got["prompt"].to_list() == truth["prompt"].to_list() and got["response"].to_list() == truth["response"].to_list()
    assert np.abs(got["adv:grpo"].to_numpy() - truth["adv_nemo_newer"].to_numpy()).max() < 1e-5
    # the June 2025 formula: the population std of the other responses
    code, _, err = run_cli("advantages", NEMO / layout, "--from", "nemo_rl", "-e", "grpo:ddof=0", "-o", out)
    got = pl.read_parquet(out)
    assert np.abs(got["adv:grpo:ddof=0"].to_numpy() - truth["adv_nemo_june2025"].to_numpy()).max() < 1e-5


def test_nemo_rl_verify_names_the_june_2025_std(run_cli):
    code, out, _ = run_cli("verify", NEMO / "newer", "--from", "nemo_rl", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["hints"][0]["change"] == {"ddof": 0} and doc["hints"][0]["reproduces_log"]
    assert "biased" in doc["hints"][0]["likely_cause"] and "leave-one-out" in doc["hints"][0]["likely_cause"]
    code, _, _ = run_cli("verify", NEMO / "newer", "--from", "nemo_rl", "-e", "grpo:ddof=0")
    assert code == 0


def test_nemo_rl_verify_passes_on_newer_nemo_rls_values(run_cli, tmp_path):
    """Newer NeMo-RL writes the sequence's advantage at every token position: the same
    files with those values pass with no flags."""
    truth = pl.read_ndjson(NEMO / "truth" / "nemo.jsonl")["adv_nemo_newer"].to_list()
    out = tmp_path / "newer"
    out.mkdir()
    i = 0
    for f in sorted((NEMO / "newer").glob("*.jsonl")):
        lines = []
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            rec["advantages"] = [[truth[i]] * len(rec["advantages"][0])]
            lines.append(json.dumps(rec))
            i += 1
        (out / f.name).write_text("\n".join(lines) + "\n")
    code, out_text, err = run_cli("verify", out, "--from", "nemo_rl")
    assert code == 0, out_text + err


def test_nemo_rl_groups_are_prompts_within_a_step():
    loaded = mocli.load([NEMO / "june2025"], source="nemo_rl")
    assert loaded.rollouts.n_groups == 96 and set(np.diff(loaded.rollouts.offsets)) == {4}
    assert loaded.batch == "step" and sorted(set(loaded.frame["step"].to_list())) == [0, 1, 2]


def test_trl_chat_rows_that_flip_sign_show_the_conversation(run_cli):
    code, out, err = run_cli("compare", TRL / "chat", "--from", "trl", "-e", "grpo", "-e", "gdpo", "--format", "json")
    assert code == 0, err
    first = json.loads(out)["flips"]["grpo|gdpo"][0]
    assert first["group"].startswith("user: What is") and first["prompt"] == first["group"]
    assert first["completion"].startswith("assistant: ")
