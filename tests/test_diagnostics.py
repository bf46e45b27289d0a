"""Every DIAGNOSTICS.md metric against the naive reference, plus hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from mocli import Rollouts, compute_advantages, make_scheme, prepare
from mocli.diagnostics import analyze_rollouts

from . import naive_diag
from .strategies import tables

ESTIMATORS = ["grpo", "gdpo", "rloo:normalize=true", "dr_grpo:singleton=raw", "g2rpo"]


def assert_tree(got, want, path=""):
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        assert set(got) == set(want), (path, set(got) ^ set(want))
        for k in want:
            assert_tree(got[k], want[k], f"{path}.{k}")
    elif want is None:
        assert got is None, (path, got)
    elif isinstance(want, (list, tuple)):
        assert list(got) == list(want), path
    elif isinstance(want, str):
        assert got == want, (path, got, want)
    else:
        assert got is not None, (path, want)
        assert math.isclose(got, float(want), rel_tol=1e-9, abs_tol=1e-11), (path, got, want)


def naive_for(data, specs, with_length=True):
    ro = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"],
                              length=data["length"] if with_length else None)
    batch = prepare(ro, make_scheme())
    advs = compute_advantages(ro, specs)
    R = [list(r) for r in batch.rewards]
    want = naive_diag.report(R, [list(r) for r in ro.rewards], list(ro.weights), list(ro.names), list(batch.codes),
                             list(batch.scorable), {k: list(v) for k, v in advs.items()},
                             list(ro.length) if with_length else None)
    return ro, want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(k_max=6))
def test_report_matches_naive(data):
    ro, want = naive_for(data, ESTIMATORS)
    if not np.any(prepare(ro, make_scheme()).scorable):
        return
    got = analyze_rollouts(ro, ESTIMATORS).report.to_dict()
    for label in ESTIMATORS:
        got["estimators"][label].pop("params")
    assert_tree(got, want)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(k_max=2))
def test_agreement_matches_naive(data):
    specs = ["grpo", "gdpo", "rloo"]
    ro = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"])
    batch = prepare(ro, make_scheme())
    if not batch.scorable.any():
        return
    rep = analyze_rollouts(ro, specs, compare=True).report
    advs = compute_advantages(ro, specs)
    codes = batch.codes
    live = {}
    for i, c in enumerate(codes):
        if batch.scorable[i]:
            live.setdefault(c, []).append(i)
    live = {g: r for g, r in live.items() if len(r) >= 2}
    for a, b in [("grpo", "gdpo"), ("grpo", "rloo"), ("gdpo", "rloo")]:
        A, B = advs[a], advs[b]
        tol = {}
        for lab, X in ((a, A), (b, B)):
            for g in set(codes):
                rows = [i for i in range(len(codes)) if codes[i] == g and batch.scorable[i]]
                tol[lab, g] = naive_diag.tol_of([X[i] for i in rows])
        nzA = [batch.scorable[i] and abs(A[i]) > tol[a, codes[i]] for i in range(len(A))]
        nzB = [batch.scorable[i] and abs(B[i]) > tol[b, codes[i]] for i in range(len(B))]
        both = [i for i in range(len(A)) if nzA[i] and nzB[i]]
        flipped = [i for i in both if (A[i] > 0) != (B[i] > 0)]
        taus = []
        for g, rows in live.items():
            t = naive_diag.kendall([A[i] for i in rows], [B[i] for i in rows], tol[a, g], tol[b, g])
            if t is not None:
                taus.append(t)
        want = {
            "sign_agreement": naive_diag.rate(len(both) - len(flipped), len(both)),
            "flipped_rows": len(flipped),
            "rank_agreement": float(np.mean(taus)) if taus else None,
        }
        assert_tree(rep.agreement[f"{a}|{b}"], want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(k_max=2, min_rows=4))
def test_slices_equal_separate_runs(data):
    ro = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"])
    step = (np.arange(ro.n) % 3).astype(np.int64)
    if not prepare(ro, make_scheme()).scorable.any():
        return
    rep = analyze_rollouts(ro, ["grpo", "gdpo"], slices=step, slice_column="step").report
    for value in ("0", "1", "2"):
        sub = ro.subset(step == int(value))
        if not prepare(sub, make_scheme()).scorable.any():
            continue
        assert rep.by[value].to_dict() == analyze_rollouts(sub, ["grpo", "gdpo"]).report.to_dict()


# --- hand-worked cases -----------------------------------------------------------------
def gdpo_toy():
    r = np.array([[0, 0], [1, 1], [1, 0], [0, 0], [1, 0], [0, 1]], dtype=float)
    return Rollouts.from_arrays(r, [1, 1, 2, 2, 3, 3], names=["a", "b"])


def test_gdpo_toy_collapse():
    rep = analyze_rollouts(gdpo_toy(), ["grpo:eps=0", "advantage_sum:eps=0"]).report.to_dict()
    g = rep["estimators"]["grpo:eps=0"]["collapse"]
    d = rep["estimators"]["advantage_sum:eps=0"]["collapse"]
    assert g["zero_variance_group_rate"] == pytest.approx(1 / 3)
    assert g["masked_signal_group_rate"] == pytest.approx(1 / 3)
    assert d["zero_variance_group_rate"] == pytest.approx(1 / 3)  # (1,0) vs (0,1) cancels in both
    assert rep["input"]["live_groups"] == 3
    # (0,2) vs (0,1): grpo gives both groups +-0.7071, decoupling keeps 1.4142 apart from 0.7071
    adv = compute_advantages(gdpo_toy(), ["grpo:eps=0", "advantage_sum:eps=0"])
    assert adv["grpo:eps=0"][1] == pytest.approx(adv["grpo:eps=0"][2])
    assert adv["advantage_sum:eps=0"][1] == pytest.approx(2 * adv["advantage_sum:eps=0"][2])


def test_length_penalty_flips_correct_answers():
    # group: a correct long answer, a wrong short one, a correct short one
    r = np.array([[1.0, -1.5], [0.0, 0.0], [1.0, 0.0], [0.0, -0.2]])
    ro = Rollouts.from_arrays(r, [0, 0, 0, 0], names=["correct", "length_penalty"])
    rep = analyze_rollouts(ro, ["grpo"]).report.to_dict()
    # s = -0.5, 0, 1, -0.2: the long correct answer is pushed down
    assert rep["estimators"]["grpo"]["sign_flip"]["correct"] == pytest.approx(1 / 4)
    # with positive weights a dominating row always scores at least as high: no violation
    assert rep["estimators"]["grpo"]["pareto"]["order_violation_rate"] == 0.0
    assert rep["estimators"]["grpo"]["silenced"]["correct"] == 0.0


def test_objectives_that_always_disagree():
    r = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [2.0, -1.0]])
    ro = Rollouts.from_arrays(r, [0, 0, 0, 0], names=["a", "b"])
    rep = analyze_rollouts(ro, ["grpo"]).report.to_dict()
    assert rep["conflict"]["discordance"]["a|b"] == 1.0
    assert rep["conflict"]["correlation"]["a|b"] == pytest.approx(-1.0)


def test_monitored_objective_is_reported_not_combined():
    r = np.array([[1.0, 100.0], [0.0, 300.0], [1.0, 200.0], [0.0, 50.0]])
    ro = Rollouts.from_arrays(r, [0, 0, 0, 0], names=["correct", "tokens"], weights=[1.0, 0.0])
    rep = analyze_rollouts(ro).report.to_dict()
    assert list(rep["estimators"]) == ["grpo"]  # one weighted objective: no gdpo by default
    assert "tokens" in rep["estimators"]["grpo"]["sign_flip"]
    assert set(rep["estimators"]["grpo"]["influence"]) == {"correct", "r2", "gap"}
    assert rep["estimators"]["grpo"]["influence"]["r2"] == pytest.approx(1.0)


def test_empty_denominators_are_null():
    ro = Rollouts.from_arrays(np.array([[1.0], [0.0]]), [0, 1])  # two singletons
    rep = analyze_rollouts(ro, ["grpo"]).report.to_dict()
    col = rep["estimators"]["grpo"]["collapse"]
    assert col["zero_variance_group_rate"] is None and col["resolution"] is None
    assert rep["conflict"]["mixed_sign_rate"] is None
    assert rep["estimators"]["grpo"]["sign_flip"]["r0"] is None


def test_zero_variance_share_on_real_math_rollouts(real_data):
    from mocli import load

    loaded = load([real_data / "grpo-math-r1zero" / "masked_mean.jsonl"], group="group_id", rewards=["reward"])
    rep = analyze_rollouts(loaded.rollouts).report.to_dict()
    zv = rep["estimators"]["grpo"]["collapse"]["zero_variance_group_rate"]
    assert 0.55 < zv < 0.8  # about two thirds of the logged groups carry no reward variance
    assert zv == rep["objectives"]["reward"]["zero_variance_group_rate"]


def test_budget_hand_worked():
    """4 successes in 8 rows: p = (4 + 0.5) / (8 + 1) = 0.5, so 8 rollouts leave the group
    without gradient with probability 2 * 0.5^8; an all-correct group (p = 8.5/9) and an
    all-wrong one (p = 0.5/9) are the observed zero-variance groups."""
    from mocli.diagnostics.budget import BudgetRule
    from mocli.schemes import Constraint

    correct = [1, 1, 1, 1, 0, 0, 0, 0] + [1] * 8 + [0] * 8
    ro = Rollouts.from_arrays(np.array([[c, 0.5 * c] for c in correct], dtype=float), np.repeat([0, 1, 2], 8))
    b = analyze_rollouts(ro, ["grpo"]).report.to_dict()["budget"]
    assert b["success"] == f"{ro.names[0]} at its largest value (1)"
    assert b["observed_zero_variance_rate"] == 2 / 3 and b["hopeless_group_rate"] == 1 / 3 and b["solved_group_rate"] == 1 / 3
    p = [0.5, 8.5 / 9, 0.5 / 9]
    for N in (2, 4, 8, 16, 32, 64):
        want = sum(q ** N + (1 - q) ** N for q in p) / 3
        assert math.isclose(b["zero_variance_rate"][str(N)], want, rel_tol=1e-12), N
    assert math.isclose(b["zero_variance_rate"]["8"], (2 * 0.5 ** 8 + 2 * ((8.5 / 9) ** 8 + (0.5 / 9) ** 8)) / 3)
    # the two saturated groups never drop under 10%: 2/3 * (8.5/9)^N > 0.1 up to N = 33
    assert b["group_size_for_target"] == 64
    # an explicit condition on the second column: >= 0.5 is the same split
    rule = BudgetRule(Constraint.parse(f"{ro.names[1]} >= 0.5"), 0.5)
    b2 = analyze_rollouts(ro, ["grpo"], rule=rule).report.to_dict()["budget"]
    # with a target of 0.5: 0.572 at N = 4, 0.424 at N = 8
    assert b2["zero_variance_rate"] == b["zero_variance_rate"] and b2["group_size_for_target"] == 8
    assert b2["success"] == f"{ro.names[1]}>=0.5"


def test_budget_of_a_minimised_objective_counts_its_least_value(run_cli, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("g,errors_reward\n" + "".join(f"{g},{v}\n" for g, v in [(1, 0), (1, 2), (2, 0), (2, 0), (3, 3), (3, 5)]))
    code, out, err = run_cli("analyze", path, "-g", "g", "--minimize", "errors_reward", "--format", "json")
    assert code == 0, err
    import json

    b = json.loads(out)["budget"]
    assert b["success"] == "errors_reward at its least value (0)"
    assert b["hopeless_group_rate"] == 1 / 3 and b["solved_group_rate"] == 1 / 3
    code, _, err = run_cli("analyze", path, "-g", "g", "--success", "nope > 1")
    assert code == 2 and "--success" in err and "errors_reward" in err
    code, _, err = run_cli("analyze", path, "-g", "g", "--budget-target", "2")
    assert code == 2 and "--budget-target" in err


def test_aggregation_hand_worked_and_per_batch():
    """Wrong answers (A < 0) of two groups: the long ones carry the larger |A| (group 2,
    -0.866 against -0.5), so under token_mean the per-token push grows with length
    (correlation > 0), while seq_mean_token_mean divides each row by its own length and
    long wrong answers get the smallest per-token push (correlation < 0): Dr. GRPO's length
    bias. Two training batches: each batch's own factor, as the naive definition."""
    correct = [1, 0, 0, 0, 1, 1, 0, 0]
    length = [20, 30, 40, 50, 20, 30, 400, 500]
    ro = Rollouts.from_arrays(np.array(correct, dtype=float), np.repeat([0, 1], 4), length=length)
    e = analyze_rollouts(ro, ["grpo"]).report.to_dict()["estimators"]["grpo"]["aggregation"]
    assert e["token_mean"]["length_corr_negative"] > 0.9
    assert e["seq_mean_token_mean"]["length_corr_negative"] < -0.5
    A = compute_advantages(ro, ["grpo"])["grpo"]
    sa = [int(np.sign(a)) for a in A]
    want = naive_diag.aggregation(list(A), sa, [float(x) for x in length], [True] * 8)
    for mode in want:
        for key in want[mode]:
            assert math.isclose(e[mode][key], want[mode][key], rel_tol=1e-12), (mode, key)
    # two training batches of different sizes and lengths: the factors no longer cancel
    batch = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    length2 = length + [60, 70]
    ro2 = Rollouts.from_arrays(np.array(correct + [1, 0], dtype=float), np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2]),
                               length=length2, batch=batch)
    e2 = analyze_rollouts(ro2, ["grpo"]).report.to_dict()["estimators"]["grpo"]["aggregation"]
    A2 = compute_advantages(ro2, ["grpo"])["grpo"]
    want2 = naive_diag.aggregation(list(A2), [int(np.sign(a)) for a in A2], [float(x) for x in length2], [True] * 10, batch)
    for mode in want2:
        for key in want2[mode]:
            assert math.isclose(e2[mode][key], want2[mode][key], rel_tol=1e-12), (mode, key)
    assert e2["token_mean"]["up_share"] != e2["seq_mean_token_sum_norm"]["up_share"]
