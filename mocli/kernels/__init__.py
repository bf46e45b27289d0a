"""Segment primitives over ragged groups, and the one place that picks a device for them.

A :class:`Device` holds one backend's kernels: the primitives (``PRIMITIVES``: the same
names, signatures and numbers on both) and the one-pass estimator steps (``fused.STEPS``).
:data:`CPU` is the Numba CPU device; :func:`device` resolves ``"cpu"``, ``"cuda"`` or
``"auto"`` (CUDA only when numba-cuda finds a GPU that runs a check kernel) once per run,
and the result is passed to whatever computes. Importing mocli never loads numba-cuda or
touches a GPU; resolving ``"cuda"`` does.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import UsageError
from . import cpu, fused
from .cpu import PRIMITIVES

DEVICES = ("cpu", "cuda", "auto")


class Device:
    """One backend's kernels under the names of ``PRIMITIVES`` and ``fused.STEPS``, plus the
    host passes that run on the CPU whichever device computes (batch-wide sums, the
    layout, the schemes)."""

    # host passes: the same functions on either device
    masked_moments = staticmethod(fused.masked_moments)
    masked_comoments = staticmethod(fused.masked_comoments)
    masked_affine = staticmethod(fused.masked_affine)
    csr_from_codes = staticmethod(cpu.csr_from_codes)  # the layout is always built on the host
    weighted_nansum = staticmethod(cpu.weighted_nansum)
    objective_deviations = staticmethod(cpu.objective_deviations)  # the diagnostics' per-cell view

    def __init__(self, name: str, primitives: ModuleType, steps: ModuleType) -> None:
        self.name = name
        for attr in PRIMITIVES:
            setattr(self, attr, getattr(primitives, attr))
        for attr in fused.STEPS:
            setattr(self, attr, getattr(steps, attr))

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


CPU = Device("cpu", cpu, fused)


def _cuda_module() -> ModuleType | None:
    try:
        from . import cuda as cuda_backend  # numba-cuda is optional: loaded only when asked for
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


_CUDA_DEVICE: list[Device] = []


def device(name: str) -> Device:
    """The device a run computes on: ``cpu``, ``cuda`` (refused with the reason when it
    cannot run) or ``auto`` (CUDA only when it can)."""
    if isinstance(name, Device):
        return name
    if name not in DEVICES:
        raise UsageError(f"--device '{name}' is not one of {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return CPU
    problem = _cuda_problem()
    if problem is not None:
        raise UsageError(f"--device cuda: {problem}; use --device cpu or auto")
    if not _CUDA_DEVICE:
        mod = _cuda_module()
        _CUDA_DEVICE.append(Device("cuda", mod, mod))
    return _CUDA_DEVICE[0]


__all__ = ["CPU", "DEVICES", "PRIMITIVES", "Device", "cuda_available", "device"]
