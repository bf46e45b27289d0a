from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.skip("../shared/data/real is not present")
    return REAL


@pytest.fixture
def run_cli(capfd):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from mocli.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return code, out, err

    return run


# The CUDA kernels' parity run under numba-cuda's simulator is the longest single test (a
# child process of its own, see tests/test_cuda.py). When it is collected it starts as
# soon as collection ends, so that it runs beside the rest of the suite instead of after
# it; the test then waits for it and checks its outcome.
SIMULATOR_TEST = "test_cuda_kernels_match_cpu_under_the_simulator"
simulator_run: dict[str, object] = {}


def simulator_command() -> tuple[list[str], dict[str, str]]:
    here = Path(__file__).parent
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", MOCLI_CUDA_BLOCK="4")
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "cuda_parity.py")], env


def pytest_collection_finish(session):
    if any(item.name == SIMULATOR_TEST for item in session.items) and not simulator_run:
        cmd, env = simulator_command()
        out = tempfile.TemporaryFile(mode="w+")
        simulator_run["process"] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                                    cwd=Path(__file__).parents[1])
        simulator_run["output"] = out


def pytest_sessionfinish(session):
    process = simulator_run.get("process")
    if process is not None and process.poll() is None:  # the run ended before the test waited for it
        process.kill()
