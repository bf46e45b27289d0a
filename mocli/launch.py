"""The ``mocli`` command's entry point. Loading the command line (Typer, Polars, Numba and
mocli's modules) takes a noticeable moment; a Ctrl-C (SIGINT) or a SIGTERM within it ends
the run with the same one line as one later on, not a traceback or a silent death: nothing
has begun, so nothing was written. Once loaded, the command line's own handlers take over."""

from __future__ import annotations

import signal
import sys

from .errors import Interrupted, interrupted_line


def _stop(signum, frame) -> None:
    raise Interrupted(signum)


def main() -> None:
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # one the parent ignores stays ignored
        signal.signal(signal.SIGTERM, _stop)
    try:
        from .cli import main as run
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        sys.stderr.write(interrupted_line(signum))
        sys.exit(128 + signum)
    run()
