"""Profiles: parameter defaults that make mocli compute what a training framework feeds
its loss. A profile's ``defaults`` apply to every estimator that has the field; its
``overrides`` to one estimator. Parameters the user writes in a spec always win."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .registry import Registry

PROFILES: Registry["Profile"] = Registry("profile")


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    source: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def defaults_for(self, estimator: str) -> dict[str, Any]:
        out = dict(self.defaults)
        out.update(self.overrides.get(estimator, {}))
        return out


def _add(profile: Profile) -> None:
    PROFILES.register(profile)


_BASE = {"eps": 1e-6, "eps_mode": "add", "ddof": 1, "singleton": "zero", "nan_policy": "omit"}

_add(Profile(
    "mocli",
    "eps 1e-6 added to the std, unbiased std, singletons 0, NaN cells omitted; gdpo "
    "batch z-score with eps 1e-6",
    "mocli's own defaults (ESTIMATORS.md)",
    dict(_BASE),
))
_TRL = {**_BASE, "eps": 1e-4}
_add(Profile(
    "trl",
    "TRL >= 1.6 GRPOTrainer/RLOOTrainer: eps 1e-4 (group and batch), unbiased std, "
    "singletons 0, NaN omitted; grpo's scale is TRL's scale_rewards; gdpo sequence-level",
    "huggingface/trl grpo_trainer.py, rloo_trainer.py",
    _TRL,
))
_add(Profile(
    "trl_gdpo_fork",
    "as trl, but gdpo turns NaN into 0 before anything (NaN cells enter the statistics)",
    "NVlabs GDPO repository (TRL fork)",
    _TRL,
    {"gdpo": {"nan_policy": "zero"}},
))
_add(Profile(
    "verl",
    "eps 1e-6 added, unbiased std, singleton raw (mean 0, std 1); gdpo = per-objective "
    "grpo, weighted sum, token-weighted whitening (needs --length; as a default estimator "
    "on a table without lengths it runs over rows, labelled gdpo:token_weighted=false, with "
    "a warning); rloo keeps a singleton's raw score; reinforce_pp* token-weighted",
    "volcengine/verl trainer/ppo/core_algos.py",
    {**_BASE, "singleton": "raw"},
    {
        "gdpo": {"token_weighted": True},
        "reinforce_pp": {"token_weighted": True},
        "reinforce_pp_baseline": {"token_weighted": True},
    },
))
_CLIP = {"clip": 10.0}
_add(Profile(
    "openrlhf",
    "eps 1e-9 added, unbiased std; grpo, rloo, dr_grpo and reinforce_pp_baseline clipped "
    "to [-10, 10]; reinforce_pp_baseline whitening biased (ddof 0), token-weighted, "
    "rsqrt(clamp(var, 1e-8))",
    "OpenRLHF experience_maker.py",
    {**_BASE, "eps": 1e-9},
    {
        "grpo": _CLIP,
        "rloo": _CLIP,
        "dr_grpo": _CLIP,
        "reinforce_pp_baseline": {**_CLIP, "ddof": 0, "token_weighted": True, "eps_mode": "floor"},
    },
))
_add(Profile(
    "nemo_rl",
    "leave-one-out baseline and leave-one-out (unbiased) std, eps 1e-6 in skip_zero mode; "
    "gdpo: leave-one-out per objective, batch step with no eps (centre only when std = 0)",
    "NVIDIA-NeMo/RL nemo_rl/algorithms/grpo.py, utils.py",
    {**_BASE, "eps_mode": "skip_zero", "leave_one_out": True},
    {"gdpo": {"eps_batch": 0.0}},
))
