"""The ``mocli`` command line: parse options, call the library, render. Errors become one
``error: ...`` line on stderr and exit status 2 (a traceback only with ``--debug``)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import typer
from numba.core import event as numba_event

from ..errors import Interrupted, MocliError, interrupted_line
from ..io.chunks import clean_stale_chunks
from ..io.outputs import check_interrupted, committed, handling_signals
from .commands import app
from .progress import progress_on_stderr


def _fail(message: str) -> int:
    text = " ".join(str(message).split())
    sys.stderr.write(f"error: {text}\n")
    return 2


COMPILING = ("note: compiling mocli's kernels for this machine; this happens once, later runs load them "
             "from Numba's cache (docs/ci.md: keeping that cache between CI runs)\n")


class CompileNote(numba_event.Listener):
    """Says once, on a terminal's stderr, that kernels are being compiled: Numba fires its
    compile event only on a cache miss, so a warm run says nothing."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.said = False

    def on_start(self, event) -> None:
        if not self.said and self.stream.isatty():
            self.said = True
            self.stream.write(COMPILING)
            self.stream.flush()

    def on_end(self, event) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        command = typer.main.get_command(app)
        with contextlib.suppress(OSError):
            clean_stale_chunks(os.environ.get("MOCLI_TMPDIR") or None)  # what killed runs left
        with handling_signals(last=argv is None), numba_event.install_listener("numba:compile", CompileNote(sys.stderr)), \
                progress_on_stderr() as progress:
            rv = command.main(args=args, prog_name="mocli", standalone_mode=False, obj=progress)
            check_interrupted()  # a signal whose exception native code swallowed still stops the run
        code = rv if isinstance(rv, int) else 0
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        sys.stderr.write(interrupted_line(signum, committed))
        code = 128 + signum
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = _fail("aborted")
    except MocliError as exc:
        if debug:
            raise
        code = _fail(str(exc))
    except BrokenPipeError:
        code = 0
    except Exception as exc:
        # Typer's parser errors (its own copy of click's, or click's in older releases) carry
        # format_message(); anything else is a bug, still reported without a traceback.
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mocli` alone: help, not an error
            ctx = getattr(exc, "ctx", None)
            sys.stdout.write((ctx.get_help() if ctx else "") + "\n")
            code = 0
        elif debug:
            raise
        elif hasattr(exc, "format_message"):
            code = _fail(exc.format_message())
        else:
            code = _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback")
    if argv is None:
        sys.exit(code)
    return code
