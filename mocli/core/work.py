"""What an estimator works with besides its rows, passed to it explicitly.

A :class:`Work` carries the device the run computes on, the batch whose scratch arrays the
estimator may use, where its last step may write the caller's result (:class:`Placement`),
and the batch-wide statistics of a table streamed in chunks (:class:`BatchStats`), keyed by
the scope (an estimator's label, or ``scheme:<policy>``) and the statistic's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..kernels import CPU, Device
from .tally import Tally, merge


@dataclass
class Placement:
    """Where an estimator's last step may write its rows straight in the caller's order,
    so that no separate pass puts them back: row ``p`` of the group-order rows goes to
    ``dest[p]`` (None: it stays at ``p``, the rows already lie in group order). The step
    that writes there records its array in ``result``."""

    dest: np.ndarray | None
    result: np.ndarray | None = None

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Where the group-order rows ``positions`` belong in the result."""
        return positions if self.dest is None else self.dest[positions]

    def put(self, out: np.ndarray) -> np.ndarray:
        """Record ``out`` (already in the caller's order) as the estimator's result."""
        self.result = out
        return out


@dataclass
class BatchStats:
    """The batch-wide statistics of a table processed in group-complete chunks.

    A pass over the chunks records each statistic it does not know yet (merged over the
    chunks) and uses the known ones in place of the chunk's own. A statistic computed after
    one that was still unknown in the same scope (or after an unknown one of the scheme,
    which every estimator depends on) rests on a chunk-local value, so it is not recorded:
    ``incomplete`` asks for another pass. Once a pass leaves nothing incomplete, every
    chunk's advantages equal the ones computed on the whole table at once."""

    known: dict[tuple[str, str], Tally] = field(default_factory=dict)
    pending: dict[tuple[str, str], Tally] = field(default_factory=dict)
    incomplete: bool = False
    # the scopes (estimator labels, "scheme:<policy>") that took any batch-wide step
    scopes: set[str] = field(default_factory=set)
    scheme_unknown: bool = False

    def start_chunk(self) -> None:
        """A new chunk: its scheme has not yet met an unknown statistic."""
        self.scheme_unknown = False

    def settle(self) -> bool:
        """End a pass: what was recorded becomes known. True when another pass is needed."""
        self.known.update(self.pending)
        self.pending = {}
        again, self.incomplete = self.incomplete, False
        return again


@dataclass
class Work:
    """The explicit state of one estimator (or scheme) call; see the module docstring."""

    device: Device = CPU
    stats: BatchStats | None = None
    scope: str = ""
    # the batch whose scratch arrays the call may use (the batch an estimator is called on)
    pool: Any = None
    # where the last step may write the caller's result; None outside an estimator call
    placement: Placement | None = None
    # a statistic of this scope was still unknown when taken (streaming)
    _unknown: bool = False

    def scoped(self, scope: str) -> "Work":
        """The same device and statistics for another scope."""
        return Work(self.device, self.stats, scope)

    def at(self, pool: Any, placement: Placement | None) -> "Work":
        """This work for one estimator call: scratch arrays from ``pool``, the last step
        writing to ``placement``."""
        return replace(self, pool=pool, placement=placement)

    def scratch(self, slot: str, n: int, dtype=np.float64) -> np.ndarray:
        """A per-row work array for a step whose result the estimator consumes itself
        (never its returned advantages): the pool's scratch array ``slot`` (see
        :meth:`mocli.core.rollouts.Batch.scratch`), shared by every estimator run on them,
        else a fresh one. The step writes every row."""
        if self.pool is None or self.pool.n != n:
            return np.empty(n, dtype=dtype)
        return self.pool.scratch(slot, dtype)

    def tally(self, name: str, local: Any) -> Any:
        """The statistic ``name`` of the whole batch: ``local`` itself on a table in
        memory, the merge over every chunk when streaming (see :class:`BatchStats`)."""
        stats = self.stats
        if stats is None:
            return local
        key = (self.scope, name)
        stats.scopes.add(self.scope)
        if key in stats.known:
            return stats.known[key]
        scheme = self.scope.startswith("scheme:")
        if self._unknown or (stats.scheme_unknown and not scheme):
            stats.incomplete = True
        else:
            stats.pending[key] = merge(stats.pending.get(key), local)
        self._unknown = True
        if scheme:
            stats.scheme_unknown = True
        return local
