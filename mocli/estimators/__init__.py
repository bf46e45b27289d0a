"""Advantage estimators: one registry, one call signature (``estimator(batch) -> adv``).

Scalar estimators read the scheme's score ``batch.scalar``; decoupled ones read the
reward matrix ``batch.rewards``. Third-party estimators register through the
``mocli.estimators`` entry-point group (a frozen dataclass deriving from
:class:`Estimator`).
"""

from __future__ import annotations

from . import scalar  # noqa: F401  (registers the scalar estimators first, ...)
from . import decoupled  # noqa: F401, I001  (... then the decoupled ones: listing order)
from .base import ESTIMATORS, Estimator, Grouped, GroupScaled, Scaled

__all__ = ["ESTIMATORS", "Estimator", "Grouped", "GroupScaled", "Scaled"]
