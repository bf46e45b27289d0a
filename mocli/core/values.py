"""Exact quantiles and distinct counts over values that may not fit in memory.

:class:`Values` holds one column's values across chunks. In memory (the default) it keeps
the arrays and answers with ``np.quantile`` and a sort, or, asked for both at once, from
one sort (the order statistics ``np.quantile``'s linear method interpolates between).
Given a :class:`Spill` (see :func:`spilling`), every chunk's values are sorted and appended
to a temporary file as a run, and the answers come from a block-wise k-way merge of the
runs, reading at most ``block`` values of each run at a time: the same order statistics,
so the same numbers.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

REL = 1e-9

class Spill:
    """An append-only file of sorted float64 runs."""

    def __init__(self, folder: str, block: int):
        fd, self.path = tempfile.mkstemp(prefix="values-", suffix=".f64", dir=folder)
        os.close(fd)
        self.file = open(self.path, "r+b")
        self.end = 0
        self.block = block

    def write(self, sorted_values: np.ndarray) -> tuple[int, int]:
        start = self.end
        self.file.seek(start * 8)
        self.file.write(np.ascontiguousarray(sorted_values, dtype=np.float64).tobytes())
        self.end += sorted_values.shape[0]
        return start, sorted_values.shape[0]

    def read(self, start: int, count: int) -> np.ndarray:
        self.file.flush()
        self.file.seek(start * 8)
        return np.frombuffer(self.file.read(count * 8), dtype=np.float64)

    def close(self) -> None:
        self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


@contextlib.contextmanager
def spilling(folder: str, block: int = 1 << 16) -> Iterator[Spill]:
    """A temporary file in ``folder`` for the :class:`Values` made with it, removed after
    the block."""
    spill = Spill(folder, block)
    try:
        yield spill
    finally:
        spill.close()


@dataclass
class Values:
    arrays: list[np.ndarray] = field(default_factory=list)  # in memory
    runs: list[tuple[int, int]] = field(default_factory=list)  # sorted runs in ``spill``
    spill: Spill | None = None
    n: int = 0
    top: float = 0.0  # max |value|

    @classmethod
    def of(cls, v: np.ndarray, spill: Spill | None = None) -> "Values":
        """The values ``v``; sorted into ``spill`` when given, else kept in memory."""
        v = np.asarray(v, dtype=np.float64)
        top = float(np.abs(v).max()) if v.size else 0.0
        if spill is None or v.size == 0:
            return cls([v] if v.size else [], [], None, int(v.size), top)
        return cls([], [spill.write(np.sort(v))], spill, int(v.size), top)

    def merge(self, other: "Values") -> "Values":
        return Values(
            self.arrays + other.arrays, self.runs + other.runs, self.spill or other.spill,
            self.n + other.n, max(self.top, other.top),
        )

    # -- answers ----------------------------------------------------------------------
    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """numpy's default (linear) quantiles of all the values."""
        if self.n == 0:
            return [math.nan] * len(qs)
        if not self.runs:
            return [float(x) for x in np.quantile(np.concatenate(self.arrays), qs)]
        wanted = {}
        for q in qs:
            lo, hi, gamma = _positions(self.n, q)
            wanted[lo] = wanted[hi] = None
        at = sorted(wanted)
        k = 0
        for start, block in self._sorted_blocks():
            while k < len(at) and at[k] < start + block.shape[0]:
                wanted[at[k]] = float(block[at[k] - start])
                k += 1
            if k == len(at):
                break
        out = []
        for q in qs:
            lo, hi, gamma = _positions(self.n, q)
            out.append(_lerp(wanted[lo], wanted[hi], gamma))
        return out

    def quantiles_and_distinct(self, qs: Sequence[float]) -> tuple[list[float], int]:
        """:meth:`quantiles` and :meth:`distinct` together; in memory from one sort of the
        values (the order statistics numpy's linear method picks, the same numbers)."""
        if self.n == 0 or self.runs:
            return self.quantiles(qs), self.distinct()
        v = np.sort(np.concatenate(self.arrays))
        out = []
        for q in qs:
            lo, hi, gamma = _positions(self.n, q)
            out.append(_lerp(float(v[lo]), float(v[hi]), gamma))
        return out, _distinct_sorted(v, REL * max(1.0, self.top))

    def distinct(self) -> int:
        """Distinct values: sorted gaps larger than ``1e-9 * max(1, max |value|)``, plus one."""
        if self.n == 0:
            return 0
        if not self.runs:
            return _distinct_sorted(np.sort(np.concatenate(self.arrays)), REL * max(1.0, self.top))
        tol = REL * max(1.0, self.top)
        count = 1
        last = None
        for _, block in self._sorted_blocks():
            if last is not None:
                count += int(block[0] - last > tol)
            count += int(np.count_nonzero(np.diff(block) > tol))
            last = block[-1]
        return count

    def _sorted_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """The values in ascending order, as ``(position of the first, block)`` pairs: each
        round takes from every run what lies at or below the smallest of the runs' buffered
        maxima, so everything taken precedes whatever is still unread."""
        spill = self.spill
        assert spill is not None
        step = max(1024, spill.block // max(1, len(self.runs)))
        cursors = [_Cursor(spill, start, count, step) for start, count in self.runs]
        cursors += [_Cursor(None, 0, 0, 0, np.sort(a)) for a in self.arrays]
        pos = 0
        while True:
            live = [c for c in cursors if c.buffer.shape[0]]
            if not live:
                return
            cut = min(c.buffer[-1] for c in live)
            block = np.sort(np.concatenate([c.take(cut) for c in live]), kind="mergesort")
            yield pos, block
            pos += block.shape[0]


class _Cursor:
    """A sorted run read ``step`` values at a time (or an array already in memory)."""

    def __init__(self, spill, start, count, step, buffer=None):
        self.spill, self.next, self.end, self.step = spill, start, start + count, step
        self.buffer = buffer if buffer is not None else np.zeros(0)
        self._refill()

    def _refill(self):
        if self.buffer.shape[0] == 0 and self.spill is not None and self.next < self.end:
            take = min(self.step, self.end - self.next)
            self.buffer = self.spill.read(self.next, take)
            self.next += take

    def take(self, cut: float) -> np.ndarray:
        i = int(np.searchsorted(self.buffer, cut, side="right"))
        out, self.buffer = self.buffer[:i], self.buffer[i:]
        self._refill()
        return out


def _distinct_sorted(v: np.ndarray, tol: float) -> int:
    """Distinct values of a sorted array: gaps larger than ``tol``, plus one."""
    return int(1 + np.count_nonzero(np.diff(v) > tol))


def _positions(n: int, q: float) -> tuple[int, int, float]:
    """The two order statistics and the weight numpy's linear method interpolates with."""
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    if virtual >= n - 1:
        return n - 1, n - 1, virtual - lo
    if virtual < 0:
        return 0, 0, virtual - lo
    return lo, lo + 1, virtual - lo


def _lerp(a: float, b: float, t: float) -> float:
    d = b - a
    return b - d * (1.0 - t) if t >= 0.5 else a + d * t
