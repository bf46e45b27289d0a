"""Options shared by every command, defined once so that they read the same everywhere."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Callable, List, Optional

import typer

from ..io.frameworks import SOURCES
from ..profiles import PROFILES

Inputs = Annotated[List[str], typer.Argument(help="Rollout files (.parquet, .jsonl, .json, .csv), directories or globs.", show_default=False)]
Group = Annotated[Optional[str], typer.Option("-g", "--group", help="Group (prompt) column; default: first of group_id, prompt_id, uid, group, prompt, input.")]
Reward = Annotated[Optional[List[str]], typer.Option("-r", "--reward", help="Reward column NAME[=WEIGHT], repeatable; weight 0 = monitored only. Default: *_reward, reward_*, rewards/* columns.")]
Minimize = Annotated[Optional[List[str]], typer.Option("--minimize", help="Reward to minimise (negated before anything else), repeatable.")]
Length = Annotated[Optional[str], typer.Option("--length", help="Response length (tokens) column.")]
Baseline = Annotated[Optional[str], typer.Option("--baseline", help="Baseline reward column (ReMax).")]
Step = Annotated[Optional[str], typer.Option("--step", help="Training step column.")]
Estimator = Annotated[Optional[List[str]], typer.Option("-e", "--estimator", help="Estimator SPEC (NAME or NAME:key=value,...), repeatable.")]
Scheme = Annotated[Optional[str], typer.Option("--scheme", help="Reward-combination scheme SPEC (default weighted_sum).")]
Gate = Annotated[Optional[List[str]], typer.Option("--gate", help="Constraint 'objective OP number' of the gated scheme, repeatable.")]
When = Annotated[Optional[List[str]], typer.Option("--when", help="Condition 'objective:other OP number[:else]', repeatable.")]
Profile = Annotated[Optional[str], typer.Option("--profile", help=f"Framework defaults: {', '.join(PROFILES.names())} (default: the --from framework's, else mocli).")]
Config = Annotated[Optional[str], typer.Option("--config", help="TOML settings file (default: [tool.mocli] in ./pyproject.toml).")]
Format = Annotated[Optional[str], typer.Option("--format", help="table, json or markdown.")]
By = Annotated[Optional[str], typer.Option("--by", help="Also report per value of this column (e.g. step).")]
Source = Annotated[Optional[str], typer.Option("--from", help=f"Read a framework's rollout dump as its own code writes it: {', '.join(SOURCES)}; implies --profile of the same name.")]
Steps = Annotated[Optional[str], typer.Option("--steps", help="Keep a step range A:B (inclusive; A: or :B open).")]
MemoryLimit = Annotated[Optional[str], typer.Option("--memory-limit", help="Work in group-complete chunks when the columns would not fit in this much memory (e.g. 2GB). Default auto: half the available memory, lowered to max(256 MiB, 1.5 x the columns read) where nothing needs the whole table in memory.")]
BatchBy = Annotated[Optional[str], typer.Option("--batch-by", help="Training batch column: batch-wide statistics (batch z-scores, whitening) are taken per value. Default: the step of a --from dump, else the whole table.")]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu (default), cuda, or auto (CUDA only when a GPU is present).")]


def data_options(command: Callable) -> Callable:
    """Give a command every option that shapes loading and computing (``-e``, ``-g``, ``-r``,
    ``--minimize`` ... ``--config``), after its own; they arrive in its ``**options``."""
    shared = [
        ("estimator", Estimator), ("group", Group), ("reward", Reward), ("minimize", Minimize), ("length", Length),
        ("baseline", Baseline), ("step", Step), ("scheme", Scheme), ("gate", Gate), ("when", When),
        ("profile", Profile), ("source", Source), ("steps", Steps), ("batch_by", BatchBy), ("device", Device), ("config", Config),
    ]
    hints = typing.get_type_hints(command, include_extras=True)  # resolve string annotations
    sig = inspect.signature(command)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann) for name, ann in shared]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra, return_annotation=None)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # Typer must read the signature above, not the command's own
    return wrapper
