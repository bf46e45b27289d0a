"""``mocli sweep`` and the derived paths it minimises (``sign_flip.max``, ``influence.gap``):
each candidate against a full ``mocli analyze`` of its weighting, the Pareto flags against a
brute-force dominance check, the command line's contract, and the chart in a browser."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mocli
from mocli.diagnostics.sweep import DEFAULT_METRICS, weightings
from mocli.render.html import render_sweep_html

from .test_pictures import in_browser

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
SAFETY = ROOT / "sample_data" / "safety.parquet"
OBJECTIVES = ["correct_reward", "format_reward", "length_reward"]


def analyze_with(path, weights: dict[str, float], estimator: str, **options):
    """The analyze report of one weighting and estimator, as a user would ask for it."""
    rewards = [f"{k}={w!r}" for k, w in weights.items()]
    report = mocli.analyze([path], rewards=rewards, estimators=[estimator], **options).report.to_dict()
    return report["estimators"][estimator]


def value_at(entry, path):
    node = entry
    for part in path.split("."):
        node = node[part]
    return node


def dominated(a: list, b: list) -> bool:
    """Naive: b dominates a (nulls worse than any number)."""
    inf = float("inf")
    x = [inf if v is None else v for v in a]
    y = [inf if v is None else v for v in b]
    return all(q <= p for p, q in zip(x, y)) and any(q < p for p, q in zip(x, y))


@pytest.fixture(scope="module")
def math_sweep():
    return mocli.sweep([MATH])


def test_default_grid_is_half_one_and_twice_every_weight(math_sweep):
    assert len(math_sweep.candidates) == 27 * 2
    seen = {tuple(c.weights[k] for k in OBJECTIVES) for c in math_sweep.candidates}
    assert seen == {(a, b, c) for a in (0.5, 1, 2) for b in (0.5, 1, 2) for c in (0.5, 1, 2)}
    assert {c.estimator for c in math_sweep.candidates} == {"grpo", "gdpo"}
    assert math_sweep.metrics == list(DEFAULT_METRICS)


def test_each_candidate_equals_analyze_with_its_weighting(math_sweep):
    picked = math_sweep.pareto + [c for c in math_sweep.candidates if c.current]
    picked += [c for c in math_sweep.candidates if not c.pareto][::9]
    assert len(picked) >= 8
    for c in picked:
        entry = analyze_with(MATH, c.weights, c.estimator)
        for path, value in c.metrics.items():
            assert value == value_at(entry, path), (c, path)


def test_random_weightings_and_other_metrics_equal_analyze():
    metrics = ["collapse.resolution", "pareto.order_violation_rate", "interference.correct_reward", "advantage.std",
               "length.within_corr", "aggregation.token_mean.up_share", "silenced.format_reward"]
    result = mocli.sweep([MATH], samples=6, seed=3, metrics=metrics, estimators=["grpo", "rloo"], length="response_length")
    assert len(result.candidates) == 7 * 2  # the six draws and the current weights
    for c in result.candidates[::3]:
        entry = analyze_with(MATH, c.weights, c.estimator, length="response_length")
        for path in metrics:
            assert c.metrics[path] == value_at(entry, path), (c, path)


def test_candidates_equal_analyze_on_shuffled_rows(tmp_path):
    import polars as pl

    path = tmp_path / "shuffled.parquet"
    pl.read_parquet(MATH).sample(fraction=1.0, shuffle=True, seed=5).write_parquet(path)
    result = mocli.sweep([path], samples=4, seed=9, estimators=["gdpo", "grpo:eps=0.01"])
    for c in result.candidates:
        entry = analyze_with(path, c.weights, c.estimator)
        for metric, value in c.metrics.items():
            assert value == value_at(entry, metric), (c, metric)


def test_pareto_flags_match_a_brute_force_check():
    result = mocli.sweep([MATH], samples=40, seed=7)
    vectors = [[c.metrics[m] for m in result.metrics] for c in result.candidates]
    for i, c in enumerate(result.candidates):
        beaten = any(dominated(vectors[i], vectors[j]) for j in range(len(vectors)) if j != i)
        assert c.pareto == (not beaten), c
    flags = [c.pareto for c in result.candidates]
    assert flags == sorted(flags, reverse=True)  # Pareto ones first
    assert result.best.pareto and result.best.metrics["sign_flip.max"] == min(
        c.metrics["sign_flip.max"] for c in result.candidates)


def test_math_sample_has_weightings_that_flip_fewer_signs(math_sweep):
    base = math_sweep.baseline
    assert base.estimator == "grpo" and base.weights == dict.fromkeys(OBJECTIVES, 1.0)
    better = [c for c in math_sweep.candidates if c.metrics["sign_flip.max"] < base.metrics["sign_flip.max"]]
    assert better, "no weighting lowers sign_flip.max on the math sample"
    grpo_better = [c for c in better if c.estimator == "grpo"]
    assert grpo_better  # reweighting alone helps, not only the switch to GDPO
    assert "sign_flip.max" in math_sweep.change() and "->" in math_sweep.change()


def test_samples_are_log_uniform_between_a_quarter_and_four_times():
    w = np.array([1.0, 2.0, 0.0])
    cands = weightings(["a", "b", "c"], w, samples=500, seed=11)
    assert np.array_equal(cands[0], w) and len(cands) == 501
    ratio = np.array(cands[1:])[:, :2] / w[:2]
    assert ratio.min() >= 0.25 and ratio.max() <= 4.0
    assert abs(np.log(ratio).mean()) < 0.15  # centred on 1 in log space
    assert all(c[2] == 0.0 for c in cands)  # an unweighted objective stays monitored
    again = weightings(["a", "b", "c"], w, samples=500, seed=11)
    assert all(np.array_equal(x, y) for x, y in zip(cands, again))


def test_a_grid_keeps_the_other_weights_and_drops_all_zero():
    cands = weightings(["a", "b"], np.array([1.0, 3.0]), grid={"a": [0.0, 2.0]})
    assert [c.tolist() for c in cands] == [[1.0, 3.0], [0.0, 3.0], [2.0, 3.0]]
    cands = weightings(["a", "b"], np.array([1.0, 0.0]), grid={"a": [0.0, 1.0]})
    assert [c.tolist() for c in cands] == [[1.0, 0.0]]


def test_derived_paths_in_analyze():
    doc = mocli.analyze([MATH], estimators=["grpo", "gdpo"]).report.to_dict()
    weights = dict(zip(doc["input"]["objectives"], doc["input"]["weights"]))
    for entry in doc["estimators"].values():
        flips = [entry["sign_flip"][k] for k, w in weights.items() if w]
        assert entry["sign_flip"]["max"] == max(flips)
        inf = entry["influence"]
        total = sum(weights.values())
        gap = sum(abs(inf[k] / inf["r2"] - w / total) for k, w in weights.items() if w)
        assert entry["influence"]["gap"] == pytest.approx(gap, abs=1e-12)


def test_derived_paths_ignore_monitored_objectives():
    doc = mocli.analyze([MATH], rewards=["correct_reward=1", "format_reward=0", "length_reward=1"],
                        estimators=["grpo"]).report.to_dict()
    e = doc["estimators"]["grpo"]
    assert e["sign_flip"]["max"] == max(e["sign_flip"]["correct_reward"], e["sign_flip"]["length_reward"])
    inf = e["influence"]
    assert "format_reward" not in inf
    gap = abs(inf["correct_reward"] / inf["r2"] - 0.5) + abs(inf["length_reward"] / inf["r2"] - 0.5)
    assert inf["gap"] == pytest.approx(gap, abs=1e-12)


def test_check_reads_the_derived_paths(run_cli):
    code, out, err = run_cli("check", MATH, "--fail-if", "sign_flip.max > 0.9", "--fail-if", "influence.gap > 5",
                             "--format", "json")
    assert code == 0, err
    assert {c["path"].split(".", 2)[2] for c in json.loads(out)["checks"]} == {"sign_flip.max", "influence.gap"}


def test_cli_json_contract(run_cli):
    code, out, err = run_cli("sweep", MATH, "--grid", "correct_reward=1,2,4", "-e", "grpo", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    cands = doc["sweep"]["candidates"]
    assert len(cands) == 3
    for c in cands:
        assert {"estimator", "weights", "metrics", "pareto"} <= set(c)
        assert set(c["weights"]) == set(OBJECTIVES)  # gridded or not
        assert c["weights"]["format_reward"] == 1.0 and c["weights"]["length_reward"] == 1.0
        assert list(c["metrics"]) == list(DEFAULT_METRICS)
    assert sorted(c["weights"]["correct_reward"] for c in cands) == [1.0, 2.0, 4.0]
    flags = [c["pareto"] for c in cands]
    assert flags == sorted(flags, reverse=True)


def test_cli_table_marks_the_current_weighting_and_says_what_changes(run_cli):
    code, out, err = run_cli("sweep", MATH)
    assert code == 0, err
    assert "Pareto-optimal" in out and "current" in out and "best" in out
    assert re.search(r"moving from grpo with the current weights .* changes sign_flip\.max", " ".join(out.split()))
    code, md, _ = run_cli("sweep", MATH, "--format", "markdown", "--top", "2")
    assert code == 0 and md.startswith("## mocli sweep") and "| estimator |" in md


@pytest.mark.parametrize("args, needle", [
    (["--grid", "corect_reward=1,2"], "did you mean 'correct_reward'"),
    (["--grid", "correct_reward"], "NAME=W1,W2"),
    (["--grid", "correct_reward=1,x"], "'x' is not a number"),
    (["--grid", "correct_reward=1", "--samples", "5"], "either --grid or --samples"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--metric", "input.rows"], "relative to the estimator"),
    (["--metric", "sign_flp.max"], "did you mean 'sign_flip'"),
    (["--metric", "sign_flip.corect_reward"], "did you mean 'correct_reward'"),
    (["--metric", "length.corr"], "--length"),
    (["--metric", "collapse"], "is not a path"),
    (["--top", "0"], "--top"),
])
def test_bad_usage_exits_2_with_one_line(run_cli, args, needle):
    code, out, err = run_cli("sweep", MATH, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_html_refuses_to_replace_an_input(run_cli, tmp_path):
    target = tmp_path / "in.parquet"
    target.write_bytes(MATH.read_bytes())
    code, _, err = run_cli("sweep", target, "--html", target)
    assert code == 2 and err.startswith("error: ") and target.read_bytes() == MATH.read_bytes()


def test_a_logged_score_is_recombined_per_candidate():
    ro = mocli.load([SAFETY]).rollouts
    score = ro.rewards @ ro.weights + 3.0  # a trainer's logged scalar: the weighted sum plus a constant
    logged = type(ro)(**{**ro.__dict__, "scalar": score})
    result = mocli.sweep(logged, samples=3, seed=0, estimators=["grpo"])
    plain = mocli.sweep(ro, samples=3, seed=0, estimators=["grpo"])
    assert any("logged 'score'" in n for n in result.notes)
    assert [c.metrics for c in result.candidates] == [c.metrics for c in plain.candidates]
    assert len({json.dumps(c.metrics) for c in result.candidates}) > 1  # the weights do change the metrics


def test_threads_give_the_same_candidates():
    one = mocli.sweep([MATH], samples=8, seed=2)
    from mocli.diagnostics import sweep as sweep_mod
    from mocli.engine.pipeline import make_scheme, resolve

    ro = mocli.load([MATH]).rollouts
    cands = weightings(list(ro.names), ro.weights, samples=8, seed=2)
    two = sweep_mod.sweep_rollouts(ro, resolve(["grpo", "gdpo"]), make_scheme(), candidates=cands, workers=2)
    assert [c.to_dict() for c in one.candidates] == [c.to_dict() for c in two.candidates]


def test_sweep_chart_renders_in_a_real_browser(tmp_path):
    doc = mocli.sweep([MATH], samples=30, seed=1).to_dict()
    page = render_sweep_html(doc)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert page.count("<circle") >= len(doc["sweep"]["candidates"]) and "<polyline" in page
    # the chart plots the metrics that vary; the constant one is named in the reading
    assert "Trade-off: sign_flip.max against influence.gap" in page
    assert "collapse.masked_signal_group_rate is 0 for every candidate" in page
    path = tmp_path / "sweep.html"
    path.write_text(page)
    dom, common = in_browser(path, tmp_path, 1600)
    assert 'data-charts="1"' in dom and 'data-charts-visible="1"' in dom
    shot = tmp_path / "sweep.png"
    run = subprocess.run(common + [f"--screenshot={shot}", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_is_exported_from_the_package():
    assert mocli.sweep is not None and mocli.Sweep is not None and mocli.Candidate is not None
    assert math.isclose(len(mocli.sweep([MATH], grid={"correct_reward": [1, 3]}, estimators=["grpo"]).candidates), 2)


def test_progress_bar_on_a_terminal_is_erased_before_the_table():
    from .test_cli_terminal import _on_a_terminal

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    text = _on_a_terminal(["sweep", str(MATH), "--samples", "400"], env, columns=160).decode()
    assert "evaluating candidates" in text
    before = text[:text.index("mocli sweep:")]
    assert "\x1b[2K" in before[before.rindex("evaluating candidates"):]
