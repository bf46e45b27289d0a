"""The commands. Each one parses its options, calls one library function and renders."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .. import catalog
from ..api import Settings, advantages_table
from ..errors import UsageError
from ..io import check_output, write_table
from ..kernels import seg_mean_var
from ..samples import SAMPLES, sample
from . import options as o

app = typer.Typer(
    name="mocli",
    help="Reward composition and offline advantage analysis for multi-reward RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

FORMATS = ("table", "json", "markdown")


def _format(value: Optional[str]) -> str:
    fmt = value or "table"
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not one of {', '.join(FORMATS)}")
    return fmt


def _out() -> Console:
    return Console(soft_wrap=False)


def _json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


@app.command()
def advantages(
    inputs: o.Inputs,
    output: Annotated[str, typer.Option("-o", "--output", help="Output file; format by extension (.parquet default, .jsonl, .json, .csv).")],
    estimator: o.Estimator = None,
    group: o.Group = None,
    reward: o.Reward = None,
    minimize: o.Minimize = None,
    length: o.Length = None,
    baseline: o.Baseline = None,
    step: o.Step = None,
    scheme: o.Scheme = None,
    gate: o.Gate = None,
    when: o.When = None,
    profile: o.Profile = None,
    config: o.Config = None,
    float32: Annotated[bool, typer.Option("--float32", help="Write advantages as float32 (computed in float64).")] = False,
) -> None:
    """Write the input rows plus one adv:<label> column per estimator."""
    s = Settings.merge(
        config, group=group, rewards=reward, minimize=minimize, length=length, baseline=baseline,
        step=step, estimators=estimator, scheme=scheme, gate=gate, when=when, profile=profile,
    )
    check_output(output)
    table = advantages_table(inputs, s, float32=float32)
    write_table(table, output)
    labels = [c for c in table.columns if c.startswith("adv:")]
    sys.stderr.write(f"wrote {table.height} rows with {', '.join(labels)} to {output}\n")


def _listing(kind: str, fmt: Optional[str]) -> None:
    f = _format(fmt)
    entries = getattr(catalog, kind)()
    if f == "json":
        _json(entries)
        return
    if f == "markdown":
        sys.stdout.write(catalog.markdown(kind) + "\n")
        return
    table = Table(title=kind.capitalize(), show_lines=True)
    table.add_column("name", style="bold")
    if kind == "profiles":
        table.add_column("what it sets")
        table.add_column("source")
        for e in entries:
            table.add_row(e["name"], e["summary"], e["source"])
    else:
        table.add_column("what it computes")
        table.add_column("parameters (default)")
        table.add_column("source")
        for e in entries:
            params = "\n".join(f"{p['name']}={catalog._fmt(p['default'])}" for p in e["params"])
            table.add_row(e["name"], e["summary"], params, e["source"])
    _out().print(table)


@app.command()
def estimators(fmt: o.Format = None) -> None:
    """List the estimators with parameters, defaults, formulas and sources."""
    _listing("estimators", fmt)


@app.command()
def schemes(fmt: o.Format = None) -> None:
    """List the reward-combination schemes."""
    _listing("schemes", fmt)


@app.command()
def profiles(fmt: o.Format = None) -> None:
    """List the framework profiles and the defaults they set."""
    _listing("profiles", fmt)


@app.command("sample")
def sample_cmd(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SAMPLES)}.", show_default=False)],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file (.parquet, .jsonl, .json, .csv).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the bundled files use 0).")] = 0,
) -> None:
    """Write one of the bundled synthetic rollout sets."""
    check_output(output)
    table = sample(name, seed)
    write_table(table, output)
    sys.stderr.write(f"wrote {table.height} rows of sample '{name}' to {output}\n")


@app.command()
def inspect(
    inputs: o.Inputs,
    group: o.Group = None,
    reward: o.Reward = None,
    minimize: o.Minimize = None,
    config: o.Config = None,
    fmt: o.Format = None,
) -> None:
    """Show columns, the detected group and reward columns, and the group sizes."""
    f = _format(fmt)
    s = Settings.merge(config, group=group, rewards=reward, minimize=minimize)
    loaded = s.load(inputs)
    ro = loaded.rollouts
    sizes = np.diff(ro.offsets)
    _, _, scorable_sizes, _ = seg_mean_var(
        np.zeros(ro.n), ~np.all(np.isnan(ro.rewards), axis=1), ro.order, ro.offsets, 0
    )
    doc = {
        "files": [str(p) for p in loaded.files],
        "rows": ro.n,
        "group": loaded.group,
        "groups": ro.n_groups,
        "group_size": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "singleton_groups": int((scorable_sizes == 1).sum()),
        "rewards": {
            name: {"weight": float(w), "direction": "min" if m else "max", "missing": int(np.isnan(ro.rewards[:, k]).sum())}
            for k, (name, w, m) in enumerate(zip(ro.names, ro.weights, ro.minimize))
        },
    }
    if f == "json":
        _json(doc)
        return
    if f == "markdown":
        lines = [f"- files: {len(doc['files'])}", f"- rows: {doc['rows']}", f"- group column: `{doc['group']}` ({doc['groups']} groups)",
                 f"- group size: min {doc['group_size']['min']}, median {doc['group_size']['median']:g}, max {doc['group_size']['max']}",
                 "", "| reward | weight | direction | missing |", "|---|---|---|---|"]
        lines += [f"| `{n}` | {r['weight']:g} | {r['direction']} | {r['missing']} |" for n, r in doc["rewards"].items()]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    con = _out()
    con.print(f"[bold]{doc['rows']}[/] rows in {len(doc['files'])} file(s); group column [bold]{doc['group']}[/]: "
              f"{doc['groups']} groups, size min {doc['group_size']['min']} / median {doc['group_size']['median']:g} / max {doc['group_size']['max']}"
              f", {doc['singleton_groups']} singletons", soft_wrap=True)
    table = Table("reward", "weight", "direction", "missing")
    for n, r in doc["rewards"].items():
        table.add_row(n, f"{r['weight']:g}", r["direction"], str(r["missing"]))
    con.print(table)
