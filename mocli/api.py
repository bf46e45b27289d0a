"""Library entry points that start from files: what each CLI command calls.

    >>> import mocli
    >>> table = mocli.advantages_table(["rollouts.parquet"], estimators=["grpo", "gdpo"])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import polars as pl

from . import config as config_mod
from .io import Loaded, load
from .pipeline import compute_advantages, resolve


@dataclass
class Settings:
    """Every option that shapes loading and computing, merged from the command line and
    the config file (the command line wins)."""

    group: str | None = None
    rewards: list[str] = field(default_factory=list)
    minimize: list[str] = field(default_factory=list)
    length: str | None = None
    baseline: str | None = None
    step: str | None = None
    estimators: list[str] = field(default_factory=list)
    scheme: str = "weighted_sum"
    gate: list[str] = field(default_factory=list)
    when: list[str] = field(default_factory=list)
    profile: str = "mocli"
    format: str | None = None
    check: list[Any] = field(default_factory=list)

    @classmethod
    def merge(cls, config: str | None = None, **cli: Any) -> "Settings":
        table = config_mod.read(config)
        out = cls()
        for f in fields(cls):
            value = cli.get(f.name)
            if value is None or value == [] or value == ():
                value = table.get(f.name)
            if value is not None:
                setattr(out, f.name, list(value) if isinstance(value, (list, tuple)) else value)
        return out

    def load(self, inputs: Sequence[str | os.PathLike], all_columns: bool = False) -> Loaded:
        return load(
            inputs, group=self.group, rewards=self.rewards or None, minimize=self.minimize,
            length=self.length, baseline=self.baseline, step=self.step, all_columns=all_columns,
        )


def advantages_table(
    inputs: Sequence[str | os.PathLike],
    settings: Settings | None = None,
    float32: bool = False,
    **options: Any,
) -> pl.DataFrame:
    """The input rows (every column) plus one ``adv:<label>`` column per estimator."""
    s = settings or Settings.merge(**options)
    specs = s.estimators or ["grpo"]
    resolve(specs, s.profile)  # fail on a bad spec before reading anything
    loaded = s.load(inputs, all_columns=True)
    adv = compute_advantages(
        loaded.rollouts, specs, scheme=s.scheme, conditions=s.when, gates=s.gate, profile=s.profile
    )
    dtype = np.float32 if float32 else np.float64
    cols = [pl.Series(f"adv:{label}", a.astype(dtype)) for label, a in adv.items()]
    return loaded.frame.with_columns(cols)
