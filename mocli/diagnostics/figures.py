"""Data behind the pictures (terminal sparklines and the HTML report): advantage
histograms on shared bins, and a sample of rows for the scatter of two estimators. Not part
of the JSON report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.rollouts import Batch
from ..kernels import CPU, Device


@dataclass
class Figures:
    edges: np.ndarray  # (bins + 1,) shared by every estimator
    histograms: dict[str, np.ndarray] = field(default_factory=dict)  # label -> counts
    scatter: dict | None = None  # {"a", "b", "x", "y", "outcome"} for the first two estimators


OUTCOMES = ("below group mean", "at group mean", "above group mean")


def make_figures(advs: dict[str, np.ndarray], batch: Batch, bins: int = 31, points: int = 1500, seed: int = 0,
                 device: Device = CPU) -> Figures:
    sc = batch.scorable
    vals = [a[sc] for a in advs.values() if a[sc].size]
    top = max((float(np.abs(v).max()) for v in vals), default=1.0) or 1.0
    edges = np.linspace(-top, top, bins + 1)
    fig = Figures(edges)
    for label, a in advs.items():
        fig.histograms[label] = np.histogram(a[sc], bins=edges)[0]
    labels = list(advs)
    if len(labels) >= 2 and sc.any():
        rows = np.flatnonzero(sc)
        if rows.size > points:
            rows = np.sort(np.random.default_rng(seed).choice(rows, points, replace=False))
        mean, _, _, _ = device.seg_mean_var(batch.scalar, sc, batch.order, batch.offsets, 0)
        d = batch.scalar - mean[batch.codes]
        tol = 1e-9 * np.maximum(1.0, np.abs(batch.scalar))
        outcome = np.where(d > tol, 2, np.where(d < -tol, 0, 1))
        a, b = labels[0], labels[1]
        fig.scatter = {"a": a, "b": b, "x": advs[a][rows], "y": advs[b][rows], "outcome": outcome[rows]}
    return fig
