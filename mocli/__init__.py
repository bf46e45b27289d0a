"""mocli: reward composition and offline advantage analysis for multi-reward RL."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Settings, advantages_table, analyze, flip_rows, sweep, verify
from .core.rollouts import Batch, Rollouts
from .diagnostics import Analysis, Report, analyze_rollouts
from .diagnostics.sweep import Candidate, Sweep
from .engine.pipeline import compute_advantages, make_estimator, make_scheme
from .engine.prepare import prepare
from .errors import InputError, MocliError, UsageError
from .estimators import ESTIMATORS, Estimator
from .io.files import load, write_table
from .profiles import PROFILES
from .schemes import SCHEMES

__all__ = [
    "Analysis", "Batch", "Candidate", "ESTIMATORS", "Estimator", "InputError", "MocliError", "PROFILES", "Report",
    "Rollouts", "SCHEMES", "Settings", "UsageError", "advantages_table", "analyze",
    "analyze_rollouts", "compute_advantages", "flip_rows", "load", "make_estimator",
    "make_scheme", "prepare", "sweep", "Sweep", "verify", "write_table",
]
