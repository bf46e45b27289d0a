"""Every option that shapes loading and computing, defined once.

:data:`OPTIONS` generates the :class:`mocli.api.Settings` fields, the keys a TOML config
accepts (:mod:`mocli.config`) and the command-line options (:mod:`mocli.cli.options`).
A help text may name ``{profiles}`` or ``{sources}``: the command line fills in the
registered profiles and the frameworks whose dumps mocli reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str  # the Settings field
    flags: tuple[str, ...]  # on the command line; () = config file only
    help: str
    many: bool = False  # repeatable on the command line, a list in the config
    toml: tuple[type, ...] = (str,)  # what the config file may give
    key: str | None = None  # the config key, when not the name
    param: str | None = None  # the command's parameter, when not the name
    shared: bool = True  # every command that loads data has it (else the commands that name it)
    default: Any = None
    metavar: str = "TEXT"  # what --help shows for the value

    @property
    def config_key(self) -> str:
        return self.key or self.name

    @property
    def parameter(self) -> str:
        return self.param or self.name


OPTIONS: tuple[Option, ...] = (
    Option("estimators", ("-e", "--estimator"), "Estimator SPEC (NAME or NAME:key=value,...), repeatable.",
           many=True, toml=(list,), param="estimator", metavar="SPEC"),
    Option("group", ("-g", "--group"),
           "Group (prompt) column; default: first of group_id, prompt_id, uid, group, prompt, input.", metavar="COLUMN"),
    Option("rewards", ("-r", "--reward"),
           "Reward column NAME[=WEIGHT], repeatable; weight 0 = monitored only. Default: *_reward, reward_*, "
           "rewards/* columns.", many=True, toml=(list, dict), param="reward", metavar="NAME[=WEIGHT]"),
    Option("minimize", ("--minimize",), "Reward to minimise (negated before anything else), repeatable.",
           many=True, toml=(list,), metavar="NAME"),
    Option("length", ("--length",), "Response length (tokens) column.", metavar="COLUMN"),
    Option("baseline", ("--baseline",), "Baseline reward column (ReMax).", metavar="COLUMN"),
    Option("step", ("--step",), "Training step column.", metavar="COLUMN"),
    Option("scheme", ("--scheme",), "Reward-combination scheme SPEC (default weighted_sum).", default="weighted_sum", metavar="SPEC"),
    Option("gate", ("--gate",), "Constraint 'objective OP number' of the gated scheme, repeatable.",
           many=True, toml=(list,), metavar="'OBJ OP NUMBER'"),
    Option("when", ("--when",), "Condition 'objective:other OP number[:else]', repeatable.", many=True, toml=(list,), metavar="'OBJ:OTHER OP NUMBER[:ELSE]'"),
    Option("profile", ("--profile",),
           "Framework defaults: {profiles} (default: the --from framework's, else mocli).", metavar="NAME"),
    Option("source", ("--from",),
           "Read a framework's rollout dump as its own code writes it: {sources}; implies --profile of the same name.",
           key="from", metavar="FRAMEWORK"),
    Option("steps", ("--steps",), "Keep a step range A:B (inclusive; A: or :B open).", metavar="A:B"),
    Option("batch_by", ("--batch-by",),
           "Training batch column: batch-wide statistics (batch z-scores, whitening) are taken per value. "
           "Default: the step of a --from dump, else the whole table.", metavar="COLUMN"),
    Option("device", ("--device",), "cpu (default), cuda, or auto (CUDA only when a GPU is present).",
           default="cpu", metavar="cpu|cuda|auto"),
    Option("memory_limit", ("--memory-limit",),
           "Work in group-complete chunks when the run would not fit in this much memory (e.g. 2GB). "
           "Default auto: half the memory still available (or of the cgroup's limit).", shared=False, metavar="SIZE"),
    Option("format", ("--format",), "table, json or markdown.", param="fmt", shared=False, metavar="table|json|markdown"),
    Option("check", (), "CI gate thresholds ([[tool.mocli.check]] tables).", many=True, toml=(list,)),
)

BY_NAME = {o.name: o for o in OPTIONS}
BY_PARAMETER = {o.parameter: o for o in OPTIONS}
