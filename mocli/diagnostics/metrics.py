"""Every metric of DIAGNOSTICS.md, computed on NumPy arrays with the segment and pair
kernels. Each function returns a tree of mergeable tallies (:mod:`.tally`) for one
group-complete chunk of rows; :func:`.tally.finish` turns the (merged) tree into the JSON
document. A rate with an empty denominator is ``None`` (JSON null), never 0 or NaN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection

import numpy as np

from ..core.rollouts import Batch
from ..core.values import Spill
from ..kernels import CPU, Device
from ..kernels.pairs import advantage_pairs, kendall_tau_b, objective_pairs, seg_cov
from ..core.tally import (
    REL, AdvantageSummary, AtExtreme, CoMoments, ColumnSummary, Const, Count, Extreme, Influence,
    Mean, Moments, Ratio, SizeMedian, VarianceShare, num, rate,
)

__all__ = ["GroupView", "agreement", "conflict", "estimator_metrics", "flipped_mask", "input_summary", "num", "objective_stats", "rate"]


def group_tolerance(values: np.ndarray, valid: np.ndarray, batch: Batch, device: Device = CPU) -> np.ndarray:
    """``1e-9 * max(1, max |x| over the group's valid rows)`` per group."""
    lo, hi = device.seg_min_max(np.abs(values), valid, batch.order, batch.offsets)
    return REL * np.maximum(1.0, np.where(np.isfinite(hi), hi, 0.0))


# ---------------------------------------------------------------------------------------
# estimator-independent view of one prepared batch
# ---------------------------------------------------------------------------------------
@dataclass
class GroupView:
    """Group statistics of the objectives that every estimator's metrics share."""

    batch: Batch
    count: np.ndarray  # (g,) scorable rows per group
    live_group: np.ndarray  # (g,) at least two scorable rows
    live_row: np.ndarray  # (n,) scorable row of a live group
    tolk: np.ndarray  # (g, k)
    sign: np.ndarray  # (n, k) int8: sign of r_ik - mean_g r_k (0 when zero or NaN)
    varies: np.ndarray  # (g, k) objective k has >= 2 valid values and is not constant
    valid_k: np.ndarray  # (n, k) valid cell of a scorable row
    d: np.ndarray  # (n, k) r_ik - mean_g r_k, NaN -> 0
    opposed: np.ndarray  # (g, pairs) row pairs ordered oppositely by objectives a, b
    ordered: np.ndarray  # (g, pairs) row pairs where both a and b differ
    vectors: np.ndarray  # (g,) distinct weighted reward vectors
    device: Device  # what the metrics of this batch compute on
    spill: Spill | None  # where the values behind quantiles go (a streamed table), else None

    @classmethod
    def of(cls, batch: Batch, device: Device = CPU, spill: Spill | None = None) -> "GroupView":
        count, tolk, varies, valid_k, d, sign = device.objective_deviations(
            batch.rewards, batch.scorable, batch.order, batch.offsets, REL
        )
        live_group = count >= 2
        live_row = batch.scorable & live_group[batch.codes]
        opposed, ordered, vectors = objective_pairs(
            np.ascontiguousarray(batch.rewards), batch.scorable, batch.weighted, batch.order, batch.offsets, tolk
        )
        return cls(batch, count, live_group, live_row, tolk, sign, varies, valid_k, d, opposed, ordered, vectors, device,
                   spill)


# ---------------------------------------------------------------------------------------
# input, objectives, conflict
# ---------------------------------------------------------------------------------------
def input_summary(batch: Batch, view: GroupView) -> dict[str, Any]:
    sizes = np.diff(batch.offsets)
    count = view.count
    return {
        "rows": Count(int(batch.n)),
        "groups": Count(int(sizes.shape[0])),
        "live_groups": Count(int(view.live_group.sum())),
        "singleton_groups": Count(int((count == 1).sum())),
        "unscorable_rows": Count(int((~batch.scorable).sum())),
        "group_size": {
            "min": Extreme(float(sizes.min()) if sizes.size else np.inf, largest=False),
            "median": SizeMedian.of(sizes),
            "max": Extreme(float(sizes.max()) if sizes.size else -np.inf, largest=True),
        },
        "objectives": Const(list(batch.names)),
        "weights": Const([float(w) for w in batch.weights]),
    }


def objective_stats(raw: np.ndarray, batch: Batch, view: GroupView) -> dict[str, dict[str, Any]]:
    """``raw``: the values as in the file (conditions applied); group rates use the
    directed values, so 'max' is the best value of a minimised objective too."""
    out: dict[str, dict[str, Any]] = {}
    n = batch.n
    for k, name in enumerate(batch.names):
        col = raw[:, k]
        valid = ~np.isnan(col)
        count = int(valid.sum())
        stats: dict[str, Any] = {
            "count": Count(count), "missing_rate": Ratio(n - count, n),
            # a column without NaN is summarised in place (its values are kept for the
            # quantiles until the report is built): no copy
            "summary": ColumnSummary.of(col if count == n else col[valid], view.spill),
        }
        # group rates over groups with >= 2 valid values of k (directed values)
        dcol = batch.rewards[:, k]
        dvalid = valid if batch.rewards is raw else ~np.isnan(dcol)
        x = np.where(dvalid, dcol, 0.0)
        mean, var0, cnt, _ = view.device.seg_mean_var(x, dvalid, batch.order, batch.offsets, 0)
        lo, hi = view.device.seg_min_max(x, dvalid, batch.order, batch.offsets)
        del x
        live = cnt >= 2
        tol = REL * np.maximum(1.0, np.where(cnt > 0, np.maximum(np.abs(lo), np.abs(hi)), 0.0))
        const = live & (hi - lo <= tol)
        total = Moments(*view.device.masked_moments(np.ascontiguousarray(dcol, dtype=np.float64), dvalid))  # with the extremes, no copy of the valid values
        stats["zero_variance_group_rate"] = Ratio(const.sum(), live.sum())
        stats["all_max_group_rate"] = AtExtreme.of(hi[const], total.hi, True, live.sum())
        stats["all_min_group_rate"] = AtExtreme.of(lo[const], total.lo, False, live.sum())
        # the within-group sum of squares: each group's centred sum (population variance
        # times count), not a pass over the rows
        stats["within_group_variance_share"] = VarianceShare(float(var0 @ cnt), total)
        out[name] = stats
    return out


def conflict(batch: Batch, view: GroupView) -> dict[str, Any]:
    w = batch.weighted
    sw = view.sign[:, w]
    mixed = (sw > 0).any(axis=1) & (sw < 0).any(axis=1) & view.live_row
    names = list(batch.names)
    opp = view.opposed.sum(axis=0)
    ordd = view.ordered.sum(axis=0)
    discordance = {}
    correlation = {}
    c = 0
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            key = f"{names[a]}|{names[b]}"
            discordance[key] = Ratio(opp[c], ordd[c])
            # the centred columns read in place: no copies of the rows where both are valid
            sums = view.device.masked_comoments(view.d[:, a], view.d[:, b], view.valid_k[:, a], view.valid_k[:, b])
            both = view.valid_k[:, a] & view.valid_k[:, b]
            correlation[key] = CoMoments(*sums, *_extremes(view.d[:, a], both), *_extremes(view.d[:, b], both))
            c += 1
    return {
        "mixed_sign_rate": Ratio(mixed.sum(), view.live_row.sum()),
        "discordance": discordance,
        "correlation": correlation,
    }


# ---------------------------------------------------------------------------------------
# per estimator
# ---------------------------------------------------------------------------------------
# the sections of an estimator's metrics; "collapse:groups" is the part of collapse that
# needs no row pairs (zero_variance_group_rate, dead_row_rate, masked_signal_group_rate)
SECTIONS = ("advantage", "collapse", "sign_flip", "silenced", "interference", "pareto", "influence", "length", "aggregation")
GROUP_COLLAPSE = ("zero_variance_group_rate", "dead_row_rate", "masked_signal_group_rate")


def estimator_metrics(A: np.ndarray, batch: Batch, view: GroupView, length: np.ndarray | None,
                      train_batch: np.ndarray | None = None, sections: Collection[str] | None = None) -> dict[str, Any]:
    """The metrics of one estimator's advantages ``A``; ``train_batch``: each row's training
    batch (dense codes; None: the table is one batch), for the loss aggregation.
    ``sections``: only these parts of the report (names of :data:`SECTIONS`, or
    ``collapse:groups``), each computed exactly as in the whole report; None: all."""
    want = (lambda _: True) if sections is None else set(sections).__contains__
    codes = batch.codes
    sc = batch.scorable
    live_g = view.live_group
    live_r = view.live_row
    tola = group_tolerance(A, sc, batch, view.device)
    zero = np.abs(A) <= tola[codes]
    sa = np.where(zero, 0, np.sign(A)).astype(np.int8)
    out: dict[str, Any] = {}

    if want("advantage"):
        a = A[sc]
        s = sa[sc]
        out["advantage"] = {
            "summary": AdvantageSummary.of(a, view.spill),
            "positive_rate": Ratio((s > 0).sum(), a.size), "negative_rate": Ratio((s < 0).sum(), a.size),
            "zero_rate": Ratio((s == 0).sum(), a.size),
        }

    nonzero_rows = np.bincount(codes, weights=(live_r & ~zero).astype(np.float64), minlength=live_g.shape[0])
    all_zero = live_g & (nonzero_rows == 0)
    pairs = want("collapse") or want("pareto")
    if pairs:
        pl = advantage_pairs(np.ascontiguousarray(batch.rewards), A, live_r, batch.weighted, batch.order, batch.offsets,
                             view.tolk, tola)[live_g]
    if pairs or want("collapse:groups"):
        signal = (view.varies & batch.weighted[None, :]).any(axis=1)
        collapse = {
            "zero_variance_group_rate": Ratio(all_zero.sum(), live_g.sum()),
            "dead_row_rate": Ratio((live_r & all_zero[codes]).sum(), live_r.sum()),
            "masked_signal_group_rate": Ratio((all_zero & signal).sum(), live_g.sum()),
        }
        if want("collapse"):
            collapse["collapsed_pair_rate"] = Ratio(pl[:, 1].sum(), pl[:, 0].sum())
            collapse["resolution"] = Ratio(pl[:, 2].sum(), view.vectors[live_g].sum())
            out["collapse"] = collapse
        elif want("collapse:groups"):
            out["collapse"] = collapse

    # sign flips and silencing, per objective
    if want("sign_flip") or want("silenced"):
        sign_flip = {}
        silenced = {}
        for k, name in enumerate(batch.names):
            sk = view.sign[:, k]
            has = sc & (sk != 0)
            both = has & (sa != 0)
            sign_flip[name] = Ratio((both & (sa != sk)).sum(), both.sum())
            silenced[name] = Ratio((has & (sa == 0)).sum(), has.sum())
        if want("sign_flip"):
            out["sign_flip"] = sign_flip
        if want("silenced"):
            out["silenced"] = silenced
    if want("interference"):
        interference = {}
        lo, hi = view.device.seg_min_max(A, sc, batch.order, batch.offsets)
        a_varies = live_g & (hi - lo > tola)
        for k, name in enumerate(batch.names):
            eligible = a_varies & view.varies[:, k]
            col = np.ascontiguousarray(np.where(view.valid_k[:, k], batch.rewards[:, k], 0.0))
            cov = seg_cov(col, A, view.valid_k[:, k], batch.order, batch.offsets)
            interference[name] = Ratio((eligible & (cov < -1e-12)).sum(), eligible.sum())
        out["interference"] = interference

    if want("pareto"):
        live_nonzero = ~all_zero[live_g]
        out["pareto"] = {
            "dominated_winner_rate": Ratio((pl[:, 5] * live_nonzero).sum(), live_nonzero.sum()),
            "order_violation_rate": Ratio(pl[:, 4].sum(), pl[:, 3].sum()),
        }
    if want("influence"):
        out["influence"] = {"fit": influence(A, batch, view)}
    if length is not None:
        if want("length"):
            out["length"] = length_coupling(A, sa, length, batch, view)
        if want("aggregation"):
            out["aggregation"] = aggregation(A, sa, length, batch, train_batch)
    return out


def influence(A: np.ndarray, batch: Batch, view: GroupView) -> Influence:
    """Least squares of the within-group advantage on the within-group objective values
    (weighted objectives), minimum-norm; shares that sum to ``r2``."""
    names = [n for n, w in zip(batch.names, batch.weighted) if w]
    mean, _, _, _ = view.device.seg_mean_var(A, batch.scorable, batch.order, batch.offsets, 0)
    return Influence.of(
        names, view.d, A - mean[batch.codes], rows=np.flatnonzero(view.live_row), cols=np.flatnonzero(batch.weighted),
    )


def length_coupling(A, sa, length, batch: Batch, view: GroupView) -> dict[str, Any]:
    sc = batch.scorable
    L = length
    ma, _, _, _ = view.device.seg_mean_var(A, sc, batch.order, batch.offsets, 0)
    ml, _, _, _ = view.device.seg_mean_var(L, sc, batch.order, batch.offsets, 0)
    rows = view.live_row
    pos = sc & (sa > 0)
    neg = sc & (sa < 0)
    return {
        "corr": CoMoments.of(A[sc], L[sc]),
        "within_corr": CoMoments.of((A - ma[batch.codes])[rows], (L - ml[batch.codes])[rows]),
        "mean_length_positive": Mean(float(L[pos].sum()), int(pos.sum())),
        "mean_length_negative": Mean(float(L[neg].sum()), int(neg.sum())),
    }


def _extremes(x: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """The least and largest of ``x`` on ``rows`` (inf, -inf when there are none)."""
    v = x[rows]  # one copy of the rows, not two full-length masked arrays
    return (float(v.min()), float(v.max())) if v.size else (np.inf, -np.inf)


AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def aggregation(A, sa, length, batch: Batch, train_batch: np.ndarray | None) -> dict[str, Any]:
    """How each loss aggregation spreads a row's advantage over its tokens (DIAGNOSTICS.md
    ``aggregation``): per-token weight ``u`` per mode and training batch, the per-token push
    ``|A| u`` against the length, and the sequence push ``A u L``. Rows without tokens
    (length 0, or missing) push nothing and are left out. With one training batch its
    factor (``1 / sum L``, ``1 / |B|``, ``1 / (|B| L_max)``) is the same for every row, and
    every statistic here is a ratio or a correlation that a common factor leaves unchanged,
    so it is not applied (a table streamed in chunks does not know it before the end)."""
    L = np.asarray(length, dtype=np.float64)
    has = np.isfinite(L) & (L > 0)
    rows = batch.scorable & has
    Lz = np.where(has, L, 0.0)
    one = np.ones(L.shape[0])
    if train_batch is None:
        factor = {mode: one for mode in AGGREGATIONS}
    else:
        size = np.bincount(train_batch).astype(np.float64)
        tokens = np.bincount(train_batch, weights=Lz)
        longest = np.zeros(size.shape[0])
        np.maximum.at(longest, train_batch, Lz)
        with np.errstate(divide="ignore"):
            factor = {"token_mean": 1.0 / tokens[train_batch], "seq_mean_token_mean": 1.0 / size[train_batch],
                      "seq_mean_token_sum_norm": 1.0 / (size * longest)[train_batch]}
    pos, neg = rows & (sa > 0), rows & (sa < 0)
    out = {}
    for mode in AGGREGATIONS:
        u = factor[mode] / np.where(has, L, 1.0) if mode == "seq_mean_token_mean" else factor[mode]
        q = np.abs(A) * u  # per token
        push = A * u * Lz  # per sequence
        out[mode] = {
            "up_share": Ratio(float(push[pos].sum()), float(np.abs(push[rows]).sum())),
            "length_corr_positive": CoMoments.of(q[pos], L[pos]),
            "length_corr_negative": CoMoments.of(q[neg], L[neg]),
        }
    return out


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------
def agreement(A: np.ndarray, B: np.ndarray, batch: Batch, view: GroupView) -> dict[str, Any]:
    sc = batch.scorable
    ta = group_tolerance(A, sc, batch, view.device)
    tb = group_tolerance(B, sc, batch, view.device)
    za = np.abs(A) <= ta[batch.codes]
    zb = np.abs(B) <= tb[batch.codes]
    both = sc & ~za & ~zb
    flipped = both & (np.sign(A) != np.sign(B))
    tau = kendall_tau_b(A, B, view.live_row, batch.order, batch.offsets, ta, tb)
    tau = tau[view.live_group & ~np.isnan(tau)]
    return {
        "sign_agreement": Ratio((both & ~flipped).sum(), both.sum()),
        "flipped_rows": Count(int(flipped.sum())),
        "rank_agreement": Mean(float(tau.sum()), int(tau.size)),
    }


def flipped_mask(A: np.ndarray, B: np.ndarray, batch: Batch, device: Device = CPU) -> np.ndarray:
    sc = batch.scorable
    ta = group_tolerance(A, sc, batch, device)[batch.codes]
    tb = group_tolerance(B, sc, batch, device)[batch.codes]
    return sc & (np.abs(A) > ta) & (np.abs(B) > tb) & (np.sign(A) != np.sign(B))
