"""The GitHub Action (action.yml) and the pre-commit hook (.pre-commit-hooks.yaml): their
own commands, run as GitHub Actions and pre-commit would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
EXPR = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # this environment's mocli
    return env


def run_action(given: dict[str, str], workdir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """Every step of the composite action whose ``if`` holds, with ``${{ inputs.x }}``
    replaced as GitHub does (the given value, else the default), in ``workdir``."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    values = {name: given.get(name, spec.get("default", "")) for name, spec in action["inputs"].items()}
    for name, spec in action["inputs"].items():
        if spec.get("required"):
            assert name in given, f"the action requires '{name}'"
    summary = workdir / "summary.md"
    result = None
    for step in action["runs"]["steps"]:
        condition = step.get("if")
        if condition:
            m = re.fullmatch(r"inputs\.([\w-]+) != ''", condition.strip())
            assert m, f"a condition this test does not read: {condition}"
            if values[m.group(1)] == "":
                continue
        assert step["shell"] == "bash"
        env = {k: EXPR.sub(lambda x: values[x.group(1)], str(v)) for k, v in step.get("env", {}).items()}
        env.update(GITHUB_ACTION_PATH=str(ROOT), GITHUB_STEP_SUMMARY=str(summary), GITHUB_ACTIONS="true")
        result = subprocess.run(["bash", "-c", step["run"]], cwd=workdir, env=_env(env), capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            break
    assert result is not None
    return result, summary


def test_action_passes_and_writes_junit_and_summary(tmp_path):
    result, summary = run_action({
        "inputs": str(MATH), "install": "",
        "fail-if": "sign_flip.max > 0.9\n  collapse.zero_variance_group_rate > 0.5\n",
        "args": "-e grpo -e gdpo",
    }, tmp_path)
    assert result.returncode == 0, result.stderr
    cases = ET.parse(tmp_path / "mocli-check.xml").getroot().iter("testcase")
    assert len(list(cases)) == 4  # two expressions x two estimators
    assert "sign_flip.max" in summary.read_text()
    assert "::error" not in result.stdout


def test_action_fails_the_job_with_annotations(tmp_path):
    result, summary = run_action({
        "inputs": str(MATH), "install": "", "fail-if": "sign_flip.correct_reward > 0.2", "junit": "gate.xml",
    }, tmp_path)
    assert result.returncode == 1
    assert "::error title=mocli check::" in result.stdout
    root = ET.parse(tmp_path / "gate.xml").getroot()
    assert sum(1 for _ in root.iter("failure")) == 1
    assert "fail" in summary.read_text()


def test_action_reports_bad_usage_as_exit_2(tmp_path):
    result, _ = run_action({"inputs": str(MATH), "install": "", "fail-if": "sign_flip.nope > 1"}, tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ")


def test_action_reads_thresholds_from_the_config(tmp_path):
    config = tmp_path / "mocli.toml"
    config.write_text('[[check]]\nfail_if = "influence.gap > 100"\n')
    result, _ = run_action({"inputs": str(MATH), "install": "", "config": str(config)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "influence.gap" in (tmp_path / "mocli-check.xml").read_text()


def test_pre_commit_hook_runs_its_entry(tmp_path):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "mocli-check")
    files = re.compile(hook["files"])
    assert files.search("rollouts/step_1.parquet") and files.search("dump.jsonl") and not files.search("package.json")
    assert hook["pass_filenames"] is False  # the dumps to check are named in args
    entry = hook["entry"].split()
    args = [str(MATH), "--fail-if", "sign_flip.correct_reward > 0.2"]
    bad = subprocess.run(entry + args, cwd=tmp_path, env=_env({}), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "failed" in bad.stderr
    args = [str(MATH), "--fail-if", "sign_flip.correct_reward > 0.5"]
    good = subprocess.run(entry + args, cwd=tmp_path, env=_env({}), capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
