"""The estimator contract: a frozen dataclass whose fields are its parameters, called as
``estimator(batch, work) -> adv`` (``work``: the device and the run's batch statistics,
:class:`mocli.core.work.Work`; a plain CPU one when left out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..core.rollouts import NAN_POLICIES, Batch
from ..errors import UsageError
from ..kernels.cpu import put_finished
from ..params import param
from ..registry import Registry
from ..core.work import Placement, Work
from .normalise import EPS_MODES, SINGLETON

ESTIMATORS: Registry[type] = Registry("estimator", entry_point_group="mocli.estimators")


@dataclass(frozen=True)
class Estimator:
    """Base of every estimator. Subclasses set ``name``, ``source`` and implement
    ``compute(batch)``; ``__call__`` zeroes unscorable rows and applies ``clip``."""

    name: ClassVar[str] = "?"
    source: ClassVar[str] = ""
    decoupled: ClassVar[bool] = False
    # reads ``batch.rewards`` (the per-objective matrix), not only the score ``s``
    reads_rewards: ClassVar[bool] = True
    # takes group statistics (then ``compute`` runs on the rows in group order)
    by_group: ClassVar[bool] = True

    nan_policy: str = param("omit", "NaN cells: omit (skip), zero (NaN -> 0 first), raise", choices=NAN_POLICIES)
    clip: float = param(0.0, "clip advantages to [-clip, clip] at the end; 0 = off")

    def compute(self, batch: Batch, work: Work) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: Batch, work: Work | None = None) -> np.ndarray:
        work = Work() if work is None else work
        if not self.by_group:  # row by row: file order as it is
            return put_finished(self.compute(batch, work.at(None, None)), batch.scorable, self.clip, None)
        # compute on the rows in group order (sequential memory access; built once per
        # batch), then scatter back to file order with the zeroing and clipping fused in;
        # a one-pass last step writes file order itself (zeros included) into the placement
        grouped = batch.grouped(self.reads_rewards)
        dest = batch.destination()  # None: in group order already
        placement = Placement(dest)
        adv = self.compute(grouped, work.at(batch, placement))
        if adv is placement.result:
            return np.clip(adv, -self.clip, self.clip, out=adv) if self.clip > 0 else adv
        return put_finished(adv, grouped.scorable, self.clip, dest)

    def validate(self) -> None:
        if self.clip < 0:
            raise UsageError(f"parameter 'clip' of estimator '{self.name}' must be >= 0")
        eps = getattr(self, "eps", 0.0)
        if eps < 0:
            raise UsageError(f"parameter 'eps' of estimator '{self.name}' must be >= 0, not {eps:g}")

    def needs(self, column: str, batch: Batch, why: str = "") -> np.ndarray:
        value = getattr(batch, column)
        if value is None:
            raise UsageError(
                f"estimator '{self.name}'{why} needs a {column} column: pass --{column} COL"
            )
        return value


@dataclass(frozen=True)
class Scaled(Estimator):
    """Adds the shared scale parameters."""

    eps: float = param(1e-6, "stabiliser of the scale")
    eps_mode: str = param("add", "add: sigma+eps; floor: max(sigma, eps); skip_zero: sigma+eps where sigma>0, else unscaled", choices=EPS_MODES)
    ddof: int = param(1, "1 = unbiased (Bessel) std, 0 = population", choices=("0", "1"))


@dataclass(frozen=True)
class Grouped(Estimator):
    """Adds the singleton policy."""

    singleton: str = param("zero", "group with one scorable row: zero, or raw (mean 0, std 1; verl legacy)", choices=SINGLETON)


@dataclass(frozen=True)
class GroupScaled(Scaled, Grouped):
    """All shared parameters: eps, eps_mode, ddof, singleton, nan_policy."""
