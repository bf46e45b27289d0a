"""analyze, compare and check from the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
TOY = ROOT / "sample_data" / "gdpo_toy.csv"


def test_analyze_json_is_one_document_with_the_contract_keys(run_cli):
    code, out, err = run_cli("analyze", MATH, "--length", "response_length", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["input", "objectives", "conflict", "budget", "estimators"]
    assert set(doc["budget"]) == {"objective", "success", "target", "live_groups", "observed_zero_variance_rate",
                                  "zero_variance_rate", "group_size_for_target", "hopeless_group_rate", "solved_group_rate"}
    assert list(doc["budget"]["zero_variance_rate"]) == ["2", "4", "8", "16", "32", "64"]
    assert list(doc["estimators"]) == ["grpo", "gdpo"]  # defaults with >= 2 weighted objectives
    e = doc["estimators"]["grpo"]
    assert set(e) == {"params", "advantage", "collapse", "sign_flip", "silenced", "interference", "pareto", "influence", "length",
                      "aggregation"}
    assert set(e["aggregation"]) == {"token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"}
    assert set(e["aggregation"]["token_mean"]) == {"up_share", "length_corr_positive", "length_corr_negative"}
    assert set(e["collapse"]) == {"zero_variance_group_rate", "dead_row_rate", "masked_signal_group_rate", "collapsed_pair_rate", "resolution"}
    assert set(doc["conflict"]) == {"mixed_sign_rate", "discordance", "correlation"}
    assert set(doc["input"]) == {"rows", "groups", "live_groups", "singleton_groups", "unscorable_rows", "group_size", "objectives", "weights", "batch_by", "notes", "warnings", "mocli_version", "versions"}


def test_analyze_table_and_markdown_name_the_problems(run_cli):
    code, out, _ = run_cli("analyze", MATH)
    assert code == 0
    assert "What to look at first" in out and "length_reward" in out and "sign flip" in out
    code, md, _ = run_cli("analyze", MATH, "--format", "markdown")
    assert md.startswith("## mocli analyze") and "| metric | grpo | gdpo |" in md


def test_analyze_by_step(run_cli):
    code, out, _ = run_cli("analyze", MATH, "--by", "step", "--format", "json")
    doc = json.loads(out)
    assert doc["by_column"] == "step"
    assert list(doc["by"]) == [str(s) for s in range(8)]
    assert sum(doc["by"][s]["input"]["rows"] for s in doc["by"]) == doc["input"]["rows"]


def test_compare_lists_agreement_and_flips(run_cli):
    code, out, err = run_cli("compare", MATH, "-e", "grpo", "-e", "gdpo", "-e", "rloo", "--format", "json", "--top", "2")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["agreement"]) == ["grpo|gdpo", "grpo|rloo", "gdpo|rloo"]
    flips = doc["flips"]["grpo|gdpo"]
    assert len(flips) == 2 and {"group", "grpo", "gdpo", "rewards", "prompt", "completion"} <= set(flips[0])
    assert (flips[0]["grpo"] > 0) != (flips[0]["gdpo"] > 0)
    assert doc["agreement"]["grpo|rloo"]["flipped_rows"] == 0  # rloo = grpo rescaled per group
    code, _, err = run_cli("compare", MATH, "-e", "grpo")
    assert code == 2 and "two estimators" in err


def test_check_exit_codes_junit_summary_and_annotations(run_cli, tmp_path, monkeypatch):
    junit = tmp_path / "check.xml"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, out, err = run_cli("check", TOY, "-g", "g", "-r", "a", "-r", "b", "-e", "grpo:eps=0", "-e", "advantage_sum:eps=0",
                             "--fail-if", "collapse.zero_variance_group_rate > 0.3",
                             "--fail-if", "estimators.grpo:eps=0.collapse.masked_signal_group_rate > 0.5",
                             "--fail-if", "conflict.mixed_sign_rate >= 0",
                             "--junit", junit, "--summary", summary)
    assert code == 1, err
    assert out.count("::error title=mocli check::") == 3  # two estimators x first check + conflict
    cases = ET.parse(junit).getroot().find("testsuite")
    assert cases.get("tests") == "4" and cases.get("failures") == "3"
    assert "3 of 4 checks failed" in summary.read_text()
    code, _, _ = run_cli("check", TOY, "-g", "g", "-r", "a", "-r", "b", "--fail-if", "collapse.zero_variance_group_rate > 0.5")
    assert code == 0


def test_check_null_fails_nothing_but_is_listed(run_cli, tmp_path):
    f = tmp_path / "single.csv"
    f.write_text("g,r\n1,1\n2,0\n")
    code, out, _ = run_cli("check", f, "-g", "g", "-r", "r", "--fail-if", "collapse.resolution < 0.5", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["checks"][0]["status"] == "null" and doc["passed"] is True


@pytest.mark.parametrize("expr,needle", [
    ("collapse.nope > 1", "no 'estimators.grpo.collapse.nope'"),
    ("estimators.rloo.collapse.resolution < 1", "no 'estimators.rloo'"),
    ("collapse > 1", "not a number"),
    ("collapse.resolution >> 1", "PATH OP NUMBER"),
])
def test_check_usage_errors(run_cli, expr, needle):
    code, out, err = run_cli("check", MATH, "--fail-if", expr)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1


def test_check_thresholds_from_config(run_cli, tmp_path):
    cfg = tmp_path / "mocli.toml"
    cfg.write_text('[tool.mocli]\nestimators = ["grpo"]\n\n[[tool.mocli.check]]\nfail_if = "sign_flip.length_reward > 0.4"\n\n'
                   '[[tool.mocli.check]]\npath = "conflict.mixed_sign_rate"\nop = ">"\nvalue = 0.99\n')
    code, out, _ = run_cli("check", MATH, "--config", cfg, "--format", "json")
    doc = json.loads(out)
    assert code == 1 and [c["status"] for c in doc["checks"]] == ["fail", "pass"]


def test_library_report_equals_the_cli_json(run_cli):
    import mocli

    analysis = mocli.analyze([MATH], estimators=["grpo", "dvao"], length="response_length")
    assert isinstance(analysis, mocli.Analysis) and isinstance(analysis.report, mocli.Report)
    report = analysis.report
    code, out, _ = run_cli("analyze", MATH, "-e", "grpo", "-e", "dvao", "--length", "response_length", "--format", "json")
    assert json.loads(out) == json.loads(json.dumps(report.to_dict()))
    assert report.lookup("estimators.dvao.collapse.resolution") == report.to_dict()["estimators"]["dvao"]["collapse"]["resolution"]
