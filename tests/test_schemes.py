"""Schemes, conditions and gates against the naive reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from mocli import InputError, Rollouts, UsageError, make_scheme, prepare
from mocli.schemes import Condition, Constraint

from . import naive
from .strategies import tables

SCHEMES = [
    ("weighted_sum", {}, False),
    ("weighted_mean", {}, False),
    ("min", {}, False),
    ("uwo", {"lam": 0.1}, False),
    ("uwo:lam=0.7", {"lam": 0.7}, False),
    ("chebyshev", {}, False),
    ("chebyshev:rho=0.05", {"rho": 0.05}, False),
    ("chebyshev:ideal=3", {"z": [3.0] * 6, "rho": 0.0}, False),
    ("power_mean", {"p": 0.5}, True),
    ("power_mean:p=2", {"p": 2.0}, True),
    ("power_mean:p=0", {"p": 0.0}, True),
    ("power_mean:p=-1", {"p": -1.0}, True),
    ("product", {}, True),
]


@pytest.mark.parametrize("spec,params,nonneg", SCHEMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(nonneg=True))
def test_scheme_matches_naive(spec, params, nonneg, data):
    ro = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"])
    name = spec.split(":")[0]
    if name == "chebyshev" and "z" in params:
        params = dict(params, z=params["z"][: ro.rewards.shape[1]])
    rows = [list(r) for r in data["rewards"]]
    w = list(data["weights"])
    _, scorable, s = naive.prepare(rows, w, list(ro.names), scheme=name, sp=params)
    with np.errstate(all="ignore"):
        batch = prepare(ro, make_scheme(spec))
    assert batch.scorable.tolist() == scorable
    got = batch.scalar[batch.scorable]
    want = np.array(s)[np.array(scorable, dtype=bool)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(data=tables(nan=True))
def test_conditions_gates_and_minimize_match_naive(data):
    ro0 = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"])
    names = list(ro0.names)
    minimize = [names[-1]]
    ro = Rollouts.from_arrays(data["rewards"], data["codes"], weights=data["weights"], minimize=minimize)
    conds = [Condition.parse(f"{names[-1]}:{names[0]}>=0.5")]
    if len(names) > 1:
        conds.append(Condition.parse(f"{names[0]}:{names[1]}<1:nan"))
    rows = [list(r) for r in data["rewards"]]
    w = list(data["weights"])
    ncond = [(c.objective, c.when.objective, c.when.op, c.when.threshold, c.else_value) for c in conds]
    _, scorable, s = naive.prepare(rows, w, names, minimize, ncond)
    batch = prepare(ro, make_scheme(), conds)
    assert batch.scorable.tolist() == scorable
    # a sum such as 1 + 2e-249 - 1 cancels differently in another order: allow rounding of
    # the terms' size, not of the result's
    scale = float(np.nanmax(np.abs(data["rewards"]), initial=0.0)) * float(np.abs(data["weights"]).sum())
    np.testing.assert_allclose(batch.scalar[batch.scorable], np.array(s)[np.array(scorable, bool)], rtol=1e-12, atol=1e-15 * max(1.0, scale))
    # gated: constraint on the first objective, on the file's values
    gate = f"{names[0]}>0"
    _, scorable, s = naive.prepare(rows, w, names, minimize, (), scheme="gated", sp={"constraints": [(names[0], ">", 0.0)], "fail_value": -1.0})
    batch = prepare(ro, make_scheme("gated:fail_value=-1", [gate]))
    np.testing.assert_allclose(batch.scalar[batch.scorable], np.array(s)[np.array(scorable, bool)], rtol=1e-12)


def test_gate_turns_default_scheme_into_gated():
    r = np.array([[1.0, 1.0, 0.2], [1.0, 0.0, 0.9], [0.0, 1.0, 0.5]])
    ro = Rollouts.from_arrays(r, [0, 0, 0], names=["correct", "format", "style"])
    batch = prepare(ro, make_scheme("weighted_sum", ["format>=1"]))
    # format is gated out of the sum; row 2 fails the gate
    np.testing.assert_allclose(batch.scalar, [1.2, 0.0, 0.5])


def test_when_conditions_a_length_reward_on_correctness():
    r = np.array([[1.0, -0.5], [0.0, -0.1], [1.0, 0.0]])
    ro = Rollouts.from_arrays(r, [0, 0, 0], names=["correct", "length"])
    batch = prepare(ro, make_scheme(), [Condition.parse("length:correct>=1")])
    np.testing.assert_allclose(batch.scalar, [0.5, 0.0, 1.0])


def test_power_mean_rejects_negative_rewards():
    ro = Rollouts.from_arrays(np.array([[1.0, -0.5]]), [0])
    with pytest.raises(InputError, match="power_mean"):
        prepare(ro, make_scheme("power_mean"))


def test_gate_with_other_scheme_is_a_usage_error():
    with pytest.raises(UsageError, match="gated"):
        make_scheme("min", ["format>=1"])


@pytest.mark.parametrize("text", ["format", "format>>1", "format>=x", ">=1"])
def test_bad_constraint(text):
    with pytest.raises(UsageError):
        Constraint.parse(text)


def test_unknown_scheme_suggests():
    with pytest.raises(UsageError, match="did you mean 'chebyshev'"):
        make_scheme("chebychev")


def test_weighted_sum_adds_each_product_in_column_order_without_copying_the_matrix():
    """The default scheme, one pass: each row's ``w_k r_k`` rounded, then added left to
    right with NaN cells left out (what ``(r * w).nansum(dim=1)`` gives), on C- and
    F-ordered matrices; the matrix is read, never copied or written."""
    from mocli.kernels import CPU

    rng = np.random.default_rng(5)
    r = rng.normal(size=(2001, 5)) * 10.0 ** rng.integers(-3, 4, size=(2001, 5))
    r[rng.random(r.shape) < 0.2] = np.nan
    r[7] = np.nan  # a row without a valid cell sums to 0
    w = np.array([0.3, -1.7, 2.5, 1e-3, 0.9])
    want = np.zeros(r.shape[0])
    for k in range(r.shape[1]):
        want = want + np.where(np.isnan(r[:, k]), 0.0, w[k] * r[:, k])
    before = r.copy()
    for m in (r, np.asfortranarray(r)):
        got = CPU.weighted_nansum(m, w)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(r, before)
    assert want[7] == 0.0
    ro = Rollouts.from_arrays(r, np.arange(r.shape[0]) % 7, weights=w)
    np.testing.assert_array_equal(make_scheme("weighted_sum")(ro.rewards, ro.weights, ro.names), want)


def test_drpo_recipe_normalises_length_among_correct_answers_only(run_cli, tmp_path):
    """docs/estimators.md, Recipes: gdpo with --when 'length:correct>=1:nan' z-scores the
    length reward over each group's correct answers alone; wrong answers get only their
    correctness z (written out here by hand, ddof 1 and eps 1e-6 as gdpo's defaults)."""
    import polars as pl

    correct = [1, 1, 1, 0, 0, 1, 0, 0, 1, 1]
    length = [-0.1, -0.5, -0.3, -0.9, -0.2, -0.4, -0.6, -0.1, -0.7, -0.2]
    group = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    path = tmp_path / "drpo.csv"
    pl.DataFrame({"g": group, "correct": correct, "length": length}).write_csv(path)
    out = tmp_path / "adv.csv"
    code, _, err = run_cli("advantages", path, "-g", "g", "-r", "correct", "-r", "length", "-e", "gdpo:batch_norm=false",
                           "--when", "length:correct>=1:nan", "-o", out)
    assert code == 0, err
    got = pl.read_csv(out)["adv:gdpo:batch_norm=false"].to_numpy()
    want = np.zeros(len(correct))
    for g in (0, 1):
        rows = [i for i in range(len(group)) if group[i] == g]
        c = np.array([correct[i] for i in rows], dtype=float)
        zc = (c - c.mean()) / (c.std(ddof=1) + 1e-6)
        right = [i for i in rows if correct[i] == 1]
        x = np.array([length[i] for i in right])
        zl = dict(zip(right, (x - x.mean()) / (x.std(ddof=1) + 1e-6)))
        for j, i in enumerate(rows):
            want[i] = zc[j] + zl.get(i, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # without :nan the wrong answers' length becomes 0 and enters the statistics: not the same
    code, _, err = run_cli("advantages", path, "-g", "g", "-r", "correct", "-r", "length", "-e", "gdpo:batch_norm=false",
                           "--when", "length:correct>=1", "-o", out)
    assert code == 0 and not np.allclose(pl.read_csv(out)["adv:gdpo:batch_norm=false"].to_numpy(), want)
