"""The ``mocli`` command line: parse options, call the library, render. Errors become one
``error: ...`` line on stderr and exit status 2 (a traceback only with ``--debug``)."""

from __future__ import annotations

import sys

import click
import typer

from ..errors import MocliError
from .commands import app


def _fail(message: str) -> int:
    text = " ".join(str(message).split())
    sys.stderr.write(f"error: {text}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="mocli", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except MocliError as exc:
        if debug:
            raise
        code = _fail(str(exc))
    except click.exceptions.NoArgsIsHelpError as exc:  # `mocli` alone: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        code = 0
    except click.UsageError as exc:
        if debug:
            raise
        code = _fail(exc.format_message())
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = _fail("aborted")
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: still no traceback unless asked
        if debug:
            raise
        code = _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback")
    if argv is None:
        sys.exit(code)
    return code
