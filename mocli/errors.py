"""Exceptions that the command line turns into one ``error:`` line and exit status 2."""

from __future__ import annotations

import signal


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (a reader's error can run to many), for an
    ``error:`` line that names the file or output it is about."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class MocliError(Exception):
    """Bad usage or bad input: the message names the culprit and what is accepted."""

    exit_code = 2


class UsageError(MocliError):
    """An option, estimator, scheme, profile or parameter the user wrote is not valid."""


class InputError(MocliError):
    """A file, column or value in the rollout data is not usable."""


def interrupted_line(signum: int, written: list[str] | tuple[str, ...] = ()) -> str:
    """The one ``error:`` line a run stopped by a signal ends with."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if written:
        return f"error: interrupted by {name} after {', '.join(repr(c) for c in written)} was written in full\n"
    return f"error: interrupted by {name}; no output was written or changed\n"


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the run stops, leaving no partial output behind. A
    BaseException, as KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)
