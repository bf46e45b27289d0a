"""Mergeable statistics: what one group-complete chunk of rows contributes to the report
(and to the batch-wide steps of the estimators).

The report is built as a tree of dicts whose leaves are tallies. Two trees of the same
shape merge leaf by leaf (:func:`merge`), and :func:`finish` turns a tree into the JSON
document. A table in memory is one chunk; a table streamed in chunks merges one tree per
chunk, so both paths run the same metric code and differ only by floating-point rounding in
the merged sums (counts, rates' numerators and denominators, minima and maxima, medians and
quantiles come out exactly equal).

Leaves whose ``spread`` is true finish into several keys of their parent (a column summary
gives ``mean``, ``std``, ``min``, ``p05`` ... at once), in the order they produce them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .values import Spill, Values

REL = 1e-9  # "zero" is |x| <= 1e-9 * max(1, m)


def rate(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


class Tally:
    spread = False

    def merge(self, other: "Tally") -> "Tally":  # pragma: no cover - abstract
        raise NotImplementedError

    def value(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Const(Tally):
    """A value every chunk agrees on (objective names, weights, parameters)."""

    v: Any

    def merge(self, other):
        return self

    def value(self):
        return self.v


@dataclass
class Count(Tally):
    n: int

    def merge(self, other):
        return Count(self.n + other.n)

    def value(self):
        return int(self.n)


@dataclass
class Ratio(Tally):
    """``num / den``; None when ``den`` is 0."""

    num: float
    den: float

    def merge(self, other):
        return Ratio(self.num + other.num, self.den + other.den)

    def value(self):
        return rate(self.num, self.den)


@dataclass
class Extreme(Tally):
    """The smallest or largest of integer values (None when there were none)."""

    x: float
    largest: bool

    def merge(self, other):
        return Extreme(max(self.x, other.x) if self.largest else min(self.x, other.x), self.largest)

    def value(self):
        return None if math.isinf(self.x) else int(self.x)


@dataclass
class Moments(Tally):
    """Count, mean and centred sum of squares (Chan et al.'s pairwise merge), plus the
    extremes; ``of`` computes them with a corrected two-pass sum."""

    n: float
    mean: float
    m2: float
    lo: float = math.inf
    hi: float = -math.inf

    @classmethod
    def of(cls, x: np.ndarray, weights: np.ndarray | None = None) -> "Moments":
        """Plain moments; with ``weights`` (token counts) the weighted ones, ``n`` being
        the total weight."""
        if x.shape[0] == 0:
            return cls(0.0, 0.0, 0.0)
        lo, hi = float(x.min()), float(x.max())
        if weights is None:
            n = float(x.shape[0])
            if lo == hi:
                return cls(n, lo, 0.0, lo, hi)
            m = float(x.sum()) / n
            d = x - m
            c = float(d.sum())
            return cls(n, m + c / n, max(float(d @ d) - c * c / n, 0.0), lo, hi)
        t = float(weights.sum())
        if t <= 0:
            return cls(0.0, 0.0, 0.0, lo, hi)
        m = float(weights @ x) / t
        m += float(weights @ (x - m)) / t
        d = x - m
        return cls(t, m, float(weights @ (d * d)), lo, hi)

    def merge(self, other):
        if other.n == 0:
            return Moments(self.n, self.mean, self.m2, min(self.lo, other.lo), max(self.hi, other.hi))
        if self.n == 0:
            return Moments(other.n, other.mean, other.m2, min(self.lo, other.lo), max(self.hi, other.hi))
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, mean, m2, min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def constant(self) -> bool:
        return self.n == 0 or self.lo == self.hi

    def std(self, ddof: int = 0) -> float:
        if self.constant or self.n <= ddof:
            return 0.0
        return math.sqrt(self.m2 / (self.n - ddof))

    def value(self):
        return {"mean": num(self.mean), "std": num(self.std())} if self.n else {"mean": None, "std": None}


@dataclass
class CoMoments(Tally):
    """Pearson correlation, mergeable: count, means, centred cross sums and each side's
    extremes. Undefined (None) when either side is constant up to rounding: its spread is
    at most FLAT times its largest magnitude (scale-free). A side whose values differ only
    in their last digits, such as advantages that are equal but for rounding or for eps
    in different groups, has no correlation worth reporting: any value would be noise
    amplified (a relative spread s leaves the correlation about 1e-16 / s uncertain)."""

    n: float
    mx: float
    my: float
    sxx: float
    syy: float
    sxy: float
    xlo: float = math.inf
    xhi: float = -math.inf
    ylo: float = math.inf
    yhi: float = -math.inf

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> "CoMoments":
        n = x.shape[0]
        if n == 0:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        mx, my = float(x.mean()), float(y.mean())
        dx = x - mx
        dy = y - my
        return cls(float(n), mx, my, float(dx @ dx), float(dy @ dy), float(dx @ dy),
                   float(x.min()), float(x.max()), float(y.min()), float(y.max()))

    def merge(self, o):
        if o.n == 0:
            return self
        if self.n == 0:
            return o
        n = self.n + o.n
        f = self.n * o.n / n
        dx = o.mx - self.mx
        dy = o.my - self.my
        return CoMoments(
            n, self.mx + dx * (o.n / n), self.my + dy * (o.n / n),
            self.sxx + o.sxx + dx * dx * f, self.syy + o.syy + dy * dy * f, self.sxy + o.sxy + dx * dy * f,
            min(self.xlo, o.xlo), max(self.xhi, o.xhi), min(self.ylo, o.ylo), max(self.yhi, o.yhi),
        )

    def value(self):
        if self.n < 2 or flat(self.xlo, self.xhi) or flat(self.ylo, self.yhi):
            return None
        den = math.sqrt(self.sxx * self.syy)
        return num(self.sxy / den) if den > 0 else None


FLAT = 1e-6  # a correlation's side whose spread is at most this share of its magnitude is constant


def flat(lo: float, hi: float) -> bool:
    """Whether values from ``lo`` to ``hi`` are one value up to rounding (relative)."""
    return hi - lo <= FLAT * max(abs(lo), abs(hi))


@dataclass
class Sums(Tally):
    """Plain totals, added element by element (what a batch-wide step needs to count)."""

    values: tuple[float, ...]

    def merge(self, other):
        return Sums(tuple(a + b for a, b in zip(self.values, other.values)))

    def value(self):
        return self.values


@dataclass
class Mean(Tally):
    """A mean kept as its sum and count."""

    total: float
    n: float

    def merge(self, other):
        return Mean(self.total + other.total, self.n + other.n)

    def value(self):
        return num(self.total / self.n) if self.n else None


@dataclass
class VarianceShare(Tally):
    """Within-group sum of squares over the column's total centred sum of squares."""

    within: float
    total: Moments

    def merge(self, other):
        return VarianceShare(self.within + other.within, self.total.merge(other.total))

    def value(self):
        return rate(self.within, self.total.m2)


@dataclass
class SizeMedian(Tally):
    """Median of integer group sizes, from their histogram (equal to ``np.median``)."""

    hist: np.ndarray

    @classmethod
    def of(cls, sizes: np.ndarray) -> "SizeMedian":
        return cls(np.bincount(sizes.astype(np.int64)) if sizes.size else np.zeros(0, dtype=np.int64))

    def merge(self, other):
        a, b = self.hist, other.hist
        if a.shape[0] < b.shape[0]:
            a, b = b, a
        out = a.copy()
        out[: b.shape[0]] += b
        return SizeMedian(out)

    def value(self):
        total = int(self.hist.sum())
        if total == 0:
            return None
        cum = np.cumsum(self.hist)
        lo = int(np.searchsorted(cum, (total - 1) // 2 + 1))
        hi = int(np.searchsorted(cum, total // 2 + 1))
        return float(lo) if total % 2 else (lo + hi) / 2.0


@dataclass
class AtExtreme(Tally):
    """Share of groups whose constant value is the column's extreme (within ``1e-9 *
    max(1, |extreme|)``). Candidates far from the running extreme can never qualify (the
    threshold moves one way only), so only near-extreme values are kept."""

    values: np.ndarray  # distinct candidate group values
    counts: np.ndarray
    extreme: float  # the column's running max (largest) or min
    largest: bool
    den: float

    def _prune(self) -> "AtExtreme":
        e = self.extreme
        if math.isinf(e):
            return self
        tol = REL * max(1.0, abs(e))
        keep = self.values >= e - tol if self.largest else self.values <= e + tol
        return AtExtreme(self.values[keep], self.counts[keep], e, self.largest, self.den)

    @classmethod
    def of(cls, group_values: np.ndarray, extreme: float, largest: bool, den: float) -> "AtExtreme":
        vals, counts = np.unique(group_values, return_counts=True)
        return cls(vals, counts, extreme, largest, den)._prune()

    def merge(self, other):
        e = max(self.extreme, other.extreme) if self.largest else min(self.extreme, other.extreme)
        vals = np.concatenate([self.values, other.values])
        counts = np.concatenate([self.counts, other.counts])
        return AtExtreme(vals, counts, e, self.largest, self.den + other.den)._prune()

    def value(self):
        if math.isinf(self.extreme):
            return rate(0, self.den)
        tol = REL * max(1.0, abs(self.extreme))
        hit = np.abs(self.values - self.extreme) <= tol
        return rate(int(self.counts[hit].sum()), self.den)


@dataclass
class ColumnSummary(Tally):
    """``mean, std`` (population), ``min, p05, p50, p95, max`` and ``distinct`` of one
    column's valid values."""

    spread = True
    moments: Moments
    values: Values

    @classmethod
    def of(cls, v: np.ndarray, spill: Spill | None = None) -> "ColumnSummary":
        return cls(Moments.of(v), Values.of(v, spill))

    def merge(self, other):
        return ColumnSummary(self.moments.merge(other.moments), self.values.merge(other.values))

    def value(self):
        m = self.moments
        if not m.n:
            return dict.fromkeys(["mean", "std", "min", "p05", "p50", "p95", "max"], None) | {"distinct": 0}
        q, distinct = self.values.quantiles_and_distinct([0.05, 0.5, 0.95])
        return {
            "mean": num(m.mean), "std": num(m.std()), "min": num(m.lo), "p05": num(q[0]),
            "p50": num(q[1]), "p95": num(q[2]), "max": num(m.hi), "distinct": distinct,
        }


@dataclass
class AdvantageSummary(Tally):
    """``mean, std, mean_abs, mean_sq, max_abs, p99_abs`` of the advantages of scorable rows."""

    spread = True
    moments: Moments
    sum_abs: float
    sum_sq: float
    abs_values: Values

    @classmethod
    def of(cls, a: np.ndarray, spill: Spill | None = None) -> "AdvantageSummary":
        absa = np.abs(a)
        return cls(Moments.of(a), float(absa.sum()), float(a @ a), Values.of(absa, spill))

    def merge(self, o):
        return AdvantageSummary(
            self.moments.merge(o.moments), self.sum_abs + o.sum_abs, self.sum_sq + o.sum_sq,
            self.abs_values.merge(o.abs_values),
        )

    def value(self):
        m = self.moments
        keys = ["mean", "std", "mean_abs", "mean_sq", "max_abs", "p99_abs"]
        if not m.n:
            return dict.fromkeys(keys, None)
        return {
            "mean": num(m.mean), "std": num(m.std()), "mean_abs": num(self.sum_abs / m.n),
            "mean_sq": num(self.sum_sq / m.n), "max_abs": num(max(abs(m.lo), abs(m.hi))),
            "p99_abs": num(self.abs_values.quantiles([0.99])[0]),
        }


@dataclass
class Influence(Tally):
    """Least squares of the within-group advantage on the within-group objective values,
    minimum-norm. Mergeable through the triangular factor ``R`` of ``[D | a]``: stacking
    two factors and factoring again gives the factor of the stacked rows, and the least
    squares problem on ``R`` has the same solutions as the one on the rows."""

    spread = True
    names: tuple[str, ...]
    r: np.ndarray  # (<= k+1, k+1)

    @classmethod
    def of(cls, names, d: np.ndarray, a: np.ndarray, rows=None, cols=None, block: int = 1 << 16) -> "Influence":
        """The factor of ``[d | a]``, or of its rows ``rows`` and the columns ``cols`` of
        ``d`` (index arrays). Factored a block of rows at a time, each stacked under the
        factor so far (as :meth:`merge` does), so that the whole matrix is never copied:
        on 4M rows the one-shot factorisation held two copies, 300 MB."""
        n = d.shape[0] if rows is None else rows.shape[0]
        r = np.zeros((0, (d.shape[1] if cols is None else len(cols)) + 1))
        for start in range(0, n, block):
            sel = slice(start, start + block) if rows is None else rows[start:start + block]
            part = d[sel] if cols is None else d[sel][:, cols]
            stacked = np.vstack([r, np.column_stack([part, a[sel]])])
            if not np.isfinite(stacked).all():  # LAPACK would complain on stdout: no fit
                return cls(tuple(names), np.full((1, r.shape[1]), np.nan))
            r = np.linalg.qr(stacked, mode="r")
        return cls(tuple(names), r)

    def merge(self, o):
        both = np.vstack([self.r, o.r])
        if not np.isfinite(both).all():
            return Influence(self.names, np.full((1, both.shape[1]), np.nan))
        return Influence(self.names, np.linalg.qr(both, mode="r") if both.shape[0] else both)

    def value(self):
        out: dict[str, Any] = dict.fromkeys(self.names)
        out["r2"] = None
        k = len(self.names)
        rd, ra = self.r[:, :k], self.r[:, k]
        if not np.isfinite(self.r).all():
            return out
        ss = float(ra @ ra)
        if not 0 < ss < np.inf:
            return out
        beta, *_ = np.linalg.lstsq(rd, ra, rcond=None)
        shares = beta * (rd.T @ ra) / ss
        for name, s in zip(self.names, shares):
            out[name] = num(s)
        out["r2"] = num(shares.sum())
        return out


@dataclass
class Largest(Tally):
    """Element-wise maxima of a vector (-inf where a chunk had no value)."""

    x: np.ndarray

    def merge(self, other):
        return Largest(np.maximum(self.x, other.x))

    def value(self):
        return self.x


def merge(a: Any, b: Any) -> Any:
    """Merge two report trees of the same shape (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        keys = list(a) + [k for k in b if k not in a]
        return {k: merge(a.get(k), b.get(k)) for k in keys}
    return a.merge(b)


def finish(tree: Any) -> Any:
    """The JSON document of a report tree."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            if isinstance(v, Tally) and v.spread:
                out.update(v.value())
            else:
                out[k] = finish(v)
        return out
    if isinstance(tree, Tally):
        return tree.value()
    return tree
