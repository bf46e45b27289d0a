"""A deliberately naive reference: plain Python loops per group, written from the text of
ESTIMATORS.md and nothing else from mocli. Slow and obvious on purpose."""

from __future__ import annotations

import math
import statistics

import numpy as np

from scipy.special import ndtri

NAN = float("nan")


def isnan(x):
    return x != x


def mean(xs):
    return math.fsum(xs) / len(xs)


def allequal(xs):
    return all(x == xs[0] for x in xs)


def std(xs, ddof):
    n = len(xs)
    if n <= ddof or allequal(xs):
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - ddof))


def div(c, sigma, eps, mode):
    if mode == "add":
        den = sigma + eps
    elif mode == "floor":
        den = max(sigma, eps)
    else:
        den = sigma + eps if sigma > 0 else 1.0
    return c if den == 0 else c / den


def groups(codes):
    out = {}
    for i, c in enumerate(codes):
        out.setdefault(c, []).append(i)
    return out


# ---------------------------------------------------------------------------------------
# preparation: nan policy, conditions, directions, scheme
# ---------------------------------------------------------------------------------------
OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
       "<": lambda a, b: a < b, "==": lambda a, b: a == b}


def holds(value, op, threshold):
    return (not isnan(value)) and OPS[op](value, threshold)


def scheme_value(name, p, row, raw_row, w, names):
    ks = [k for k in range(len(w)) if w[k] != 0]
    if name == "gated":
        cons = [c for c in p.get("constraints", [])]
        gated = {names.index(c[0]) for c in cons}
        if all(holds(raw_row[names.index(o)], op, t) for o, op, t in cons):
            return math.fsum(w[k] * row[k] for k in ks if k not in gated and not isnan(row[k]))
        return p.get("fail_value", 0.0)
    vk = [k for k in ks if not isnan(row[k])]
    if name == "weighted_sum":
        return math.fsum(w[k] * row[k] for k in vk)
    if name == "weighted_mean":
        return math.fsum(w[k] * row[k] for k in vk) / math.fsum(w[k] for k in vk)
    if name == "min":
        return min(row[k] for k in vk)
    if name == "uwo":
        vals = [row[k] for k in vk]
        m = mean(vals)
        return m - p.get("lam", 0.1) * math.fsum((v - m) ** 2 for v in vals) / len(vals)
    if name == "chebyshev":
        z = p["z"]
        worst = max(w[k] * (z[k] - row[k]) for k in vk)
        return -(worst + p.get("rho", 0.0) * math.fsum(z[k] - row[k] for k in vk))
    if name == "power_mean":
        q = p.get("p", 0.5)
        sw = math.fsum(w[k] for k in vk)
        if q == 0:
            return math.exp(math.fsum(w[k] * math.log(row[k]) for k in vk) / sw) if all(row[k] > 0 for k in vk) else 0.0
        with np.errstate(divide="ignore", over="ignore"):  # 0 ** -1 = inf, and inf ** -1 = 0
            return (math.fsum(w[k] * row[k] ** q for k in vk) / sw) ** (1 / q)
    if name == "product":
        out = 1.0
        for k in vk:
            out *= row[k] ** w[k]
        return out
    raise KeyError(name)


def prepare(raw, w, names, minimize=(), conditions=(), nan_policy="omit", scheme="weighted_sum", sp=None):
    """Returns (directed rows, scorable flags, s)."""
    sp = dict(sp or {})
    rows = [[(0.0 if (nan_policy == "zero" and isnan(v)) else v) for v in r] for r in raw]
    conditioned = []
    for r in rows:
        new = list(r)
        for obj, other, op, t, els in conditions:
            if not holds(r[names.index(other)], op, t):
                new[names.index(obj)] = els
        conditioned.append(new)
    directed = [[-v if names[k] in minimize else v for k, v in enumerate(r)] for r in conditioned]
    if scheme == "chebyshev" and "z" not in sp:
        sp["z"] = [max((r[k] for r in directed if not isnan(r[k])), default=0.0) for k in range(len(names))]
    scorable, s = [], []
    for r, rawr in zip(directed, conditioned):
        ok = any(not isnan(r[k]) for k in range(len(w)) if w[k] != 0)
        scorable.append(ok)
        s.append(scheme_value(scheme, sp, r, rawr, w, names) if ok else NAN)
    return directed, scorable, s


# ---------------------------------------------------------------------------------------
# batch helpers
# ---------------------------------------------------------------------------------------
def whiten(x, valid, p, length=None, eps=None):
    eps = p["eps"] if eps is None else eps
    idx = [i for i in range(len(x)) if valid[i]]
    out = [0.0] * len(x)
    if not idx or allequal([x[i] for i in idx]):
        return out
    if length is None:
        vals = [x[i] for i in idx]
        m, sd = mean(vals), std(vals, p["ddof"])
        for i in idx:
            out[i] = div(x[i] - m, sd, eps, p["eps_mode"])
        return out
    tokens = []
    for i in idx:
        tokens += [x[i]] * int(length[i])
    T = len(tokens)
    m = mean(tokens)
    var = math.fsum((t - m) ** 2 for t in tokens) / T
    if p["ddof"] == 1:
        var = var * T / (T - 1) if T > 1 else 0.0
    if p["eps_mode"] == "floor":
        den = math.sqrt(max(var, p["var_eps"]))
    elif p["eps_mode"] == "skip_zero" and var <= 0:
        den = 1.0
    else:
        den = math.sqrt(var + p["var_eps"])
    for i in idx:
        out[i] = (x[i] - m) / den
    return out


def zscore_column(vals_by_row, rows, p):
    """grpo rule on one column within one group: {row: z}."""
    valid = [i for i in rows if not isnan(vals_by_row[i])]
    out = {}
    n = len(valid)
    for i in valid:
        v = vals_by_row[i]
        if n == 1:
            out[i] = div(v, 1.0, p["eps"], p["eps_mode"]) if p["singleton"] == "raw" else 0.0
        elif allequal([vals_by_row[j] for j in valid]):
            out[i] = 0.0
        else:
            if p.get("leave_one_out"):
                others = [vals_by_row[j] for j in valid if j != i]
                mu = mean(others) if not allequal(others) else others[0]
                sd = std(others, p["ddof"])
            else:
                vals = [vals_by_row[j] for j in valid]
                mu, sd = mean(vals), std(vals, p["ddof"])
            out[i] = div(v - mu, sd, p["eps"], p["eps_mode"])
    return out


# ---------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------
def estimator(name, p, s, scorable, codes, rewards=None, w=None, length=None, baseline=None):
    n = len(s)
    A = [0.0] * n
    G = groups(codes)
    live = {g: [i for i in rows if scorable[i]] for g, rows in G.items()}
    live = {g: rows for g, rows in live.items() if rows}
    sv = [s[i] if scorable[i] else NAN for i in range(n)]

    if name in ("grpo", "dr_grpo"):
        scale = p.get("scale", "group") if name == "grpo" else "none"
        vals_all = [s[i] for i in range(n) if scorable[i]]
        sdB = std(vals_all, p.get("ddof", 1)) if vals_all else 0.0
        for g, rows in live.items():
            if scale == "group":
                A_g = zscore_column(sv, rows, p)
                for i in rows:
                    A[i] = A_g[i]
                continue
            vals = [s[i] for i in rows]
            for i in rows:
                if len(rows) == 1:
                    raw = s[i] if scale == "none" else div(s[i], sdB, p["eps"], p["eps_mode"])
                    A[i] = raw if p["singleton"] == "raw" else 0.0
                elif allequal(vals):
                    A[i] = 0.0
                else:
                    if p.get("leave_one_out"):
                        others = [s[j] for j in rows if j != i]
                        c = s[i] - (mean(others) if not allequal(others) else others[0])
                    else:
                        c = s[i] - mean(vals)
                    A[i] = c if scale == "none" else div(c, sdB, p["eps"], p["eps_mode"])
    elif name in ("rloo", "reinforce_pp_baseline"):
        for g, rows in live.items():
            vals = [s[i] for i in rows]
            for i in rows:
                if len(rows) == 1:
                    A[i] = s[i] if p["singleton"] == "raw" else 0.0
                elif allequal(vals):
                    A[i] = 0.0
                elif name == "rloo":
                    A[i] = s[i] - math.fsum(s[j] for j in rows if j != i) / (len(rows) - 1)
                else:
                    A[i] = s[i] - mean(vals)
        if name == "rloo" and p["normalize"]:
            A = whiten(A, scorable, p)
        if name == "reinforce_pp_baseline":
            A = whiten(A, scorable, p, length if p["token_weighted"] else None)
    elif name == "reinforce_pp":
        A = whiten([x if scorable[i] else 0.0 for i, x in enumerate(s)], scorable, p, length if p["token_weighted"] else None)
    elif name == "remax":
        for i in range(n):
            if scorable[i]:
                A[i] = 0.0 if isnan(baseline[i]) else s[i] - baseline[i]
    elif name == "opo":
        for g, rows in live.items():
            vals = [s[i] for i in rows]
            sl = math.fsum(length[i] for i in rows)
            for i in rows:
                if len(rows) == 1:
                    A[i] = s[i] if p["singleton"] == "raw" else 0.0
                elif allequal(vals) or sl == 0:
                    A[i] = 0.0
                else:
                    A[i] = s[i] - math.fsum(length[j] * s[j] for j in rows) / sl
    elif name == "gpg":
        B = sum(scorable)
        M = sum(len(rows) for rows in live.values() if rows and allequal([s[i] for i in rows]))
        if B != M:
            f = B / (B - M)
            for g, rows in live.items():
                vals = [s[i] for i in rows]
                for i in rows:
                    if len(rows) == 1:
                        A[i] = s[i] * f if p["singleton"] == "raw" else 0.0
                    elif not allequal(vals):
                        A[i] = (s[i] - mean(vals)) * f
    elif name == "passk":
        for g, rows in live.items():
            if not rows:
                continue
            if len(rows) == 1:
                raise ValueError("passk singleton")
            vals = [s[i] for i in rows]
            top = max(vals)
            first = next(i for i in rows if s[i] == top)
            second = sorted(vals, reverse=True)[1]
            gap = top - second
            if p["normalize"]:
                gap = div(gap, std(vals, p["ddof"]), p["eps"], p["eps_mode"])
            A[first] = 0.0 if allequal(vals) else gap
    elif name == "mc_grpo":
        for g, rows in live.items():
            vals = [s[i] for i in rows]
            med = statistics.median(vals)
            for i in rows:
                if len(rows) == 1:
                    if p["singleton"] == "raw":
                        A[i] = {"group": div(s[i], 1.0, p["eps"], p["eps_mode"]), "mad": s[i] / (1 + 1e-3), "none": s[i]}[p["scale"]]
                elif allequal(vals):
                    A[i] = 0.0
                elif p["scale"] == "group":
                    A[i] = div(s[i] - med, std(vals, p["ddof"]), p["eps"], p["eps_mode"])
                elif p["scale"] == "mad":
                    A[i] = (s[i] - med) / (statistics.median([abs(v - med) for v in vals]) + 1e-3)
                else:
                    A[i] = s[i] - med
    elif name == "g2rpo":
        for g, rows in live.items():
            m = len(rows)
            ordered = sorted(s[i] for i in rows)
            for i in rows:
                pos = [t for t in range(m) if ordered[t] == s[i]]
                if len(pos) == m:
                    A[i] = 0.0
                else:
                    A[i] = mean([float(ndtri((t + 0.5) / m)) for t in pos])
    elif name == "pref_grpo":
        win = [NAN] * n
        for g, rows in live.items():
            m = len(rows)
            for i in rows:
                if m == 1:
                    win[i] = 0.0
                else:
                    less = sum(1 for j in rows if s[j] < s[i])
                    ties = sum(1 for j in rows if j != i and s[j] == s[i])
                    win[i] = (less + 0.5 * ties) / (m - 1)
        for g, rows in live.items():
            if len(rows) == 1:
                continue  # no other row to win against: 0 under either singleton policy
            for i, z in zscore_column(win, rows, p).items():
                A[i] = z
    elif name == "dgpo":
        k = int(p["accuracy"][1:]) if p["accuracy"] else next(j for j in range(len(w)) if w[j] != 0)
        varying = {g: rows for g, rows in live.items() if len(rows) >= 2 and not allequal([s[i] for i in rows])}
        acc = {}
        for g, rows in varying.items():
            cells = [rewards[i][k] for i in rows if not isnan(rewards[i][k])]
            a = mean(cells) if cells else NAN
            acc[g] = 1.0 if isnan(a) or abs(a) <= 1e-8 else a
        total = math.fsum(math.exp(-acc[g] / p["T"]) for g in varying)
        ratio = 1.0
        if p["length_balance"] and length is not None:
            live_tokens = math.fsum(length[i] for g in varying for i in G[g])
            if live_tokens > 0:
                ratio = math.fsum(length) / live_tokens
        for g, rows in varying.items():
            vals = [s[i] for i in rows]
            m = mean(vals)
            spread = math.fsum(abs(x - m) for x in vals)
            weight = len(varying) * math.exp(-acc[g] / p["T"]) / total
            for i in rows:
                A[i] = len(rows) * (s[i] - m) / (spread + 1e-4) * weight * ratio
    elif name == "ngrpo":
        for g, rows in live.items():
            vals = [s[i] for i in rows]
            ext = vals + [p["r_max"]]
            for i in rows:
                if len(rows) == 1:
                    A[i] = div(s[i], 1.0, p["eps"], p["eps_mode"]) if p["singleton"] == "raw" else 0.0
                elif allequal(ext):
                    A[i] = 0.0
                else:
                    A[i] = div(s[i] - mean(ext), std(ext, p["ddof"]), p["eps"], p["eps_mode"])
    elif name in ("gdpo", "advantage_sum", "gd2po"):
        K = len(w)
        Z = [[0.0] * K for _ in range(n)]
        for k in range(K):
            if w[k] == 0:
                continue
            col = [rewards[i][k] if scorable[i] else NAN for i in range(n)]
            for g, rows in G.items():
                for i, z in zscore_column(col, rows, p).items():
                    Z[i][k] = z
        a = [math.fsum(w[k] * Z[i][k] for k in range(K)) for i in range(n)]
        if name == "advantage_sum" or (name == "gdpo" and not p["batch_norm"]):
            A = [a[i] if scorable[i] else 0.0 for i in range(n)]
        elif name == "gdpo":
            eps_b = p["eps"] if isnan(p["eps_batch"]) else p["eps_batch"]
            A = whiten(a, scorable, p, length if p["token_weighted"] else None, eps=eps_b)
        else:
            ks = [k for k in range(K) if w[k] != 0]
            mag = {}
            for g, rows in G.items():
                for k in ks:
                    mag[(g, k)] = max([abs(Z[i][k]) for i in rows] + [0.0])
            kept = list(scorable)
            for i in range(n):
                if not scorable[i]:
                    continue
                zero = lambda k: abs(Z[i][k]) <= 1e-9 * max(1.0, mag[(codes[i], k)])
                pos = any(Z[i][k] > 0 and not zero(k) for k in ks)
                neg = any(Z[i][k] < 0 and not zero(k) for k in ks)
                tot = math.fsum(abs(Z[i][k]) for k in ks)
                c = math.fsum(Z[i][k] for k in ks) / tot if tot > 0 else 0.0
                if pos and neg and abs(c) < p["tau"]:
                    kept[i] = False
            v = [0.0] * n
            for g, rows in G.items():
                sc = [i for i in rows if scorable[i]]
                rho = sum(kept[i] for i in sc) / len(sc) if sc else 0.0
                for i in sc:
                    v[i] = a[i] * rho
            A = whiten(v, kept, p)
    elif name == "dvao":
        K = len(w)
        for g, rows in live.items():
            if len(rows) == 1:
                i = rows[0]
                if p["singleton"] == "raw":
                    ks = [k for k in range(K) if w[k] != 0 and not isnan(rewards[i][k])]
                    den = math.fsum(w[k] for k in ks)
                    A[i] = math.fsum(w[k] * rewards[i][k] for k in ks) / den if den else 0.0
                continue
            num = {i: [] for i in rows}
            den = []
            for k in range(K):
                if w[k] == 0:
                    continue
                valid = [i for i in rows if not isnan(rewards[i][k])]
                vals = [rewards[i][k] for i in valid]
                if not vals:
                    continue
                if allequal(vals):
                    continue
                m = mean(vals)
                den.append(w[k] * std(vals, 0))
                for i in valid:
                    num[i].append(w[k] * (rewards[i][k] - m))
            d = math.fsum(den)
            for i in rows:
                A[i] = math.fsum(num[i]) / d if d != 0 else 0.0
    else:
        raise KeyError(name)
    clip = p.get("clip", 0.0)
    out = []
    for i in range(n):
        a = A[i] if scorable[i] else 0.0
        if clip > 0:
            a = max(-clip, min(clip, a))
        out.append(a)
    return out
