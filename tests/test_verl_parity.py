"""`--profile verl` against verl's own advantage functions (skipped unless verl and torch
are importable; CI does not install them). Run with verl installed to check parity."""

from __future__ import annotations

import numpy as np
import pytest

ca = pytest.importorskip("verl.trainer.ppo.core_algos")
torch = pytest.importorskip("torch")

from mocli import Rollouts, compute_advantages  # noqa: E402


def make(seed: int):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=40)  # ragged, singletons included
    index = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(index)  # non-contiguous groups
    n = len(index)
    scores = rng.choice([0.0, 1.0, 0.5, 2.0], size=n) + rng.normal(0, 0.1, size=n) * (rng.random(n) < 0.5)
    length = rng.integers(1, 30, size=n)
    T = int(length.max())
    mask = torch.zeros((n, T), dtype=torch.float64)
    tok = torch.zeros((n, T), dtype=torch.float64)
    for i in range(n):
        mask[i, : length[i]] = 1
        tok[i, length[i] - 1] = scores[i]
    return index, scores, length, mask, tok, rng


def check(ours, theirs, index, name):
    """verl's singleton rule divides by float32 ``1.0 + 1e-6`` (= 1.00000095); everything
    else agrees to rounding. The vectorised variants compute in float32, and
    ``rloo_vectorized`` gives singletons 0 where the loop version keeps the raw score."""
    counts = np.bincount(index)[index]
    lone = counts == 1
    if name.endswith("_vec"):
        np.testing.assert_allclose(ours[~lone], theirs[~lone], rtol=1e-5, atol=1e-6, err_msg=name)
        return
    np.testing.assert_allclose(ours[~lone], theirs[~lone], rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours[lone], theirs[lone], rtol=1e-7, atol=1e-9, err_msg=name)


def seq(adv, mask):
    """verl returns token-level advantages; every valid token holds the row's value."""
    a = adv.numpy()
    return np.array([a[i, 0] for i in range(a.shape[0])])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verl_profile_matches_verl(seed):
    index, scores, length, mask, tok, rng = make(seed)
    ro = Rollouts.from_arrays(scores, index, length=length, baseline=rng.normal(size=len(index)))
    ours = compute_advantages(ro, ["grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "opo", "remax", "dr_grpo"], profile="verl")
    idx = index.astype(object)
    ref = {
        "grpo": ca.compute_grpo_outcome_advantage(tok.clone(), mask, idx)[0],
        "grpo_vec": ca.compute_grpo_vectorized_outcome_advantage(tok.clone(), mask, idx)[0],
        "dr_grpo": ca.compute_grpo_outcome_advantage(tok.clone(), mask, idx, norm_adv_by_std_in_grpo=False)[0],
        "rloo": ca.compute_rloo_outcome_advantage(tok.clone(), mask, idx)[0],
        "rloo_vec": ca.compute_rloo_vectorized_outcome_advantage(tok.clone(), mask, idx)[0],
        "reinforce_pp_baseline": ca.compute_reinforce_plus_plus_baseline_outcome_advantage(tok.clone(), mask, idx)[0],
        "opo": ca.compute_opo_outcome_advantage(tok.clone(), mask, idx)[0],
        "remax": ca.compute_remax_outcome_advantage(tok.clone(), torch.tensor(ro.baseline), mask)[0],
    }
    for name, r in ref.items():
        check(ours[name.replace("_vec", "")], seq(r, mask), index, name)
    # reinforce_pp whitens token returns (gamma = 1: every token holds the score)
    class Cfg(dict):
        gamma = 1.0

    rpp = ca.compute_reinforce_plus_plus_outcome_advantage(tok.clone(), mask, config=Cfg(gamma=1.0))[0]
    check(ours["reinforce_pp"], seq(rpp, mask), index, "reinforce_pp")


def test_verl_gdpo_matches_verl():
    index, scores, length, mask, tok, rng = make(5)
    n = len(index)
    comps = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n) / 2], axis=1).astype(np.float32).astype(np.float64)
    ro = Rollouts.from_arrays(comps, index, weights=[1.0, 0.5], length=length)
    ours = compute_advantages(ro, ["gdpo"], profile="verl")["gdpo"]
    toks = []
    for k in range(2):
        t = torch.zeros_like(mask)
        for i in range(n):
            t[i, length[i] - 1] = comps[i, k]
        toks.append(ca.compute_grpo_outcome_advantage(t, mask, index.astype(object))[0])
    summed = toks[0] + 0.5 * toks[1]
    import verl.utils.torch_functional as verl_F

    ref = verl_F.masked_whiten(summed, mask) * mask
    # the per-objective singleton quirk moves the batch whitening by ~1e-8 for every row
    np.testing.assert_allclose(ours, seq(ref, mask), rtol=2e-7, atol=1e-9)


def test_registered_mocli_estimator_in_verl():
    """docs/integrations.md: mocli as a registered verl advantage estimator."""
    import mocli.torch

    name = "mocli_gdpo_test"
    if name not in getattr(ca, "ADV_ESTIMATOR_REGISTRY", {}):
        @ca.register_adv_est(name)
        def mocli_adv(token_level_rewards, response_mask, index, config=None, **kwargs):
            scores = token_level_rewards.sum(dim=-1)
            adv = mocli.torch.advantages(scores, index, estimator="grpo", profile="verl")
            adv = adv.unsqueeze(-1) * response_mask
            return adv, adv

    index, scores, length, mask, tok, rng = make(7)
    fn = ca.get_adv_estimator_fn(name)
    ours = fn(token_level_rewards=tok.clone(), response_mask=mask, index=index.astype(object))[0]
    theirs = ca.compute_grpo_outcome_advantage(tok.clone(), mask, index.astype(object))[0]
    check(seq(ours, mask), seq(theirs, mask), index, "registered")
