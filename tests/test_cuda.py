"""The CUDA backend, under numba-cuda's simulator (skipped without numba-cuda)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")

HERE = Path(__file__).parent


def test_cuda_kernels_match_cpu_under_the_simulator():
    """tests/cuda_parity.py under NUMBA_ENABLE_CUDASIM=1 with blocks of 4 threads, in a
    child process that conftest.py started when collection ended (or here, when it did
    not)."""
    from .conftest import simulator_command, simulator_run

    process = simulator_run.pop("process", None)
    if process is None:
        cmd, env = simulator_command()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE.parent, timeout=900)
        code, output = run.returncode, run.stdout + run.stderr
    else:
        code = process.wait(timeout=900)
        out = simulator_run.pop("output")
        out.seek(0)
        output = out.read()
    assert code == 0, output[-6000:]
    assert " passed" in output


def test_device_choice(run_cli, tmp_path):
    from mocli import kernels

    assert kernels.device("cpu") is kernels.CPU and kernels.device("cpu").name == "cpu"
    f = tmp_path / "r.csv"
    f.write_text("g,r\n1,1\n1,0\n")
    code, _, err = run_cli("advantages", f, "-g", "g", "-r", "r", "--device", "gpu", "-o", tmp_path / "o.parquet")
    assert code == 2 and "--device 'gpu'" in err


def test_a_cuda_that_cannot_run_kernels_is_refused_cleanly(run_cli, tmp_path, monkeypatch):
    """numba-cuda present and a GPU seen, but a kernel fails to compile (as numba-cuda
    0.30.4 does beside NumPy 2.5): ``auto`` stays on the CPU, ``cuda`` is one error line."""
    from mocli import kernels
    from mocli.kernels import cuda as backend

    def broken():
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setattr(kernels, "_CUDA_PROBLEM", [])
    monkeypatch.setattr(backend.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backend, "probe", broken)
    assert kernels.device("auto") is kernels.CPU
    f = tmp_path / "r.csv"
    f.write_text("g,r\n1,1\n1,0\n")
    code, out, err = run_cli("advantages", f, "-g", "g", "-r", "r", "--device", "cuda", "-o", tmp_path / "o.parquet")
    assert code == 2 and out == "" and not (tmp_path / "o.parquet").exists()
    assert err.startswith("error: --device cuda: numba-cuda cannot run a kernel here (AttributeError:")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_without_a_gpu_cuda_names_the_reason(run_cli, tmp_path, monkeypatch):
    from mocli import kernels
    from mocli.kernels import cuda as backend

    monkeypatch.setattr(kernels, "_CUDA_PROBLEM", [])
    monkeypatch.setattr(backend.cuda, "is_available", lambda: False)
    f = tmp_path / "r.csv"
    f.write_text("g,r\n1,1\n1,0\n")
    code, _, err = run_cli("analyze", f, "-g", "g", "-r", "r", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err
    assert kernels.device("auto") is kernels.CPU


def test_small_grid_warnings_stay_out_of_stderr():
    """numba-cuda warns when a launch has fewer than 128 blocks (every small input does):
    the backend's launches keep that one warning quiet, and no other."""
    import warnings

    from mocli.kernels import cuda as backend

    class Kernel:
        def __getitem__(self, config):
            self.config = config
            warnings.warn("\x1b[1mGrid size 1 will likely result in GPU under-utilization due to low occupancy.\x1b[0m")
            return lambda *args: setattr(self, "args", args)

    k = Kernel()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        backend._go(k, 10, "a", 1)
        warnings.warn("something else")
    assert k.args == ("a", 1) and k.config == backend._launch(10)
    assert [str(w.message) for w in seen] == ["something else"]


def test_thread_local_arrays_have_sizes_fixed_when_compiled():
    """A real GPU compiles ``cuda.local.array(n, ...)`` (and ``shared.array``) only when
    ``n`` is a constant: an int literal or a plain global of the module. A module's
    attribute (``fused.STATS``) types as a run-time int64 and fails there, while the
    simulator, which CI runs, accepts anything; this was found on an H100."""
    import ast

    from mocli.kernels import cuda as backend

    tree = ast.parse(Path(backend.__file__).read_text())
    sizes = [node.args[0] for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "array"
             and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in ("local", "shared")]
    assert sizes, "no thread-local arrays found: the check no longer looks at the right calls"
    for size in sizes:
        where = f"cuda.py line {size.lineno}: {ast.unparse(size)}"
        if isinstance(size, ast.Constant):
            assert isinstance(size.value, int), where
        else:
            assert isinstance(size, ast.Name), where + " is not a literal or a plain global"
            assert isinstance(getattr(backend, size.id), int), where
