"""Writing output files so that a run leaves either the whole new file or nothing: every
output goes to a temporary file beside the target and is renamed over it at the end; a
failure or an interruption (SIGINT, SIGTERM) removes the temporary file and leaves an
existing target as it was. An output that is also an input is refused unless asked for."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, Interrupted, UsageError, first_line

_received: list[int] = []  # signals seen, acted on at the next check
committed: list[str] = []  # outputs renamed into place, whole, in this run


def _on_signal(signum, frame) -> None:
    """Note the signal; the run stops at its next check (:func:`check_interrupted`,
    between reading, computing and writing steps), never inside native code, a callback
    or a clean-up. A second signal stops it at once."""
    _received.append(signum)
    if len(_received) == 2:
        raise Interrupted(_received[0])


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handling_signals(last: bool = False) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop the run at its next check with
    :class:`Interrupted` (the command line's handlers, not the library's: a host program
    keeps its own); the previous
    handlers come back afterwards, or with ``last`` (the process ends with the block)
    the signals are ignored from then on, so that a run whose work is done is not killed
    on its way out."""
    _received.clear()
    committed.clear()
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        with deferred_signals():
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_IGN if last else handler)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back within the block (a clean-up that must not stop half
    way); one that arrived meanwhile is delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived since the run began."""
    if _received:
        raise Interrupted(_received[0])



def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def replacing(path: str | os.PathLike, what: str = "") -> Iterator[str]:
    """Yield a temporary file's path beside ``path``; when the block ends without error
    (and no signal arrived), rename it over ``path``. Any error, an interruption
    included, removes the temporary file. ``what`` names the format in errors."""
    target = Path(path)
    _remove_stale(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.resolve().parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write '{path}': {exc.strerror or first_line(exc)} (in folder '{target.resolve().parent}')") from None
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would otherwise reach the output
        yield tmp
        with deferred_signals():
            check_interrupted()
            os.replace(tmp, target)
            committed.append(str(path))
    except BaseException as exc:
        with deferred_signals():
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (InputError, UsageError, Interrupted, KeyboardInterrupt)):
            raise
        if isinstance(exc, Exception):
            how = f" as {what}" if what else ""
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            with contextlib.suppress(OSError):
                if shutil.disk_usage(target.resolve().parent).free < 1 << 20:
                    reason = f"no space left on the device ({reason})"
            raise InputError(f"cannot write '{path}'{how}: {reason}") from None
        raise


def _remove_stale(target: Path) -> None:
    """Temporary files for ``target`` that a killed run (SIGKILL, a power cut) left: named
    after a process that no longer runs."""

    with contextlib.suppress(OSError):
        for entry in target.resolve().parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            pid = entry.name[len(target.name) + 2:].split(".", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                entry.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Fail before any work when ``path`` cannot be written: its folder missing, a folder
    in its place, or the folder (or an existing file) not writable (a read-only file
    system included)."""
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{option} '{path}': folder '{target.parent}' does not exist")
    if target.is_dir():
        raise UsageError(f"{option} '{path}' is a folder; give a file name")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        why = "read-only file system" if _read_only(parent) else "permission denied"
        raise InputError(f"cannot write {option} '{path}': {why} (folder '{parent}')")


def _read_only(folder: Path) -> bool:
    with contextlib.suppress(OSError):
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    return False


def append_text(path: str | os.PathLike, text: str, option: str) -> None:
    """Append (a summary file such as $GITHUB_STEP_SUMMARY), an error naming it on failure."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise InputError(f"cannot write {option} '{path}': {exc.strerror or exc}") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def refuse_inputs(outputs: Iterable[tuple[str, str | os.PathLike | None]], inputs: Iterable[Path], overwrite: bool = False) -> None:
    """A UsageError when an output (``(option, path)``) is one of the input files, unless
    ``overwrite`` (then it is written through a temporary file as always, so the input is
    read whole before it is replaced)."""
    files = [Path(p) for p in inputs]
    for option, out in outputs:
        if out is None or overwrite:
            continue
        target = Path(out)
        for f in files:
            same = target.resolve() == f.resolve()
            if not same and target.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(target, f)
            if same:
                raise UsageError(
                    f"{option} '{out}' is also an input; write to another file, or pass --overwrite-input to replace it"
                )
