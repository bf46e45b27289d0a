"""The command-line options, made from the one option table (:data:`mocli.options.OPTIONS`)
so that they read the same in every command, the config file and the library."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Callable, List, Optional

import typer

from ..io.frameworks import SOURCES
from ..options import BY_NAME, OPTIONS, Option
from ..profiles import PROFILES

Inputs = Annotated[List[str], typer.Argument(help="Rollout files (.parquet, .jsonl, .json, .csv), directories or globs.",
                                             show_default=False, metavar="PATH")]
Config = Annotated[Optional[str], typer.Option("--config", help="TOML settings file (default: [tool.mocli] in ./pyproject.toml).",
                                               metavar="PATH")]
By = Annotated[Optional[str], typer.Option("--by", help="Also report per value of this column (e.g. step).", metavar="COLUMN")]


def _annotation(option: Option):
    text = option.help.format(profiles=", ".join(PROFILES.names()), sources=", ".join(SOURCES))
    kind = Optional[List[str]] if option.many else Optional[str]
    return Annotated[kind, typer.Option(*option.flags, help=text, metavar=option.metavar)]


# for a command that names options itself (the shared ones come with data_options)
MemoryLimit = _annotation(BY_NAME["memory_limit"])
Format = _annotation(BY_NAME["format"])
Group = _annotation(BY_NAME["group"])
Reward = _annotation(BY_NAME["rewards"])
Minimize = _annotation(BY_NAME["minimize"])
Source = _annotation(BY_NAME["source"])
Steps = _annotation(BY_NAME["steps"])
BatchBy = _annotation(BY_NAME["batch_by"])
Profile = _annotation(BY_NAME["profile"])
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
