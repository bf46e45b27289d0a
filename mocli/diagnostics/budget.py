"""The rollout budget (DIAGNOSTICS.md ``budget``): how many rollouts per prompt keep groups
from giving no gradient. Estimator-independent: it reads only each live group's size and
how many of its rows succeed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.rollouts import Batch, Rollouts
from ..core.tally import Tally, num, rate
from ..errors import UsageError
from ..kernels import Device
from ..params import finite
from ..schemes import Constraint, column_index

SIZES = (2, 4, 8, 16, 32, 64)  # the group sizes the expected zero-variance rate is given for
SEARCH = tuple(2 ** k for k in range(1, 11))  # the sizes group_size_for_target tries, 2 .. 1024


@dataclass(frozen=True)
class BudgetRule:
    """What a success is (``success``: a constraint on an objective as it stands in the
    file; None: the first weighted objective at its best value over the table, the largest,
    or the least for a ``--minimize`` objective) and the zero-variance rate to aim for."""

    success: Constraint | None = None
    target: float = 0.1

    @classmethod
    def parse(cls, success: str | None, target: Any = None) -> "BudgetRule":
        rule = Constraint.parse(success, "--success") if success else None
        t = 0.1 if target is None else finite(str(target), "--budget-target")
        if not 0 < t < 1:
            raise UsageError(f"--budget-target must be a rate between 0 and 1 (exclusive), not {target}")
        return cls(rule, t)


@dataclass
class Budget(Tally):
    """Each live group's scorable rows and successes; with the default condition the
    successes are its rows at its own best value, and only the groups whose best is the
    table's best keep them (known once every chunk is in)."""

    sizes: np.ndarray
    wins: np.ndarray
    best: np.ndarray | None  # the default condition: each group's best value, in the direction of improvement
    objective: str
    condition: str
    target: float
    sign: float = 1.0  # -1: the objective is minimised (``best`` holds its values negated)

    def merge(self, other):
        best = None if self.best is None else np.concatenate([self.best, other.best])
        return Budget(np.concatenate([self.sizes, other.sizes]), np.concatenate([self.wins, other.wins]), best,
                      self.objective, self.condition, self.target, self.sign)

    def value(self) -> dict[str, Any]:
        n = self.sizes.shape[0]
        condition = self.condition
        wins = self.wins
        if self.best is not None:
            top = float(self.best.max()) if n else float("nan")
            wins = np.where(self.best == top, wins, 0.0)
            condition = f"{condition} ({self.sign * top + 0.0:g})" if np.isfinite(top) else condition  # + 0.0: no "-0"
        p = (wins + 0.5) / (self.sizes + 1.0)
        expected = {N: float(np.mean(p ** N + (1 - p) ** N)) if n else None for N in SEARCH}
        enough = next((N for N in SEARCH if expected[N] is not None and expected[N] <= self.target), None)
        return {
            "objective": self.objective,
            "success": condition,
            "target": self.target,
            "live_groups": int(n),
            "observed_zero_variance_rate": rate(((wins == 0) | (wins == self.sizes)).sum(), n),
            "zero_variance_rate": {str(N): num(expected[N]) if n else None for N in SIZES},
            "group_size_for_target": enough,
            "hopeless_group_rate": rate((wins == 0).sum(), n),
            "solved_group_rate": rate((wins == self.sizes).sum(), n),
        }


def budget(rollouts: Rollouts, batch: Batch, count: np.ndarray, live_group: np.ndarray, rule: BudgetRule,
           device: Device) -> Budget:
    """The budget tally of one group-complete chunk: ``count`` is each group's scorable
    rows and ``live_group`` the groups with two or more."""
    codes, sc = batch.codes, batch.scorable
    g = count.shape[0]
    names = list(rollouts.names)
    if rule.success is not None:
        k = column_index(names, rule.success.objective, f"--success '{rule.success}'")
        ok = rule.success.holds(rollouts.rewards[:, k]) & sc
        wins = np.bincount(codes, weights=ok.astype(np.float64), minlength=g)
        return Budget(count[live_group].astype(np.float64), wins[live_group], None, names[k], str(rule.success), rule.target)
    weighted = np.flatnonzero(rollouts.weights != 0)
    k = int(weighted[0]) if weighted.size else 0
    sign = -1.0 if rollouts.minimize[k] else 1.0
    x = sign * rollouts.rewards[:, k]
    valid = sc & ~np.isnan(x)
    _, hi = device.seg_min_max(np.ascontiguousarray(np.where(valid, x, 0.0)), valid, batch.order, batch.offsets)
    wins = np.bincount(codes, weights=(valid & (x == hi[codes])).astype(np.float64), minlength=g)
    side = "least" if sign < 0 else "largest"
    return Budget(count[live_group].astype(np.float64), wins[live_group], hi[live_group], names[k],
                  f"{names[k]} at its {side} value", rule.target, sign)
