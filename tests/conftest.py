from __future__ import annotations

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
