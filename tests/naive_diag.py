"""Naive reference for DIAGNOSTICS.md: plain loops over groups, rows and pairs."""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import polars

import mocli

from .naive import groups, isnan, mean

REL = 1e-9


def rate(a, b):
    return a / b if b else None


def tol_of(values):
    vals = [abs(v) for v in values if not isnan(v)]
    return REL * max([1.0] + vals)


def pearson(x, y):
    """None when either side is one value up to rounding (spread <= 1e-6 of its largest
    magnitude), as the report's correlations."""
    if len(x) < 2 or any(max(v) - min(v) <= 1e-6 * max(abs(max(v)), abs(min(v))) for v in (x, y)):
        return None
    mx, my = mean(x), mean(y)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = math.fsum((a - mx) ** 2 for a in x)
    syy = math.fsum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx * syy > 0 else None


def distinct_sorted(vals, tol):
    if not vals:
        return 0
    v = sorted(vals)
    return 1 + sum(1 for a, b in zip(v, v[1:]) if b - a > tol)


def report(R, raw, w, names, codes, scorable, advs, length=None, success=None):
    """R: directed rewards rows; raw: file values (conditions applied); advs: {label: A};
    success: (objective, op, number) of the rollout budget, None for the default."""
    n, K = len(R), len(names)
    G = groups(codes)
    live = {g: [i for i in rows if scorable[i]] for g, rows in G.items()}
    live = {g: rows for g, rows in live.items() if len(rows) >= 2}
    live_rows = [i for rows in live.values() for i in rows]
    weighted = [k for k in range(K) if w[k] != 0]

    # per group objective tolerance, means, signs over scorable valid cells
    tolk, meank, varies = {}, {}, {}
    for g, rows in G.items():
        for k in range(K):
            vals = [R[i][k] for i in rows if scorable[i] and not isnan(R[i][k])]
            tolk[g, k] = tol_of(vals)
            meank[g, k] = mean(vals) if vals else 0.0
            varies[g, k] = len(vals) >= 2 and max(vals) - min(vals) > tolk[g, k]
    sign = [[0] * K for _ in range(n)]
    d = [[0.0] * K for _ in range(n)]
    for i in range(n):
        for k in range(K):
            if scorable[i] and not isnan(R[i][k]):
                dd = R[i][k] - meank[codes[i], k]
                d[i][k] = dd
                t = tolk[codes[i], k]
                sign[i][k] = 1 if dd > t else (-1 if dd < -t else 0)

    sizes = [len(rows) for rows in G.values()]
    counts = [sum(scorable[i] for i in rows) for rows in G.values()]
    out = {
        "input": {
            "rows": n, "groups": len(G), "live_groups": len(live),
            "singleton_groups": sum(1 for c in counts if c == 1),
            "unscorable_rows": sum(1 for s in scorable if not s),
            "group_size": {"min": min(sizes), "median": float(np.median(sizes)), "max": max(sizes)},
            "objectives": list(names), "weights": list(w),
            "batch_by": None, "notes": [], "warnings": [],  # one batch; nothing inferred from arrays
            # which code made the report
            "mocli_version": mocli.__version__,
            "versions": {"polars": polars.__version__, "numpy": np.__version__, "numba": numba.__version__},
        },
        "objectives": {},
    }
    for k, name in enumerate(names):
        col = [raw[i][k] for i in range(n)]
        v = [x for x in col if not isnan(x)]
        st = {"count": len(v), "missing_rate": (n - len(v)) / n}
        if v:
            q = np.quantile(v, [0.05, 0.5, 0.95])
            st.update(mean=mean(v), std=math.sqrt(math.fsum((x - mean(v)) ** 2 for x in v) / len(v)), min=min(v),
                      p05=q[0], p50=q[1], p95=q[2], max=max(v), distinct=distinct_sorted(v, tol_of(v)))
        else:
            st.update(dict.fromkeys(["mean", "std", "min", "p05", "p50", "p95", "max"]), distinct=0)
        dv = [R[i][k] for i in range(n) if not isnan(R[i][k])]
        n_live = n_const = n_max = n_min = 0
        within = 0.0
        for g, rows in G.items():
            vals = [R[i][k] for i in rows if not isnan(R[i][k])]
            if vals:
                m = mean(vals)
                within += math.fsum((x - m) ** 2 for x in vals)
            if len(vals) < 2:
                continue
            n_live += 1
            t = tol_of(vals)
            if max(vals) - min(vals) <= t:
                n_const += 1
                if abs(max(vals) - max(dv)) <= REL * max(1.0, abs(max(dv))):
                    n_max += 1
                if abs(min(vals) - min(dv)) <= REL * max(1.0, abs(min(dv))):
                    n_min += 1
        total = math.fsum((x - mean(dv)) ** 2 for x in dv) if dv else 0.0
        st.update(zero_variance_group_rate=rate(n_const, n_live), all_max_group_rate=rate(n_max, n_live),
                  all_min_group_rate=rate(n_min, n_live), within_group_variance_share=rate(within, total))
        out["objectives"][name] = st

    mixed = sum(1 for i in live_rows if any(sign[i][k] > 0 for k in weighted) and any(sign[i][k] < 0 for k in weighted))
    disc, corr = {}, {}
    for a, b in itertools.combinations(range(K), 2):
        opp = tot = 0
        for g, rows in G.items():
            sc = [i for i in rows if scorable[i]]
            for i, h in itertools.combinations(sc, 2):
                da, db = R[i][a] - R[h][a], R[i][b] - R[h][b]
                if isnan(da) or isnan(db) or abs(da) <= tolk[g, a] or abs(db) <= tolk[g, b]:
                    continue
                tot += 1
                opp += (da > 0) != (db > 0)
        key = f"{names[a]}|{names[b]}"
        disc[key] = rate(opp, tot)
        both = [i for i in range(n) if scorable[i] and not isnan(R[i][a]) and not isnan(R[i][b])]
        corr[key] = pearson([d[i][a] for i in both], [d[i][b] for i in both])
    out["conflict"] = {"mixed_sign_rate": rate(mixed, len(live_rows)), "discordance": disc, "correlation": corr}
    out["budget"] = budget(raw, w, names, live, success)

    out["estimators"] = {}
    for label, A in advs.items():
        out["estimators"][label] = estimator(A, R, w, names, codes, scorable, G, live, live_rows, tolk, varies, sign, d, length)
    return out


def budget(raw, w, names, live, success=None, target=0.1):
    """DIAGNOSTICS.md ``budget`` by its definition (no --minimize: the default success is the
    first weighted objective at its largest value over the table's scorable rows)."""
    k = next(k for k in range(len(names)) if w[k] != 0)
    if success is None:
        best = max((raw[i][k] for rows in live.values() for i in rows if not isnan(raw[i][k])), default=None)
        ok = lambda v: best is not None and not isnan(v) and v == best
        condition = f"{names[k]} at its largest value ({best + 0.0:g})" if best is not None else f"{names[k]} at its largest value"
    else:
        name, op, number = success
        k = names.index(name)
        ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
               "==": lambda a, b: a == b}
        ok = lambda v: not isnan(v) and ops[op](v, number)
        condition = f"{name}{op}{number:g}"
    wins = [sum(1 for i in rows if ok(raw[i][k])) for rows in live.values()]
    sizes = [len(rows) for rows in live.values()]
    ps = [(s + 0.5) / (n + 1) for s, n in zip(wins, sizes)]
    expected = {N: (math.fsum(p ** N + (1 - p) ** N for p in ps) / len(ps) if ps else None) for N in [2 ** j for j in range(1, 11)]}
    return {
        "objective": names[k], "success": condition, "target": target, "live_groups": len(sizes),
        "observed_zero_variance_rate": rate(sum(1 for s, n in zip(wins, sizes) if s in (0, n)), len(sizes)),
        "zero_variance_rate": {str(N): expected[N] for N in (2, 4, 8, 16, 32, 64)},
        "group_size_for_target": next((N for N, e in expected.items() if e is not None and e <= target), None),
        "hopeless_group_rate": rate(sum(1 for s in wins if s == 0), len(sizes)),
        "solved_group_rate": rate(sum(1 for s, n in zip(wins, sizes) if s == n), len(sizes)),
    }


def same(x, y, t):
    if isnan(x) or isnan(y):
        return isnan(x) and isnan(y)
    return abs(x - y) <= t


def estimator(A, R, w, names, codes, scorable, G, live, live_rows, tolk, varies, sign, d, length):
    n, K = len(R), len(names)
    weighted = [k for k in range(K) if w[k] != 0]
    tola = {g: tol_of([A[i] for i in rows if scorable[i]]) for g, rows in G.items()}
    zero = [abs(A[i]) <= tola[codes[i]] for i in range(n)]
    sa = [0 if zero[i] else (1 if A[i] > 0 else -1) for i in range(n)]
    sc = [i for i in range(n) if scorable[i]]
    a = [A[i] for i in sc]
    absa = [abs(x) for x in a]
    adv = {
        "mean": mean(a), "std": math.sqrt(math.fsum((x - mean(a)) ** 2 for x in a) / len(a)),
        "mean_abs": mean(absa), "mean_sq": mean([x * x for x in a]), "max_abs": max(absa),
        "p99_abs": float(np.quantile(absa, 0.99)),
        "positive_rate": sum(sa[i] > 0 for i in sc) / len(sc), "negative_rate": sum(sa[i] < 0 for i in sc) / len(sc),
        "zero_rate": sum(sa[i] == 0 for i in sc) / len(sc),
    } if sc else None

    allzero = {g: all(zero[i] for i in rows) for g, rows in live.items()}
    signal = {g: any(varies[g, k] for k in weighted) for g in live}
    diff = coll = distA = distV = dom = viol = 0
    nz_groups = dominated = 0
    for g, rows in live.items():
        t = tola[g]
        distA += distinct_sorted([A[i] for i in rows], t)
        seen = []
        for i in rows:
            if not any(all(same(R[i][k], R[h][k], tolk[g, k]) for k in weighted) for h in seen):
                distV += 1
            seen.append(i)
        for i, h in itertools.combinations(rows, 2):
            if any(not same(R[i][k], R[h][k], tolk[g, k]) for k in weighted):
                diff += 1
                coll += abs(A[i] - A[h]) <= t
        top = max(A[i] for i in rows)
        winners = [i for i in rows if top - A[i] <= t]
        won_dominated = False
        for i in rows:
            for h in rows:
                if i != h and dominates(R, i, h, weighted, tolk, g):
                    dom += 1
                    viol += A[h] - A[i] > t
                    if h in winners:
                        won_dominated = True
        if not allzero[g]:
            nz_groups += 1
            dominated += won_dominated
    collapse = {
        "zero_variance_group_rate": rate(sum(allzero.values()), len(live)),
        "dead_row_rate": rate(sum(len(rows) for g, rows in live.items() if allzero[g]), len(live_rows)),
        "masked_signal_group_rate": rate(sum(allzero[g] and signal[g] for g in live), len(live)),
        "collapsed_pair_rate": rate(coll, diff),
        "resolution": rate(distA, distV),
    }
    flip, sil, inter = {}, {}, {}
    for k, name in enumerate(names):
        has = [i for i in sc if sign[i][k] != 0]
        both = [i for i in has if sa[i] != 0]
        flip[name] = rate(sum(sa[i] != sign[i][k] for i in both), len(both))
        sil[name] = rate(sum(sa[i] == 0 for i in has), len(has))
        elig = neg = 0
        for g, rows in live.items():
            a_vals = [A[i] for i in rows]
            if not (varies[g, k] and max(a_vals) - min(a_vals) > tola[g]):
                continue
            elig += 1
            v = [i for i in rows if not isnan(R[i][k])]
            mr, ma = mean([R[i][k] for i in v]), mean([A[i] for i in v])
            cov = math.fsum((R[i][k] - mr) * (A[i] - ma) for i in v) / len(v)
            neg += cov < -1e-12
        inter[name] = rate(neg, elig)
    # influence
    infl = {names[k]: None for k in weighted}
    infl["r2"] = None
    if live_rows:
        ma = {g: mean([A[i] for i in rows]) for g, rows in live.items()}
        av = np.array([A[i] - ma[codes[i]] for i in live_rows])
        D = np.array([[d[i][k] for k in weighted] for i in live_rows]).reshape(len(live_rows), len(weighted))
        ss = float(av @ av)
        if ss > 0:
            beta = np.linalg.pinv(D) @ av
            shares = [beta[j] * float(D[:, j] @ av) / ss for j in range(len(weighted))]
            for j, k in enumerate(weighted):
                infl[names[k]] = shares[j]
            infl["r2"] = sum(shares)
    # the derived paths, by their definitions
    flips = [flip[names[k]] for k in weighted if flip[names[k]] is not None]
    flip["max"] = max(flips) if flips else None
    total = sum(w[k] for k in weighted)
    if infl["r2"] and total != 0:
        infl["gap"] = sum(abs(infl[names[k]] / infl["r2"] - w[k] / total) for k in weighted)
    else:
        infl["gap"] = None
    out = {
        "advantage": adv, "collapse": collapse, "sign_flip": flip, "silenced": sil, "interference": inter,
        "pareto": {"dominated_winner_rate": rate(dominated, nz_groups), "order_violation_rate": rate(viol, dom)},
        "influence": infl,
    }
    if length is not None:
        L = length
        ma_all = {g: mean([A[i] for i in rows if scorable[i]]) for g, rows in G.items() if any(scorable[i] for i in rows)}
        ml_all = {g: mean([L[i] for i in rows if scorable[i]]) for g, rows in G.items() if any(scorable[i] for i in rows)}
        pos = [L[i] for i in sc if sa[i] > 0]
        negl = [L[i] for i in sc if sa[i] < 0]
        out["length"] = {
            "corr": pearson([A[i] for i in sc], [L[i] for i in sc]),
            "within_corr": pearson([A[i] - ma_all[codes[i]] for i in live_rows], [L[i] - ml_all[codes[i]] for i in live_rows]),
            "mean_length_positive": mean(pos) if pos else None,
            "mean_length_negative": mean(negl) if negl else None,
        }
        out["aggregation"] = aggregation(A, sa, L, scorable)
    return out


def aggregation(A, sa, L, scorable, batch=None):
    """DIAGNOSTICS.md ``aggregation`` by its definition: each batch's per-token weights
    (its factor applied), rows without tokens left out."""
    n = len(A)
    batch = batch or [0] * n
    members = {}
    for i in range(n):
        members.setdefault(batch[i], []).append(i)
    has = [not isnan(L[i]) and L[i] > 0 for i in range(n)]
    u = {mode: [0.0] * n for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")}
    for rows in members.values():
        size = len(rows)
        tokens = math.fsum(L[i] for i in rows if has[i])
        longest = max([L[i] for i in rows if has[i]], default=0.0)
        for i in rows:
            if has[i]:
                u["token_mean"][i] = 1 / tokens
                u["seq_mean_token_mean"][i] = 1 / (size * L[i])
                u["seq_mean_token_sum_norm"][i] = 1 / (size * longest)
    rows = [i for i in range(n) if scorable[i] and has[i]]
    out = {}
    for mode, w in u.items():
        Q = {i: A[i] * w[i] * L[i] for i in rows}
        pos = [i for i in rows if sa[i] > 0]
        neg = [i for i in rows if sa[i] < 0]
        out[mode] = {
            "up_share": rate(math.fsum(Q[i] for i in pos), math.fsum(abs(Q[i]) for i in rows)),
            "length_corr_positive": pearson([abs(A[i]) * w[i] for i in pos], [L[i] for i in pos]),
            "length_corr_negative": pearson([abs(A[i]) * w[i] for i in neg], [L[i] for i in neg]),
        }
    return out


def dominates(R, i, h, weighted, tolk, g):
    valid = [k for k in weighted if not isnan(R[i][k]) and not isnan(R[h][k])]
    if not valid:
        return False
    better = False
    for k in valid:
        dd = R[i][k] - R[h][k]
        if abs(dd) <= tolk[g, k]:
            continue
        if dd < 0:
            return False
        better = True
    return better


def kendall(x, y, tx, ty):
    conc = disc = tiex = tiey = n0 = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        n0 += 1
        dx, dy = x[i] - x[j], y[i] - y[j]
        ex, ey = abs(dx) <= tx, abs(dy) <= ty
        tiex += ex
        tiey += ey
        if ex or ey:
            continue
        if (dx > 0) == (dy > 0):
            conc += 1
        else:
            disc += 1
    den = (n0 - tiex) * (n0 - tiey)
    return (conc - disc) / math.sqrt(den) if den > 0 else None
