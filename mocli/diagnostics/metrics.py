"""Every metric of DIAGNOSTICS.md, computed on NumPy arrays with the segment and pair
kernels. A rate with an empty denominator is ``None`` (JSON null), never 0 or NaN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..batch import Batch
from ..kernels import seg_mean_var, seg_min_max
from ..kernels.pairs import advantage_pairs, kendall_tau_b, objective_pairs, seg_cov

REL = 1e-9  # "zero" is |x| <= 1e-9 * max(1, m)


def rate(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def pair_names(names: Sequence[str]) -> list[str]:
    return [f"{a}|{b}" for i, a in enumerate(names) for b in names[i + 1:]]


def group_tolerance(values: np.ndarray, valid: np.ndarray, batch: Batch) -> np.ndarray:
    """``1e-9 * max(1, max |x| over the group's valid rows)`` per group."""
    lo, hi = seg_min_max(np.abs(values), valid, batch.order, batch.offsets)
    return REL * np.maximum(1.0, np.where(np.isfinite(hi), hi, 0.0))


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.shape[0] < 2:
        return None
    dx = x - x.mean()
    dy = y - y.mean()
    den = np.sqrt((dx @ dx) * (dy @ dy))
    return num((dx @ dy) / den) if den > 0 else None


def distinct_count(values: np.ndarray) -> int:
    """Distinct values: sorted gaps that are not zero (relative to the largest |value|)."""
    if values.shape[0] == 0:
        return 0
    v = np.sort(values)
    tol = REL * max(1.0, float(np.abs(v).max()))
    return int(1 + np.count_nonzero(np.diff(v) > tol))


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

    @classmethod
    def of(cls, batch: Batch) -> "GroupView":
        n, K = batch.rewards.shape
        g = batch.offsets.shape[0] - 1
        codes = batch.codes
        _, _, count, _ = seg_mean_var(np.zeros(n), batch.scorable, batch.order, batch.offsets, 0)
        live_group = count >= 2
        live_row = batch.scorable & live_group[codes]
        tolk = np.empty((g, K))
        sign = np.zeros((n, K), dtype=np.int8)
        varies = np.zeros((g, K), dtype=bool)
        valid_k = np.zeros((n, K), dtype=bool)
        d = np.zeros((n, K))
        for k in range(K):
            col = np.ascontiguousarray(batch.rewards[:, k])
            valid = batch.scorable & ~np.isnan(col)
            valid_k[:, k] = valid
            x = np.where(valid, col, 0.0)
            mean, _, cnt, _ = seg_mean_var(x, valid, batch.order, batch.offsets, 0)
            lo, hi = seg_min_max(x, valid, batch.order, batch.offsets)
            tol = REL * np.maximum(1.0, np.where(cnt > 0, np.maximum(np.abs(lo), np.abs(hi)), 0.0))
            tolk[:, k] = tol
            varies[:, k] = (cnt >= 2) & (hi - lo > tol)
            dk = np.where(valid, x - mean[codes], 0.0)
            d[:, k] = dk
            sign[:, k] = np.where(dk > tol[codes], 1, np.where(dk < -tol[codes], -1, 0))
        opposed, ordered, vectors = objective_pairs(
            np.ascontiguousarray(batch.rewards), batch.scorable, batch.weighted, batch.order, batch.offsets, tolk
        )
        return cls(batch, count, live_group, live_row, tolk, sign, varies, valid_k, d, opposed, ordered, vectors)


# ---------------------------------------------------------------------------------------
# input, objectives, conflict
# ---------------------------------------------------------------------------------------
def input_summary(batch: Batch, view: GroupView) -> dict[str, Any]:
    sizes = np.diff(batch.offsets)
    count = view.count
    return {
        "rows": int(batch.n),
        "groups": int(sizes.shape[0]),
        "live_groups": int(view.live_group.sum()),
        "singleton_groups": int((count == 1).sum()),
        "unscorable_rows": int((~batch.scorable).sum()),
        "group_size": {
            "min": int(sizes.min()) if sizes.size else None,
            "median": float(np.median(sizes)) if sizes.size else None,
            "max": int(sizes.max()) if sizes.size else None,
        },
        "objectives": list(batch.names),
        "weights": [float(w) for w in batch.weights],
    }


def objective_stats(raw: np.ndarray, batch: Batch, view: GroupView) -> dict[str, dict[str, Any]]:
    """``raw``: the values as in the file (conditions applied); group rates use the
    directed values, so 'max' is the best value of a minimised objective too."""
    out: dict[str, dict[str, Any]] = {}
    n = batch.n
    codes = batch.codes
    for k, name in enumerate(batch.names):
        col = raw[:, k]
        valid = ~np.isnan(col)
        v = col[valid]
        stats: dict[str, Any] = {"count": int(valid.sum()), "missing_rate": rate((~valid).sum(), n)}
        if v.size:
            q = np.quantile(v, [0.05, 0.5, 0.95])
            stats.update(mean=num(v.mean()), std=num(v.std()), min=num(v.min()), p05=num(q[0]),
                         p50=num(q[1]), p95=num(q[2]), max=num(v.max()), distinct=distinct_count(v))
        else:
            stats.update(mean=None, std=None, min=None, p05=None, p50=None, p95=None, max=None, distinct=0)
        # group rates over groups with >= 2 valid values of k (directed values)
        dcol = np.ascontiguousarray(batch.rewards[:, k])
        dvalid = ~np.isnan(dcol)
        x = np.where(dvalid, dcol, 0.0)
        mean, _, cnt, _ = seg_mean_var(x, dvalid, batch.order, batch.offsets, 0)
        lo, hi = seg_min_max(x, dvalid, batch.order, batch.offsets)
        live = cnt >= 2
        tol = REL * np.maximum(1.0, np.where(cnt > 0, np.maximum(np.abs(lo), np.abs(hi)), 0.0))
        const = live & (hi - lo <= tol)
        if dvalid.any():
            gmax, gmin = dcol[dvalid].max(), dcol[dvalid].min()
            tmax = REL * max(1.0, abs(gmax))
            tmin = REL * max(1.0, abs(gmin))
            at_max = const & (np.abs(hi - gmax) <= tmax)
            at_min = const & (np.abs(lo - gmin) <= tmin)
        else:
            at_max = at_min = np.zeros_like(live)
        stats["zero_variance_group_rate"] = rate(const.sum(), live.sum())
        stats["all_max_group_rate"] = rate(at_max.sum(), live.sum())
        stats["all_min_group_rate"] = rate(at_min.sum(), live.sum())
        within = np.where(dvalid, x - mean[codes], 0.0)
        total = x[dvalid] - x[dvalid].mean() if dvalid.any() else np.zeros(0)
        stats["within_group_variance_share"] = rate(float(within @ within), float(total @ total))
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
            discordance[key] = rate(opp[c], ordd[c])
            both = view.valid_k[:, a] & view.valid_k[:, b]
            correlation[key] = pearson(view.d[both, a], view.d[both, b])
            c += 1
    return {
        "mixed_sign_rate": rate(mixed.sum(), view.live_row.sum()),
        "discordance": discordance,
        "correlation": correlation,
    }


# ---------------------------------------------------------------------------------------
# per estimator
# ---------------------------------------------------------------------------------------
def estimator_metrics(A: np.ndarray, batch: Batch, view: GroupView, length: np.ndarray | None) -> dict[str, Any]:
    codes = batch.codes
    sc = batch.scorable
    live_g = view.live_group
    live_r = view.live_row
    tola = group_tolerance(A, sc, batch)
    zero = np.abs(A) <= tola[codes]
    sa = np.where(zero, 0, np.sign(A)).astype(np.int8)

    # advantage
    a = A[sc]
    adv: dict[str, Any]
    if a.size:
        absa = np.abs(a)
        adv = {
            "mean": num(a.mean()), "std": num(a.std()), "mean_abs": num(absa.mean()),
            "mean_sq": num((a * a).mean()), "max_abs": num(absa.max()),
            "p99_abs": num(np.quantile(absa, 0.99)),
            "positive_rate": rate((sa[sc] > 0).sum(), a.size), "negative_rate": rate((sa[sc] < 0).sum(), a.size),
            "zero_rate": rate((sa[sc] == 0).sum(), a.size),
        }
    else:
        adv = dict.fromkeys(["mean", "std", "mean_abs", "mean_sq", "max_abs", "p99_abs", "positive_rate", "negative_rate", "zero_rate"])

    # collapse
    nonzero_rows = np.bincount(codes, weights=(live_r & ~zero).astype(np.float64), minlength=live_g.shape[0])
    all_zero = live_g & (nonzero_rows == 0)
    signal = (view.varies & batch.weighted[None, :]).any(axis=1)
    pairs = advantage_pairs(np.ascontiguousarray(batch.rewards), A, live_r, batch.weighted, batch.order, batch.offsets, view.tolk, tola)
    pl = pairs[live_g]
    collapse = {
        "zero_variance_group_rate": rate(all_zero.sum(), live_g.sum()),
        "dead_row_rate": rate((live_r & all_zero[codes]).sum(), live_r.sum()),
        "masked_signal_group_rate": rate((all_zero & signal).sum(), live_g.sum()),
        "collapsed_pair_rate": rate(pl[:, 1].sum(), pl[:, 0].sum()),
        "resolution": rate(pl[:, 2].sum(), view.vectors[live_g].sum()),
    }

    # sign flips and silencing, per objective
    sign_flip = {}
    silenced = {}
    interference = {}
    lo, hi = seg_min_max(A, sc, batch.order, batch.offsets)
    a_varies = live_g & (hi - lo > tola)
    for k, name in enumerate(batch.names):
        sk = view.sign[:, k]
        has = sc & (sk != 0)
        both = has & (sa != 0)
        sign_flip[name] = rate((both & (sa != sk)).sum(), both.sum())
        silenced[name] = rate((has & (sa == 0)).sum(), has.sum())
        eligible = a_varies & view.varies[:, k]
        col = np.ascontiguousarray(np.where(view.valid_k[:, k], batch.rewards[:, k], 0.0))
        cov = seg_cov(col, A, view.valid_k[:, k], batch.order, batch.offsets)
        interference[name] = rate((eligible & (cov < -1e-12)).sum(), eligible.sum())

    pareto = {
        "dominated_winner_rate": rate((pl[:, 5] * (~all_zero[live_g])).sum(), (~all_zero[live_g]).sum()),
        "order_violation_rate": rate(pl[:, 4].sum(), pl[:, 3].sum()),
    }

    out = {
        "advantage": adv,
        "collapse": collapse,
        "sign_flip": sign_flip,
        "silenced": silenced,
        "interference": interference,
        "pareto": pareto,
        "influence": influence(A, batch, view),
    }
    if length is not None:
        out["length"] = length_coupling(A, sa, length, batch, view)
    return out


def influence(A: np.ndarray, batch: Batch, view: GroupView) -> dict[str, Any]:
    """Least squares of the within-group advantage on the within-group objective values
    (weighted objectives), minimum-norm; shares that sum to ``r2``."""
    rows = view.live_row
    names = [n for n, w in zip(batch.names, batch.weighted) if w]
    out: dict[str, Any] = dict.fromkeys(names)
    out["r2"] = None
    if not rows.any():
        return out
    mean, _, _, _ = seg_mean_var(A, batch.scorable, batch.order, batch.offsets, 0)
    a = (A - mean[batch.codes])[rows]
    D = view.d[rows][:, batch.weighted]
    ss = float(a @ a)
    if ss <= 0:
        return out
    beta, *_ = np.linalg.lstsq(D, a, rcond=None)
    shares = beta * (D.T @ a) / ss
    for name, s in zip(names, shares):
        out[name] = num(s)
    out["r2"] = num(shares.sum())
    return out


def length_coupling(A, sa, length, batch: Batch, view: GroupView) -> dict[str, Any]:
    sc = batch.scorable
    L = length
    ma, _, _, _ = seg_mean_var(A, sc, batch.order, batch.offsets, 0)
    ml, _, _, _ = seg_mean_var(L, sc, batch.order, batch.offsets, 0)
    rows = view.live_row
    pos = sc & (sa > 0)
    neg = sc & (sa < 0)
    return {
        "corr": pearson(A[sc], L[sc]),
        "within_corr": pearson((A - ma[batch.codes])[rows], (L - ml[batch.codes])[rows]),
        "mean_length_positive": num(L[pos].mean()) if pos.any() else None,
        "mean_length_negative": num(L[neg].mean()) if neg.any() else None,
    }


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------
def agreement(A: np.ndarray, B: np.ndarray, batch: Batch, view: GroupView) -> dict[str, Any]:
    sc = batch.scorable
    ta = group_tolerance(A, sc, batch)
    tb = group_tolerance(B, sc, batch)
    za = np.abs(A) <= ta[batch.codes]
    zb = np.abs(B) <= tb[batch.codes]
    both = sc & ~za & ~zb
    flipped = both & (np.sign(A) != np.sign(B))
    tau = kendall_tau_b(A, B, view.live_row, batch.order, batch.offsets, ta, tb)
    tau = tau[view.live_group & ~np.isnan(tau)]
    return {
        "sign_agreement": rate((both & ~flipped).sum(), both.sum()),
        "flipped_rows": int(flipped.sum()),
        "rank_agreement": num(tau.mean()) if tau.size else None,
    }


def flipped_mask(A: np.ndarray, B: np.ndarray, batch: Batch) -> np.ndarray:
    sc = batch.scorable
    ta = group_tolerance(A, sc, batch)[batch.codes]
    tb = group_tolerance(B, sc, batch)[batch.codes]
    return sc & (np.abs(A) > ta) & (np.abs(B) > tb) & (np.sign(A) != np.sign(B))
