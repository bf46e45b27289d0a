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
    panel: str = "Input"  # the section of --help it is listed in
    shown: str | None = None  # the default --help states (None: no default worth stating)
    complete: str | None = None  # what shell completion offers: a registry (estimators, schemes,
    #   profiles, sources), "columns" (of the inputs given so far) or "a|b|c" (fixed choices)

    @property
    def config_key(self) -> str:
        return self.key or self.name

    @property
    def parameter(self) -> str:
        return self.param or self.name


# the sections of --help, in order
INPUT, REWARDS, ESTIMATORS, OUTPUT, CHECKS, CANDIDATES, PERFORMANCE = (
    "Input", "Rewards and groups", "Estimators", "Output", "Checks", "Candidates", "Performance")
PANELS = (INPUT, REWARDS, ESTIMATORS, OUTPUT, CHECKS, CANDIDATES, PERFORMANCE)

OPTIONS: tuple[Option, ...] = (
    Option("estimators", ("-e", "--estimator"), "Estimator SPEC (NAME or NAME:key=value,...), repeatable.",
           many=True, toml=(list,), param="estimator", metavar="SPEC", panel=ESTIMATORS, complete="estimators",
           shown="grpo; analyze, compare and check: grpo and gdpo when two or more rewards are weighted; sweep: grpo and gdpo"),
    Option("group", ("-g", "--group"), "Group (prompt) column; repeated, the tuple of the columns is the group "
           "(agent-wise groups: -g prompt -g agent).", many=True, toml=(str, list), metavar="COLUMN", panel=REWARDS,
           complete="columns", shown="the first of {groups}"),
    Option("rewards", ("-r", "--reward"),
           "Reward column NAME[=WEIGHT], repeatable; weight 0 = monitored only.", many=True, toml=(list, dict),
           param="reward", metavar="NAME[=WEIGHT]", panel=REWARDS, complete="columns",
           shown="the *_reward, reward_* and rewards/* columns, weight 1"),
    Option("minimize", ("--minimize",), "Reward to minimise (negated before anything else), repeatable.",
           many=True, toml=(list,), metavar="NAME", panel=REWARDS, complete="columns"),
    Option("length", ("--length",), "Response length (tokens) column.", metavar="COLUMN", panel=REWARDS,
           complete="columns"),
    Option("baseline", ("--baseline",), "Baseline reward column (ReMax).", metavar="COLUMN", panel=REWARDS,
           complete="columns"),
    Option("step", ("--step",), "Training step column.", metavar="COLUMN", complete="columns"),
    Option("scheme", ("--scheme",), "Reward-combination scheme SPEC (NAME or NAME:key=value,...).",
           default="weighted_sum", metavar="SPEC", panel=REWARDS, complete="schemes", shown="weighted_sum"),
    Option("gate", ("--gate",), "Constraint 'objective OP number' of the gated scheme, repeatable.",
           many=True, toml=(list,), metavar="'OBJ OP NUMBER'", panel=REWARDS),
    Option("when", ("--when",), "Condition 'objective:other OP number[:else]', repeatable.", many=True,
           toml=(list,), metavar="'OBJ:OTHER OP NUMBER[:ELSE]'", panel=REWARDS),
    Option("success", ("--success",), "What counts as a success for the rollout budget: 'OBJECTIVE OP NUMBER' "
           "(values as in the file).", shared=False, metavar="'OBJ OP NUMBER'", panel=REWARDS,
           shown="the first weighted objective at its best value over the table"),
    Option("budget_target", ("--budget-target",), "The zero-variance group rate the rollout budget aims for "
           "(budget.group_size_for_target).", shared=False, toml=(float, int, str), metavar="RATE", panel=OUTPUT,
           shown="0.1"),
    Option("profile", ("--profile",), "Framework defaults (eps, std, edge cases): {profiles}.", metavar="NAME",
           panel=ESTIMATORS, complete="profiles", shown="the --from framework's, else mocli"),
    Option("source", ("--from",),
           "Read a framework's rollout dump as its own code writes it: {sources}; implies --profile of the same name.",
           key="from", metavar="FRAMEWORK", complete="sources"),
    Option("steps", ("--steps",), "Keep a step range A:B (inclusive; A: or :B open).", metavar="A:B"),
    Option("storage_options", ("--storage-option",),
           "Setting of the object store that s3://, gs://, az://, hf:// inputs are read from (e.g. aws_region=eu-west-1, "
           "aws_endpoint_url=http://127.0.0.1:9000), repeatable; credentials also come from the usual environment variables.",
           many=True, toml=(list, dict), param="storage_option", metavar="KEY=VALUE"),
    Option("batch_by", ("--batch-by",),
           "Training batch column: batch-wide statistics (batch z-scores, whitening) are taken per value.",
           metavar="COLUMN", panel=REWARDS, complete="columns", shown="the step of a --from dump, else the whole table"),
    Option("device", ("--device",), "Where the kernels run; auto = CUDA only when a GPU is present.",
           default="cpu", metavar="cpu|cuda|auto", panel=PERFORMANCE, complete="cpu|cuda|auto", shown="cpu"),
    Option("engine", ("--engine",),
           "Where the group-complete chunks are worked through: local (this process) or ray (a Ray cluster: "
           "--ray-address, else $RAY_ADDRESS, else a local one; pip install 'mocli[ray]').",
           shared=False, default="local", metavar="local|ray", panel=PERFORMANCE, complete="local|ray", shown="local"),
    Option("ray_address", ("--ray-address",), "The Ray cluster --engine ray connects to (e.g. ray://head:10001).",
           shared=False, metavar="ADDRESS", panel=PERFORMANCE, shown="$RAY_ADDRESS, else a local cluster"),
    Option("memory_limit", ("--memory-limit",),
           "Work in group-complete chunks when the run would not fit in this much memory (e.g. 2GB).",
           shared=False, metavar="SIZE", panel=PERFORMANCE,
           shown="auto: {auto_share} of the memory still available (or of the cgroup's limit)"),
    Option("format", ("--format",), "How the result is printed on stdout.", param="fmt", shared=False,
           metavar="table|json|markdown", panel=OUTPUT, complete="table|json|markdown", shown="table"),
    Option("check", (), "CI gate thresholds ([[tool.mocli.check]] tables).", many=True, toml=(list,)),
)

BY_NAME = {o.name: o for o in OPTIONS}
BY_PARAMETER = {o.parameter: o for o in OPTIONS}
