"""Reward-combination schemes: K objectives per row -> one scalar ``s``.

A scheme is a frozen dataclass whose fields are its parameters, called as
``scheme(rewards, weights, names) -> s`` where ``rewards (n, k)`` already has the
conditions, the NaN policy and the directions (``--minimize``) applied. Only objectives
with a non-zero weight enter. Rows whose weighted objectives are all NaN are unscorable:
the pipeline masks them, whatever the scheme returns there.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..core.tally import Largest
from ..core.work import Work
from ..kernels.cpu import weighted_nansum
from ..errors import InputError, UsageError
from ..params import finite, param
from ..registry import Registry, suggest

SCHEMES: Registry[type] = Registry("scheme")

_OPS: dict[str, Callable] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_COND = re.compile(r"^\s*([^<>=!]+?)\s*(>=|<=|==|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``objective OP threshold``, evaluated on the values as they stand in the file
    (before ``--minimize`` negates a column). A NaN cell fails every constraint."""

    objective: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str, where: str = "--gate") -> "Constraint":
        m = _COND.match(text or "")
        if not m:
            raise UsageError(
                f"{where} '{text}' is not 'objective OP number' with OP one of >= > <= < =="
            )
        name, op, num = m.groups()
        return cls(name.strip(), op, finite(num, f"{where} '{text}': threshold"))

    def holds(self, column: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            ok = _OPS[self.op](column, self.threshold)
        return ok & ~np.isnan(column)

    def __str__(self) -> str:
        return f"{self.objective}{self.op}{self.threshold:g}"


@dataclass(frozen=True)
class Condition:
    """``objective:other OP threshold[:else]``: on rows where the constraint on ``other``
    fails, the objective's value is replaced by ``else_value`` (0.0 unless given; ``nan``
    makes the cell not applicable)."""

    objective: str
    when: Constraint
    else_value: float = 0.0

    @classmethod
    def parse(cls, text: str, where: str = "--when") -> "Condition":
        parts = (text or "").split(":")
        if len(parts) not in (2, 3) or not parts[0].strip():
            raise UsageError(
                f"{where} '{text}' is not 'objective:other OP number[:else]' "
                f"(e.g. 'length:correct>=1' or 'length:correct>=1:nan')"
            )
        else_value = 0.0
        if len(parts) == 3:
            else_value = finite(parts[2], f"{where} '{text}': else value", nan_ok=True)
        return cls(parts[0].strip(), Constraint.parse(parts[1], f"{where} '{text}': condition"), else_value)

    def __str__(self) -> str:
        tail = "" if self.else_value == 0.0 else f":{self.else_value:g}"
        return f"{self.objective}:{self.when}{tail}"


def column_index(names: Sequence[str], name: str, where: str) -> int:
    try:
        return list(names).index(name)
    except ValueError:
        raise UsageError(
            f"{where} names objective '{name}'{suggest(name, list(names))}; "
            f"objectives: {', '.join(names)}"
        ) from None


def apply_conditions(raw: np.ndarray, names: Sequence[str], conditions: Sequence[Condition]) -> np.ndarray:
    """Apply conditions simultaneously: every test reads the unconditioned values."""
    if not conditions:
        return raw
    out = raw.copy()
    for cond in conditions:
        k = column_index(names, cond.objective, f"condition '{cond}'")
        other = column_index(names, cond.when.objective, f"condition '{cond}'")
        fails = ~cond.when.holds(raw[:, other])
        out[fails, k] = cond.else_value
    return out


# ---------------------------------------------------------------------------------------
# schemes
# ---------------------------------------------------------------------------------------
class Scheme:
    """Base class: subclasses implement ``combine(r, w)`` on the weighted columns only."""

    name = "?"

    def __call__(self, rewards: np.ndarray, weights: np.ndarray, names: Sequence[str], raw: np.ndarray | None = None,
                 work: Work | None = None) -> np.ndarray:
        sel = weights != 0
        r = rewards if sel.all() else rewards[:, sel]  # combine never writes to r: no copy
        w = weights[sel]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return self.combine(r, w)

    def combine(self, r: np.ndarray, w: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def validate(self) -> None:
        pass


def _nonnegative(r: np.ndarray, scheme: str) -> None:
    if np.any(r < 0):
        raise InputError(
            f"scheme '{scheme}' needs every weighted reward >= 0, but a value of "
            f"{np.nanmin(r):g} occurs; use weighted_sum, or shift the column"
        )


@SCHEMES.register
@dataclass(frozen=True)
class WeightedSum(Scheme):
    """``s = sum_k w_k r_k`` over the non-NaN weighted objectives (TRL ``reward_weights``
    with nansum): each product rounded, then added in column order, as TRL's
    ``(rewards * weights).nansum(dim=1)`` (rows without a valid cell are not scored)."""

    name = "weighted_sum"
    source = "TRL reward_weights + nansum"

    def combine(self, r, w):
        return weighted_nansum(r, w)


@SCHEMES.register
@dataclass(frozen=True)
class WeightedMean(Scheme):
    """``s = sum_k w_k r_k / sum_{k valid} w_k``: the weights of NaN cells drop out of
    the denominator."""

    name = "weighted_mean"
    source = "weighted average"

    def combine(self, r, w):
        valid = ~np.isnan(r)
        num = weighted_nansum(r, w)  # as weighted_sum
        den = valid @ w
        bad = (den == 0) & valid.any(axis=1)
        if bad.any():
            raise InputError(
                f"scheme 'weighted_mean': the weights of the valid objectives sum to 0 on "
                f"{int(bad.sum())} rows; use weights that do not cancel"
            )
        return num / den


@SCHEMES.register
@dataclass(frozen=True)
class Min(Scheme):
    """``s = min_k r_k``: the worst weighted objective (worst-case optimisation)."""

    name = "min"
    source = "Coste et al., reward-model ensembles (WCO)"

    def combine(self, r, w):
        return np.nanmin(np.where(np.isnan(r), np.inf, r), axis=1)


@SCHEMES.register
@dataclass(frozen=True)
class UWO(Scheme):
    """``s = mean_k r_k - lam * var_k r_k`` with the population variance across the valid
    weighted objectives (uncertainty-weighted optimisation)."""

    name = "uwo"
    source = "Coste et al., reward-model ensembles (UWO)"
    lam: float = param(0.1, "penalty on the variance across objectives")

    def combine(self, r, w):
        valid = ~np.isnan(r)
        n = valid.sum(axis=1)
        mean = np.where(valid, r, 0.0).sum(axis=1) / np.maximum(n, 1)
        var = np.where(valid, (r - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(n, 1)
        return mean - self.lam * var


@SCHEMES.register
@dataclass(frozen=True)
class Chebyshev(Scheme):
    """``s = -( max_k w_k (z_k - r_k) + rho * sum_k (z_k - r_k) )`` (augmented
    Tchebycheff). The ideal point ``z`` defaults to each column's maximum over the training
    batch (the whole table when there is one); set ``ideal`` to one number for every objective or to ``a;b;c`` in objective
    order (all objectives, weighted or not)."""

    name = "chebyshev"
    source = "augmented Tchebycheff scalarisation; MOCHA"
    ideal: str = param("max", "ideal point: 'max' (column maxima), a number, or 'a;b;...' per objective")
    rho: float = param(0.0, "weight of the augmentation term")

    def __call__(self, rewards, weights, names, raw=None, work=None):
        k = rewards.shape[1]
        if self.ideal == "max":
            has = ~np.isnan(rewards)
            local = np.array([np.max(rewards[has[:, j], j]) if has[:, j].any() else -np.inf for j in range(k)])
            work = Work() if work is None else work
            top = work.tally("ideal", Largest(local)).x  # column maxima of the whole batch
            z = np.where(np.isinf(top), 0.0, top)
        else:
            parts = self.ideal.split(";")
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                raise UsageError(
                    f"parameter 'ideal' of scheme 'chebyshev' must be 'max', a number or "
                    f"'a;b;...', not '{self.ideal}'"
                ) from None
            if not np.all(np.isfinite(vals)):
                raise UsageError(f"parameter 'ideal' of scheme 'chebyshev' must hold finite numbers, not '{self.ideal}'")
            if len(vals) == 1:
                vals = vals * k
            if len(vals) != k:
                raise UsageError(
                    f"parameter 'ideal' of scheme 'chebyshev' has {len(vals)} values for "
                    f"{k} objectives ({', '.join(names)})"
                )
            z = np.array(vals)
        sel = weights != 0
        r = rewards[:, sel]
        w = weights[sel]
        gap = z[sel] - r
        with np.errstate(invalid="ignore"):
            worst = np.max(np.where(np.isnan(gap), -np.inf, w * gap), axis=1)
            total = np.where(np.isnan(gap), 0.0, gap).sum(axis=1)
        return -(worst + self.rho * total)


@SCHEMES.register
@dataclass(frozen=True)
class PowerMean(Scheme):
    """``s = (sum_k w_k r_k^p / sum_k w_k)^(1/p)`` over the valid weighted objectives;
    ``p = 0`` is the weighted geometric mean. Needs ``r_k >= 0``."""

    name = "power_mean"
    source = "generalised (Hoelder) mean"
    p: float = param(0.5, "exponent; 0 = weighted geometric mean")

    def combine(self, r, w):
        _nonnegative(r, self.name)
        valid = ~np.isnan(r)
        den = valid @ w
        if self.p == 0:
            logs = np.where(valid, np.log(np.where(valid, r, 1.0)), 0.0)
            return np.exp((logs @ w) / den)
        powered = np.where(valid, np.where(valid, r, 0.0) ** self.p, 0.0)
        return ((powered @ w) / den) ** (1.0 / self.p)


@SCHEMES.register
@dataclass(frozen=True)
class Product(Scheme):
    """``s = prod_k r_k^(w_k)`` over the valid weighted objectives (multiplicative
    rewards such as correctness x efficiency). Needs ``r_k >= 0``."""

    name = "product"
    source = "multiplicative rewards"

    def combine(self, r, w):
        _nonnegative(r, self.name)
        powered = np.where(np.isnan(r), 1.0, np.where(np.isnan(r), 1.0, r) ** w)
        return np.prod(powered, axis=1)


@SCHEMES.register
@dataclass(frozen=True)
class Gated(Scheme):
    """``s = sum_{k in B} w_k r_k`` when every constraint holds, else ``fail_value``.
    ``B`` is the weighted objectives not named in a constraint. Constraints read the values
    as they stand in the file; a constraint on a NaN cell fails. ``--gate 'format>=1'``
    adds a constraint."""

    name = "gated"
    source = "bottom-line gates (SearchLLM, CGPO)"
    constraints: str = param("", "constraints 'obj OP number' separated by ';' (also --gate)")
    fail_value: float = param(0.0, "score of a row that fails a constraint")

    def parsed(self) -> list[Constraint]:
        return [Constraint.parse(c, "gated constraint") for c in self.constraints.split(";") if c.strip()]

    def validate(self) -> None:
        self.parsed()

    def __call__(self, rewards, weights, names, raw=None, work=None):
        raw = rewards if raw is None else raw
        gates = self.parsed()
        ok = np.ones(rewards.shape[0], dtype=bool)
        gated = set()
        for c in gates:
            k = column_index(names, c.objective, f"gate '{c}'")
            gated.add(k)
            ok &= c.holds(raw[:, k])
        sel = np.array([weights[k] != 0 and k not in gated for k in range(len(names))], dtype=bool)
        r = rewards[:, sel]
        s = np.where(np.isnan(r), 0.0, r) @ weights[sel]
        return np.where(ok, s, self.fail_value)

