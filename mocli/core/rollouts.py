"""The arrays every estimator, scheme and kernel sees.

:class:`Rollouts` is what loading produces: the reward matrix as read, objective names,
weights and directions, the group layout, and the optional per-row columns. :func:`prepare`
turns it into a :class:`Batch` for one NaN policy, one scheme and a set of conditions.
Names and shapes are the same everywhere: ``rewards (n, k)`` float64, ``weights (k,)``,
``codes (n,)`` dense group codes, ``order (n,)`` and ``offsets (g+1,)`` (CSR layout of the
ragged groups), ``adv (n,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import InputError, UsageError
from ..kernels.cpu import csr_from_codes
from ..kernels.cpu import in_group_order, take

NAN_POLICIES = ("omit", "zero", "raise")


@dataclass(frozen=True)
class Rollouts:
    """One rollout table as arrays (no DataFrame beyond :mod:`mocli.io`)."""

    rewards: np.ndarray  # (n, k) float64, as in the file; NaN = not applicable
    names: tuple[str, ...]
    weights: np.ndarray  # (k,)
    minimize: np.ndarray  # (k,) bool
    codes: np.ndarray  # (n,) int64 dense group codes, first-appearance order
    order: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (g+1,) int64
    length: np.ndarray | None = None
    baseline: np.ndarray | None = None
    # the training batch of each row (dense codes): batch-wide statistics are taken within
    # each batch, never across; None = the whole table is one batch. Groups never straddle
    # two batches (the group key includes the batch).
    batch: np.ndarray | None = None
    # the scalar the trainer trained on, as logged (verl's ``score``): used as ``s`` by the
    # default scheme instead of combining the objectives; None = combine them
    scalar: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_groups(self) -> int:
        return self.offsets.shape[0] - 1

    def batches(self) -> list[np.ndarray] | None:
        """The rows of each training batch (ascending), or None when the table is one batch."""
        if self.batch is None or self.n == 0:
            return None
        b = self.batch
        if b.min() == b.max():
            return None
        order = np.argsort(b, kind="stable")
        bounds = np.flatnonzero(np.diff(b[order])) + 1
        return np.split(order, bounds)

    @classmethod
    def from_arrays(
        cls,
        rewards,
        group,
        names: Sequence[str] | None = None,
        weights=None,
        minimize: Sequence[str] = (),
        length=None,
        baseline=None,
        batch=None,
    ) -> "Rollouts":
        """Build from plain arrays; ``group`` is any 1-d array of keys, or an ``(n, m)``
        array whose rows' tuples are the keys (factorised here, groups numbered in order of
        first appearance). ``batch``: the training batch of
        each row (any keys; batch-wide statistics are taken per batch, and a group key
        seen in two batches makes two groups)."""
        r = np.asarray(rewards, dtype=np.float64)
        if r.ndim == 1:
            r = r[:, None]
        k = r.shape[1]
        names = tuple(names) if names is not None else tuple(f"r{j}" for j in range(k))
        if len(names) != k:
            raise UsageError(f"{len(names)} names for {k} reward columns")
        w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
        codes, n_groups = dense_codes(np.asarray(group))
        batch_codes = None
        if batch is not None:
            batch_codes, n_batches = dense_codes(np.asarray(batch))
            if batch_codes.shape[0] != r.shape[0]:
                raise UsageError(f"batch has {batch_codes.shape[0]} keys for {r.shape[0]} rows")
            codes, n_groups = dense_codes(batch_codes * max(n_groups, 1) + codes)
        order, offsets = csr_from_codes(codes, n_groups)
        mins = np.array([nm in set(minimize) for nm in names], dtype=bool)
        as_col = lambda a: None if a is None else np.asarray(a, dtype=np.float64)
        return cls(r, names, w, mins, codes, order, offsets, as_col(length), as_col(baseline), batch_codes)

    def subset(self, mask: np.ndarray) -> "Rollouts":
        """The rows where ``mask`` is true (or the rows an index array names, in that
        order), groups renumbered: the table a separate run on those rows would load."""
        codes, n_groups = dense_codes(self.codes[mask])
        order, offsets = csr_from_codes(codes, n_groups)
        pick = lambda a: None if a is None else a[mask]
        return Rollouts(
            np.ascontiguousarray(self.rewards[mask]), self.names, self.weights, self.minimize,
            codes, order, offsets, pick(self.length), pick(self.baseline), pick(self.batch), pick(self.scalar),
        )

    def grouped(self) -> tuple["Rollouts", np.ndarray | None]:
        """The same table with its rows in group order (group ``j`` owns rows
        ``offsets[j]:offsets[j+1]``, file order within a group), and ``order``: row ``p``
        of the result is row ``order[p]`` here. None instead of ``order`` (and the table
        itself) when the rows already lie that way. Every per-group pass on the result
        reads memory front to back instead of jumping through ``order``."""
        if in_group_order(self.order):
            return self, None
        o = self.order
        g = self.n_groups
        pick = lambda a: None if a is None else take(a, o)
        return Rollouts(
            take(self.rewards, o), self.names, self.weights, self.minimize,
            np.repeat(np.arange(g, dtype=np.int64), np.diff(self.offsets)), np.arange(self.n, dtype=np.int64),
            self.offsets, pick(self.length), pick(self.baseline),
            None if self.batch is None else self.batch[o], pick(self.scalar),
        ), o


def in_file_order(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Per-row ``values`` in group order put back where ``order`` says each row came from
    (the order of :meth:`Rollouts.grouped` or :meth:`Batch.grouped`; None: they stay)."""
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def dense_codes(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense group codes numbered in order of first appearance. ``keys`` of shape ``(n, m)``:
    the tuple of a row's ``m`` keys is its key (several group columns)."""
    if keys.ndim == 2:
        codes, n = np.zeros(keys.shape[0], dtype=np.int64), 1
        for j in range(keys.shape[1]):
            column, m = dense_codes(keys[:, j])
            codes, n = dense_codes(codes * m + column)
        return codes, n
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)], int(first.shape[0])


# marks a batch that is its own group-order copy (a reference to itself in its cache
# would be a cycle, which keeps every array alive until the garbage collector runs)
_SELF = object()


@dataclass(frozen=True)
class Batch:
    """What an estimator's ``__call__`` receives."""

    rewards: np.ndarray  # (n, k) after NaN policy, conditions and directions
    names: tuple[str, ...]
    weights: np.ndarray
    scalar: np.ndarray  # (n,) the scheme's s; NaN on unscorable rows
    scorable: np.ndarray  # (n,) bool
    codes: np.ndarray
    order: np.ndarray
    offsets: np.ndarray
    length: np.ndarray | None = None
    baseline: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return self.rewards.shape[0]

    @property
    def weighted(self) -> np.ndarray:
        return self.weights != 0

    def grouped(self, with_rewards: bool = True) -> "Batch":
        """The same batch with its rows in group order: row ``p`` of the result is row
        ``order[p]`` here, so group ``j`` owns rows ``offsets[j]:offsets[j+1]`` (file order
        within the group) and every segment pass reads memory front to back instead of
        jumping through ``order``. The batch itself when its rows already lie that way.

        Built once and kept until :meth:`release`, so that every estimator run on the
        batch shares it. Without ``with_rewards`` the reward matrix is left out (an
        ``(n, 0)`` array); estimators that only read the score ``s`` never pay for it."""
        cached = self._cache.get("grouped")
        if cached is _SELF:
            cached = self
        elif cached is None:
            if in_group_order(self.order):
                cached = self
            else:
                o = self.order
                g = self.offsets.shape[0] - 1
                cached = Batch(
                    np.empty((self.n, 0)), self.names, self.weights,
                    take(self.scalar, o), take(self.scorable, o),
                    np.repeat(np.arange(g, dtype=np.int64), np.diff(self.offsets)),
                    np.arange(self.n, dtype=np.int64), self.offsets,
                    None if self.length is None else take(self.length, o),
                    None if self.baseline is None else take(self.baseline, o),
                )
            self._cache["grouped"] = _SELF if cached is self else cached
        if with_rewards and cached.rewards.shape[1] != self.rewards.shape[1]:
            cached = replace(cached, rewards=take(self.rewards, self.order), _cache={})
            self._cache["grouped"] = cached
        return cached

    def destination(self) -> np.ndarray | None:
        """Where row ``p`` of :meth:`grouped` goes back to (``order``), as the scatter to
        file order reads it: int32 when the rows allow (the random writes are bound by
        memory traffic, and the index is half of it). Kept with the group-order copy.
        None when the rows already lie in group order: row ``p`` stays at ``p``."""
        if self.grouped(False) is self:
            return None
        dest = self._cache.get("destination")
        if dest is None:
            dest = self.order.astype(np.int32) if self.n < 2**31 else self.order
            self._cache["destination"] = dest
        return dest

    def scratch(self, slot: str, dtype=np.float64) -> np.ndarray:
        """A per-row work array (``n`` rows of ``dtype``) kept with the batch until
        :meth:`release` under the name ``slot``, so that the estimators run on the batch
        reuse its memory: a fresh array costs the kernel's page faults and zeroing on first
        touch (about 10 ms of CPU time per 32 MB on the benchmark machine), which is as much
        as an objective kernel's own work. Its contents are whatever the last user left."""
        key = ("scratch", slot)
        a = self._cache.get(key)
        if a is None or a.dtype != np.dtype(dtype):
            a = self._cache[key] = np.empty(self.n, dtype=dtype)
        return a

    def release(self) -> None:
        """Drop the group-order copy built by :meth:`grouped` (and :meth:`destination`)
        and the :meth:`scratch` arrays."""
        for key in [k for k in self._cache if k in ("grouped", "destination") or k[0] == "scratch"]:
            del self._cache[key]


# magnitudes whose squares (variances, whitening) overflow float64 long before the values do
HUGE = 1e150


def largest_values(rewards: np.ndarray, names: Sequence[str]) -> str:
    """Which reward column holds the largest magnitude, for an error about arithmetic that
    overflowed (or a parameter that made it non-finite)."""
    with np.errstate(invalid="ignore"):
        tops = [float(np.nanmax(np.abs(rewards[:, k]))) if not np.isnan(rewards[:, k]).all() else 0.0
                for k in range(rewards.shape[1])]
    if not tops:
        return "check the reward values it needs"
    k = int(np.argmax(tops))
    if tops[k] > 1e150:
        return (f"reward column '{names[k]}' holds values up to {tops[k]:.3g} in magnitude, where squares and sums "
                "overflow float64; rescale it")
    return f"check the reward values it needs (largest magnitude: {tops[k]:.3g} in '{names[k]}')"


def check_finite(adv: np.ndarray, label: str, rollouts: "Rollouts") -> np.ndarray:
    """``adv`` if every advantage is finite, else an InputError: arithmetic overflowed."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.add.reduce(adv)) if adv.size else 0.0
    if np.isfinite(total):  # one pass, no temporaries: a NaN or inf anywhere makes the sum so
        return adv
    bad = ~np.isfinite(adv)
    if not bad.any():  # finite values whose sum overflows: as telling
        bad = np.abs(adv) > 1e300
    raise InputError(
        f"estimator '{label}' gave {int(bad.sum())} non-finite advantages (first row {int(np.flatnonzero(bad)[0]) if bad.any() else 0}): "
        + largest_values(rollouts.rewards, rollouts.names)
    )
