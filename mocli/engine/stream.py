"""The estimators over a table split into group-complete chunks (:mod:`mocli.io.chunks`).

Some estimators and schemes take batch-wide statistics (GDPO's batch z-score, whitening,
GPG's factor, Chebyshev's ideal point). A first pass over the chunks collects them, merged
(:class:`mocli.core.work.BatchStats`), in as many passes as they depend on one another; the
last pass computes every chunk's advantages with those whole-table statistics, so that they
equal the advantages of the table computed whole.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from ..core.rollouts import Rollouts
from ..core.work import BatchStats
from ..io.chunks import Chunk, Chunked
from ..kernels import CPU, Device
from .pipeline import run_estimators

Scopes = Callable[[Chunk], Iterator[tuple[Any, Rollouts]]]


def whole(chunk: Chunk) -> Iterator[tuple[Any, Rollouts]]:
    """The one scope of an unsliced run: the chunk's rows, under key None."""
    yield None, chunk.rollouts


def settle_statistics(chunked: Chunked, resolved, scheme, conds, scopes: Scopes = whole, device: Device = CPU,
                      by: str | None = None):
    """The batch-wide statistics of the whole table (and of every scope ``scopes(ro,
    frame)`` yields: slices of ``--by``), in as many passes over the chunks as they depend
    on one another (one for most estimators, none when nothing is batch-wide). Returns the
    statistics by scope key and whether any were needed."""
    stats: dict[str | None, BatchStats] = {}
    if chunked.plan.batch is not None:
        return stats, False  # each training batch lies whole in one chunk: its statistics are its own
    needed, first, run = True, True, list(resolved)
    while needed:
        for i, chunk in enumerate(chunked.chunks("batch statistics", by)):
            for key, sub in scopes(chunk):
                run_estimators(sub, run, scheme, conds, device=device, stats=stats.setdefault(key, BatchStats()))
            if i == 0 and first:
                # what the first chunk shows is what every chunk does: only the estimators
                # with a batch-wide step (or whose NaN policy's scheme has one) run again
                used = set().union(*(s.scopes for s in stats.values()))
                if not used:
                    break  # nothing batch-wide: every chunk stands alone
                run = [r for r in run if r.label in used or f"scheme:{r.estimator.nan_policy}" in used]
        first = False
        needed = any([s.settle() for s in stats.values()])
    return stats, any(s.known for s in stats.values())


def advantages_chunked(chunked: Chunked, resolved, scheme, conds, device: Device = CPU) -> dict[str, np.ndarray]:
    """Every estimator's advantages for a table split with ``row_index``, in input order
    (equal to computing them on the whole table)."""
    stats, two_pass = settle_statistics(chunked, resolved, scheme, conds, device=device)
    out = {r.label: np.empty(chunked.rows) for r in resolved}
    for chunk in chunked.chunks("computing advantages"):
        advs, _ = run_estimators(chunk.rollouts, resolved, scheme, conds, device=device,
                                 stats=stats[None] if two_pass else None)
        for label, a in advs.items():
            out[label][chunk.rows] = a
    return out
