"""Hypothesis strategies for random ragged rollout tables."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

NAN = float("nan")
# dyadic (2**-10 as the small value, not 1e-3): every weighted sum of them is exact, so a
# group is constant in mocli's sums exactly when it is in the reference's exact ones (with
# 1e-3, 2*1e-3 + 0.5 + 0.5 and 2*0.5 + 1e-3 + 1e-3 differ in the last bit summed in order)
VALUES = [0.0, 1.0, 0.5, -1.0, 2.5, 2.0**-10, NAN]


@st.composite
def tables(draw, k_max=6, nan=True, nonneg=False, min_rows=1, max_rows=36):
    n = draw(st.integers(min_rows, max_rows))
    k = draw(st.integers(1, k_max))
    codes = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    pool = [v for v in VALUES if (nan or v == v) and (not nonneg or not v < 0)]
    discrete = draw(st.booleans())
    if discrete:
        elem = st.sampled_from(pool)
    else:
        lo = 0.0 if nonneg else -3.0
        # nine decimals: no value so tiny that its square underflows (2e-166 did: the
        # reference and mocli then lose different bits, and an advantage of 1e-154 is noise)
        num = st.floats(lo, 3.0, allow_nan=False).map(lambda v: round(v, 9))
        elem = st.one_of(num, st.just(NAN) if nan else num)
    rewards = [[draw(elem) for _ in range(k)] for _ in range(n)]
    weights = draw(st.lists(st.sampled_from([1.0, 0.5, 2.0, 0.0]), min_size=k, max_size=k))
    if all(w == 0 for w in weights):
        weights[0] = 1.0
    length = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n))
    baseline = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, NAN]), min_size=n, max_size=n))
    return {
        "rewards": np.array(rewards, dtype=np.float64).reshape(n, k),
        "codes": codes,
        "weights": np.array(weights),
        "length": np.array(length, dtype=np.float64),
        "baseline": np.array(baseline, dtype=np.float64),
    }
