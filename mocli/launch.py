"""The ``mocli`` command's entry point. Loading the command line (Typer, Polars, Numba and
mocli's modules) takes a noticeable moment; a Ctrl-C within it ends the run with the same
one line as one later on, not a traceback: nothing has begun, so nothing was written."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        from .errors import interrupted_line

        sys.stderr.write(interrupted_line(signal.SIGINT))
        sys.exit(128 + signal.SIGINT)
    run()
