"""Real third-party rollouts from ../shared/data/real (skipped when absent)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mocli import compute_advantages, load


@pytest.mark.parametrize("run", ["no_baseline", "masked_mean"])
def test_grpo_reproduces_the_logged_advantage(real_data, run):
    """The trainer used (r - mean) / (unbiased std + 1e-6); its log is float32."""
    path = real_data / "grpo-math-r1zero" / f"{run}.jsonl"
    loaded = load([path], group="group_id", rewards=["reward"])
    adv = compute_advantages(loaded.rollouts, ["grpo"])["grpo"]
    logged = pl.read_ndjson(path)["advantage"].to_numpy()
    assert np.max(np.abs(adv - logged)) < 1e-6
    # a different eps is visible: TRL's 1e-4 moves advantages by far more than the log's rounding
    trl = compute_advantages(loaded.rollouts, ["grpo"], profile="trl")["grpo"]
    assert np.max(np.abs(trl - logged)) > 1e-5


def test_mixed_scale_human_ratings_load_and_decouple(real_data):
    path = real_data / "unieval-topical-chat" / "topical_chat.jsonl"
    cols = ["understandability", "naturalness", "coherence", "engagingness", "groundedness", "overall"]
    loaded = load([path], group="group_id", rewards=cols)
    assert loaded.rollouts.n_groups == 60
    out = compute_advantages(loaded.rollouts, ["grpo", "gdpo", "dvao", "gd2po"])
    for a in out.values():
        assert np.isfinite(a).all()
    # gdpo is batch-whitened: unit population-ish scale over the table
    assert abs(out["gdpo"].std(ddof=1) - 1.0) < 1e-3
