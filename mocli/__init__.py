"""mocli: reward composition and offline advantage analysis for multi-reward RL.

The names below are loaded on first use, so that ``import mocli`` (and the command's own
start, which guards its imports against an early Ctrl-C) costs nothing until a name is
asked for."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_WHERE = {
    "Settings": ".api", "advantages_table": ".api", "analyze": ".api", "flip_rows": ".api", "sweep": ".api",
    "verify": ".api",
    "Batch": ".core.rollouts", "Rollouts": ".core.rollouts",
    "Analysis": ".diagnostics", "Report": ".diagnostics", "analyze_rollouts": ".diagnostics",
    "Candidate": ".diagnostics.sweep", "Sweep": ".diagnostics.sweep",
    "compute_advantages": ".engine.pipeline", "make_estimator": ".engine.pipeline", "make_scheme": ".engine.pipeline",
    "prepare": ".engine.prepare",
    "InputError": ".errors", "MocliError": ".errors", "UsageError": ".errors",
    "ESTIMATORS": ".estimators", "Estimator": ".estimators",
    "load": ".io.files", "write_table": ".io.files",
    "PROFILES": ".profiles",
    "SCHEMES": ".schemes",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mocli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from .api import Settings, advantages_table, analyze, flip_rows, sweep, verify  # noqa: F401
    from .core.rollouts import Batch, Rollouts  # noqa: F401
    from .diagnostics import Analysis, Report, analyze_rollouts  # noqa: F401
    from .diagnostics.sweep import Candidate, Sweep  # noqa: F401
    from .engine.pipeline import compute_advantages, make_estimator, make_scheme  # noqa: F401
    from .engine.prepare import prepare  # noqa: F401
    from .errors import InputError, MocliError, UsageError  # noqa: F401
    from .estimators import ESTIMATORS, Estimator  # noqa: F401
    from .io.files import load, write_table  # noqa: F401
    from .profiles import PROFILES  # noqa: F401
    from .schemes import SCHEMES  # noqa: F401
