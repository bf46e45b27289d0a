"""Segment primitives over ragged groups, and the one place that decides which backend
runs them.

The Numba CPU backend (:mod:`mocli.kernels.cpu`) is the default. ``use("cuda")`` (or
``"auto"``, which picks CUDA only when numba-cuda finds a GPU that runs a check kernel)
switches every primitive to :mod:`mocli.kernels.cuda`, which exports the same names with
the same signatures (``PRIMITIVES``), and :func:`steps` to its one-pass estimator steps.
Importing mocli never loads numba-cuda or touches a GPU; choosing a device does.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Iterator

from ..errors import UsageError
from . import cpu, fused
from .cpu import PRIMITIVES

DEVICES = ("cpu", "cuda", "auto")
_backend: ModuleType = cpu


def _cuda_module() -> ModuleType | None:
    try:
        from . import cuda as cuda_backend
    except ImportError:
        return None
    return cuda_backend


_CUDA_PROBLEM: list[str | None] = []  # filled once per process by _cuda_problem


def _cuda_problem() -> str | None:
    """Why mocli's CUDA kernels cannot run here, or None when they can: numba-cuda is
    missing, it sees no GPU, or a small kernel fails to compile and run (an environment
    where numba-cuda and NumPy do not fit together, say). Checked once per process."""
    if not _CUDA_PROBLEM:
        mod = _cuda_module()
        problem = None
        if mod is None:
            problem = "numba-cuda is not installed (pip install mocli[cuda])"
        else:
            try:
                if not mod.cuda.is_available():
                    problem = "numba-cuda finds no CUDA device (check the driver)"
                else:
                    mod.probe()
            except Exception as exc:  # whatever breaks here is the environment's
                problem = f"numba-cuda cannot run a kernel here ({type(exc).__name__}: {exc})"
        _CUDA_PROBLEM.append(problem)
    return _CUDA_PROBLEM[0]


def cuda_available() -> bool:
    """numba-cuda is installed, sees a GPU (or its simulator is on) and runs a kernel."""
    return _cuda_problem() is None


def use(device: str) -> str:
    """Select the backend for every primitive; returns the device actually used."""
    global _backend
    if device not in DEVICES:
        raise UsageError(f"--device '{device}' is not one of {', '.join(DEVICES)}")
    if device == "cpu" or (device == "auto" and not cuda_available()):
        _backend = cpu
        return "cpu"
    problem = _cuda_problem()
    if problem is not None:
        raise UsageError(f"--device cuda: {problem}; use --device cpu or auto")
    _backend = _cuda_module()
    return "cuda"


@contextlib.contextmanager
def device(name: str) -> Iterator[str]:
    """Run a block on a device, then restore the previous backend."""
    global _backend
    previous = _backend
    try:
        yield use(name)
    finally:
        _backend = previous


def current() -> str:
    return "cpu" if _backend is cpu else "cuda"


def steps() -> ModuleType | None:
    """The module with the current device's one-pass estimator steps (``fused.STEPS``):
    :mod:`mocli.kernels.fused` on the CPU, :mod:`mocli.kernels.cuda` on a GPU. None only
    when a test routes the estimators through their composed reference path (by making
    :func:`current` answer something else), which the steps are checked against."""
    return {"cpu": fused, "cuda": _backend}.get(current())


def _dispatch(name: str):
    def primitive(*args, **kwargs):
        return getattr(_backend, name)(*args, **kwargs)

    primitive.__name__ = name
    primitive.__doc__ = getattr(cpu, name).__doc__
    return primitive


seg_mean_var = _dispatch("seg_mean_var")
seg_weighted_mean = _dispatch("seg_weighted_mean")
seg_loo_mean_var = _dispatch("seg_loo_mean_var")
seg_median = _dispatch("seg_median")
seg_median_mean_var = _dispatch("seg_median_mean_var")
seg_min_max = _dispatch("seg_min_max")
seg_top2 = _dispatch("seg_top2")
seg_rank = _dispatch("seg_rank")
seg_normal_scores = _dispatch("seg_normal_scores")
csr_from_codes = cpu.csr_from_codes  # the layout is always built on the host
weighted_nansum = cpu.weighted_nansum  # schemes run on the host
ndtri = _dispatch("ndtri")

__all__ = [
    "DEVICES", "PRIMITIVES", "cuda_available", "current", "csr_from_codes", "device", "ndtri",
    "seg_loo_mean_var", "seg_mean_var", "seg_median", "seg_median_mean_var", "seg_min_max", "seg_normal_scores",
    "seg_rank", "seg_top2", "seg_weighted_mean", "steps", "use", "weighted_nansum",
]
