"""Advantage estimators: one registry, one call signature (``estimator(batch, work) ->
adv``).

Scalar estimators read the scheme's score ``batch.scalar``; decoupled ones read the
reward matrix ``batch.rewards``. Every module of this package is imported with it, so an
estimator in a module of its own registers itself (the scalar ones first, then the
decoupled ones, then the other modules by name: the listing order). Third-party
estimators register through the ``mocli.estimators`` entry-point group (a frozen
dataclass deriving from :class:`Estimator`).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import ESTIMATORS, Estimator, Grouped, GroupScaled, Scaled

_HELPERS = {"base", "normalise", "notation"}
_FIRST = ["scalar", "decoupled"]
for _name in _FIRST + sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _HELPERS | set(_FIRST)):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["ESTIMATORS", "Estimator", "Grouped", "GroupScaled", "Scaled"]
