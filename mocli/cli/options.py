"""The command-line options, made from the one option table (:data:`mocli.options.OPTIONS`)
so that they read the same in every command, the config file and the library."""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Callable, List, Optional

import typer

from ..errors import MocliError
from ..estimators import ESTIMATORS
from ..io.chunks import AUTO_SHARE
from ..io.files import GROUP_CANDIDATES, READERS, expand_inputs, schema_of
from ..io.frameworks import SOURCES
from ..options import BY_NAME, INPUT, OPTIONS, OUTPUT, Option
from ..profiles import PROFILES
from ..schemes import SCHEMES

def _names(registry) -> Callable[[str], list[str]]:
    def complete(incomplete: str) -> list[str]:
        return [n for n in registry() if n.startswith(incomplete)]
    return complete


COLUMN_FILES = 20  # completion reads the schema of at most this many of the inputs' files


def complete_columns(ctx: typer.Context, incomplete: str) -> list[str]:
    """Column names of the input files given so far (their schema only). While an option
    still lacks its value the parser leaves the positional words in ``ctx.args`` instead
    of ``inputs``; words that are not readable inputs are skipped. Nothing is offered when
    no input can be read."""
    words = ctx.params.get("inputs") or ctx.args
    try:
        paths = expand_inputs([w for w in words if _readable(w)])[:COLUMN_FILES]
        names = list(schema_of(paths))
    except (MocliError, OSError):
        return []
    return [n for n in names if n.startswith(incomplete)]


def _readable(word: str) -> bool:
    path = Path(word)
    return path.is_dir() or (path.suffix.lower() in READERS and path.is_file()) or any(c in word for c in "*?[")


def _completion(kind: str | None):
    if kind is None:
        return None
    if kind == "columns":
        return complete_columns
    registries = {"estimators": ESTIMATORS.names, "schemes": SCHEMES.names, "profiles": PROFILES.names,
                  "sources": lambda: list(SOURCES)}
    return _names(registries[kind] if kind in registries else lambda: kind.split("|"))


def _text(text: str) -> str:
    return text.format(profiles=", ".join(PROFILES.names()), sources=", ".join(SOURCES),
                       groups=", ".join(GROUP_CANDIDATES), auto_share=f"{AUTO_SHARE:.0%}")


Inputs = Annotated[List[str], typer.Argument(help="Rollout files (.parquet, .jsonl, .json, .csv), directories or globs.",
                                             show_default=False, metavar="PATH", rich_help_panel=INPUT)]
Config = Annotated[Optional[str], typer.Option("--config", help="TOML settings file.  [default: [tool.mocli] in ./pyproject.toml]",
                                               metavar="PATH", rich_help_panel=INPUT)]
By = Annotated[Optional[str], typer.Option("--by", help="Also report per value of this column (e.g. step).", metavar="COLUMN",
                                           rich_help_panel=OUTPUT, autocompletion=complete_columns)]
Export = Annotated[Optional[List[str]], typer.Option(
    "--export", help="Also write every metric (the whole table's and each --by slice's) to a tracker: tensorboard:DIR, "
    "mlflow:URI or jsonl:FILE, repeatable; a slice's step is its value when that is a whole number.",
    metavar="KIND:DEST", rich_help_panel=OUTPUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only what was found and the status line (no tables, no notes).",
                                     rich_help_panel=OUTPUT)]


def _annotation(option: Option):
    kind = Optional[List[str]] if option.many else Optional[str]
    text = _text(option.help) + (f"  [default: {_text(option.shown)}]" if option.shown else "")
    return Annotated[kind, typer.Option(*option.flags, help=text, metavar=option.metavar, rich_help_panel=option.panel,
                                        show_default=False, autocompletion=_completion(option.complete))]


# for a command that names options itself (the shared ones come with data_options)
MemoryLimit = _annotation(BY_NAME["memory_limit"])
Engine = _annotation(BY_NAME["engine"])
RayAddress = _annotation(BY_NAME["ray_address"])
Format = _annotation(BY_NAME["format"])
Group = _annotation(BY_NAME["group"])
Reward = _annotation(BY_NAME["rewards"])
Minimize = _annotation(BY_NAME["minimize"])
Source = _annotation(BY_NAME["source"])
Steps = _annotation(BY_NAME["steps"])
BatchBy = _annotation(BY_NAME["batch_by"])
Profile = _annotation(BY_NAME["profile"])
Success = _annotation(BY_NAME["success"])
BudgetTarget = _annotation(BY_NAME["budget_target"])
SHARED = [(o.parameter, _annotation(o)) for o in OPTIONS if o.shared and o.flags] + [("config", Config)]


def data_options(command: Callable) -> Callable:
    """Give a command every shared option of the table (``-e``, ``-g``, ``-r``, ...
    ``--config``), after its own; they arrive in its ``**options``."""
    hints = typing.get_type_hints(command, include_extras=True)  # resolve string annotations
    sig = inspect.signature(command)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann) for name, ann in SHARED]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra, return_annotation=None)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # Typer must read the signature above, not the command's own
    return wrapper
