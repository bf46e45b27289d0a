"""Every estimator, under every profile and a spread of parameters, against the naive
reference on random ragged tables (NaN cells, singletons, constant groups)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from mocli import ESTIMATORS, InputError, Rollouts, make_estimator, make_scheme, prepare
from mocli.params import describe
from mocli.profiles import PROFILES

from . import naive
from .strategies import tables

PROFILE_NAMES = [name for name, _ in PROFILES]

SPECS = [
    "grpo", "grpo:scale=batch", "grpo:scale=none", "grpo:leave_one_out=true",
    "grpo:eps=0,eps_mode=floor", "grpo:eps_mode=skip_zero,eps=1e-3", "grpo:ddof=0,singleton=raw",
    "grpo:scale=batch,singleton=raw", "grpo:leave_one_out=true,eps_mode=skip_zero",
    "dr_grpo", "dr_grpo:singleton=raw",
    "rloo", "rloo:normalize=true", "rloo:singleton=raw,normalize=true,ddof=0",
    "reinforce_pp", "reinforce_pp:token_weighted=true", "reinforce_pp:token_weighted=true,ddof=0,eps_mode=floor",
    "reinforce_pp_baseline", "reinforce_pp_baseline:token_weighted=true,singleton=raw",
    "remax", "opo", "opo:singleton=raw", "gpg", "gpg:singleton=raw",
    "passk", "passk:normalize=false", "passk:eps_mode=floor,eps=0.1",
    "mc_grpo", "mc_grpo:scale=mad", "mc_grpo:scale=none,singleton=raw", "mc_grpo:scale=mad,singleton=raw",
    "g2rpo", "ngrpo", "ngrpo:r_max=2.5,singleton=raw", "ngrpo:ddof=0",
    "pref_grpo", "pref_grpo:singleton=raw,ddof=0", "pref_grpo:eps=0,eps_mode=floor",
    "dgpo", "dgpo:T=0.5,length_balance=false", "dgpo:accuracy=r0", "dgpo:nan_policy=zero",
    "gdpo", "gdpo:batch_norm=false", "gdpo:eps_batch=0,eps_mode=skip_zero", "gdpo:token_weighted=true",
    "gdpo:leave_one_out=true,singleton=raw", "gdpo:nan_policy=zero",
    "advantage_sum", "advantage_sum:singleton=raw,ddof=0",
    "dvao", "dvao:singleton=raw", "gd2po", "gd2po:tau=1.0", "gd2po:tau=0.3,leave_one_out=true",
    "grpo:clip=0.5", "rloo:nan_policy=zero", "remax:clip=0.5", "reinforce_pp:clip=0.3",
]


def check(spec: str, data: dict, profile: str = "mocli", scheme: str = "weighted_sum") -> None:
    est = make_estimator(spec, profile)
    ro = Rollouts.from_arrays(
        data["rewards"], data["codes"], weights=data["weights"], length=data["length"], baseline=data["baseline"]
    )
    p = describe(est)
    rows = [list(r) for r in data["rewards"]]
    directed, scorable, s = naive.prepare(rows, list(data["weights"]), list(ro.names), nan_policy=p["nan_policy"], scheme=scheme)
    try:
        expected = naive.estimator(
            est.name, p, s, scorable, list(data["codes"]), directed, list(data["weights"]),
            list(data["length"]), list(data["baseline"]),
        )
    except ValueError:
        with pytest.raises(InputError):
            est(prepare(ro, make_scheme(scheme), (), p["nan_policy"]))
        return
    got = est(prepare(ro, make_scheme(scheme), (), p["nan_policy"]))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=f"{spec} under {profile}")


# a registered estimator that SPECS does not name (a new one) runs with its defaults
SPECS_AND_NEW = SPECS + [name for name in ESTIMATORS.names() if name not in {s.split(":")[0] for s in SPECS}]


@pytest.mark.parametrize("spec", SPECS_AND_NEW)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables())
def test_matches_naive(spec, data):
    check(spec, data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "gdpo", "advantage_sum", "gd2po", "ngrpo", "mc_grpo", "opo", "gpg", "dvao"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables())
def test_profiles_match_naive(profile, name, data):
    check(name, data, profile)


def test_precision_offset_1e8():
    """Shifting every reward by 1e8 leaves group-relative advantages unchanged."""
    rng = np.random.default_rng(1)
    r = rng.integers(0, 5, size=(400, 2)).astype(float) / 4
    codes = np.repeat(np.arange(50), 8)
    for spec in ["grpo", "rloo", "gdpo", "grpo:leave_one_out=true", "mc_grpo", "ngrpo:r_max=1"]:
        base = Rollouts.from_arrays(r, codes)
        shifted = Rollouts.from_arrays(r + 1e8, codes)
        est = make_estimator(spec)
        if spec.startswith("ngrpo"):
            est = make_estimator("ngrpo:r_max=200000001")
            a0 = make_estimator("ngrpo:r_max=1")(prepare(base, make_scheme()))
        else:
            a0 = est(prepare(base, make_scheme()))
        a1 = est(prepare(shifted, make_scheme()))
        np.testing.assert_allclose(a1, a0, atol=1e-6, err_msg=spec)


def test_near_constant_group():
    r = np.array([1.0, 1.00001, 1.0, 1.00001])
    ro = Rollouts.from_arrays(r, [0, 0, 0, 0])
    a = make_estimator("grpo:eps=0")(prepare(ro, make_scheme()))
    np.testing.assert_allclose(a, [-0.8660254, 0.8660254, -0.8660254, 0.8660254], rtol=1e-6)


def test_constant_groups_are_exactly_zero():
    r = np.array([0.1, 0.1, 0.1, 0.7, 0.7])
    for spec in ["grpo:eps=0", "grpo:eps=0,eps_mode=floor", "grpo:leave_one_out=true,eps=0", "rloo", "mc_grpo:eps=0", "g2rpo", "dr_grpo", "opo"]:
        batch = prepare(Rollouts.from_arrays(r, [0, 0, 0, 1, 1], length=[1, 2, 3, 4, 5]), make_scheme())
        assert np.all(make_estimator(spec)(batch) == 0.0), spec


def test_float32_input_is_accumulated_in_float64():
    r32 = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    a32 = make_estimator("grpo")(prepare(Rollouts.from_arrays(r32, [0, 0, 0, 0]), make_scheme()))
    a64 = make_estimator("grpo")(prepare(Rollouts.from_arrays(r32.astype(np.float64), [0, 0, 0, 0]), make_scheme()))
    assert a32.dtype == np.float64
    np.testing.assert_array_equal(a32, a64)


def test_unscorable_rows_get_zero_and_do_not_count():
    nan = float("nan")
    r = np.array([[1.0, nan], [0.0, 0.0], [nan, nan], [1.0, 1.0]])
    ro = Rollouts.from_arrays(r, [0, 0, 0, 0])
    batch = prepare(ro, make_scheme())
    assert batch.scorable.tolist() == [True, True, False, True]
    a = make_estimator("grpo:eps=0")(batch)
    assert a[2] == 0.0
    # s = 1, 0, 2 over three scorable rows: mean 1, std 1
    np.testing.assert_allclose(a[[0, 1, 3]], [0.0, -1.0, 1.0])


def test_every_registered_estimator_and_scheme_is_checked_against_a_naive_reference():
    """A new estimator or scheme is not done until the naive references (tests/naive.py)
    compute it; the property tests above then run every registered estimator."""
    from mocli import SCHEMES

    from .test_schemes import SCHEMES as SCHEME_CASES

    for name in ESTIMATORS.names():
        p = describe(make_estimator(name))
        try:
            naive.estimator(name, p, [1.0, 0.0], [True, True], [0, 0], [[1.0], [0.0]], [1.0], [3.0, 4.0], [0.5, 0.5])
        except KeyError:
            pytest.fail(f"estimator '{name}' has no naive reference in tests/naive.py")
    assert set(ESTIMATORS.names()) <= {spec.split(":")[0] for spec in SPECS_AND_NEW}
    assert set(SCHEMES.names()) - {"gated"} <= {spec.split(":")[0] for spec, _, _ in SCHEME_CASES}


def test_pref_grpo_hand_worked():
    """Scores 1, 2, 2, 3 win 0, 1.5, 1.5 and 3 of their 3 comparisons: w = 0, .5, .5, 1,
    whose z-score (ddof 1, eps 1e-6) is -/+ 0.5 / (sqrt(1/6) + 1e-6) at the ends; a
    spread-out group with the same order gets the same advantages; a singleton gets 0."""
    ro = Rollouts.from_arrays(np.array([[1.0], [2], [2], [3], [10], [20], [20], [300], [5]]),
                              np.array([0, 0, 0, 0, 1, 1, 1, 1, 2]))
    got = make_estimator("pref_grpo")(prepare(ro, make_scheme()))
    end = 0.5 / (np.sqrt(1 / 6) + 1e-6)
    np.testing.assert_allclose(got, [-end, 0, 0, end, -end, 0, 0, end, 0], rtol=1e-15, atol=1e-15)


def test_dgpo_hand_worked():
    """Group 1 solves 1 of 4 (accuracy 0.25), group 2 solves 3 of 4 (0.75), group 3 none
    (dead: s is constant). The two live groups share L = 2 by softmax(-acc / 2): the harder
    one weighs more. Each centred score is scaled by n_g over its group's sum of absolute
    deviations (1.5 in both), and with lengths the dead group's 200 tokens go to the 80 of
    the live ones (x 280 / 80)."""
    s = [1, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    length = [10] * 8 + [100, 100]
    ro = Rollouts.from_arrays(np.array(s, dtype=float), np.repeat([0, 1, 2], [4, 4, 2]), length=length)
    e1, e2 = np.exp(-0.25 / 2), np.exp(-0.75 / 2)
    v1, v2 = 2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)
    c = np.array([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75])
    want = np.concatenate([4 * c[:4] / (1.5 + 1e-4) * v1, 4 * c[4:] / (1.5 + 1e-4) * v2, [0, 0]])
    got = make_estimator("dgpo:length_balance=false")(prepare(ro, make_scheme()))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    got = make_estimator("dgpo")(prepare(ro, make_scheme()))
    np.testing.assert_allclose(got, want * 280 / 80, rtol=1e-14, atol=1e-15)
    assert v1 > v2  # the harder group weighs more
