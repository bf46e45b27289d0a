"""Segment primitives over ragged groups.

This package is the one place that decides which backend runs the kernels. Today that is
the Numba CPU backend (:mod:`mocli.kernels.cpu`); other backends export the same names
with the same signatures (see ``PRIMITIVES``).
"""

from __future__ import annotations

from .cpu import (
    PRIMITIVES,
    csr_from_codes,
    ndtri,
    seg_loo_mean_var,
    seg_mean_var,
    seg_median,
    seg_min_max,
    seg_normal_scores,
    seg_rank,
    seg_top2,
    seg_weighted_mean,
)

__all__ = [
    "PRIMITIVES",
    "csr_from_codes",
    "ndtri",
    "seg_loo_mean_var",
    "seg_mean_var",
    "seg_median",
    "seg_min_max",
    "seg_normal_scores",
    "seg_rank",
    "seg_top2",
    "seg_weighted_mean",
]
