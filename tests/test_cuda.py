"""The CUDA backend, under numba-cuda's simulator (skipped without numba-cuda)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")

HERE = Path(__file__).parent


def test_cuda_kernels_match_cpu_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", MOCLI_CUDA_BLOCK="4")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "cuda_parity.py")],
                         env=env, capture_output=True, text=True, cwd=HERE.parent, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout


def test_device_choice(run_cli, tmp_path):
    from mocli import kernels

    assert kernels.use("cpu") == "cpu" and kernels.current() == "cpu"
    f = tmp_path / "r.csv"
    f.write_text("g,r\n1,1\n1,0\n")
    code, _, err = run_cli("advantages", f, "-g", "g", "-r", "r", "--device", "gpu", "-o", tmp_path / "o.parquet")
    assert code == 2 and "--device 'gpu'" in err
