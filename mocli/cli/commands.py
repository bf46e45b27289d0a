"""The commands. Each one parses its options, calls one library function and renders."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..render import catalog
from ..diagnostics import check as check_mod
from ..api import Settings, analyze as analyze_api, write_advantages, flip_rows, inspect as inspect_api, verify as verify_api
from ..errors import UsageError
from ..options import BY_PARAMETER
from ..diagnostics import Analysis
from ..io.files import check_output, expand_inputs, input_files, library_versions, schema_of, write_table
from ..io.outputs import append_text, check_writable, refuse_inputs, write_text
from ..render.html import render_html
from ..io.samples import SAMPLES, sample
from . import options as o
from ..render import terminal as render

app = typer.Typer(
    name="mocli",
    help="Reward composition and offline advantage analysis for multi-reward RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        versions = ", ".join(f"{name} {v}" for name, v in library_versions().items())
        sys.stdout.write(f"mocli {__version__} ({versions}, Python {sys.version.split()[0]})\n")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show mocli's version (and Polars', NumPy's, Numba's) and exit.",
                                          is_eager=True, callback=_show_version)] = False,
) -> None:
    """Reward composition and offline advantage analysis for multi-reward RL."""

FORMATS = ("table", "json", "markdown")


def _format(value: Optional[str]) -> str:
    fmt = value or "table"
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not one of {', '.join(FORMATS)}")
    return fmt


def _out() -> Console:
    # a pipe or file gets a wide fixed width instead of Rich's 80 columns
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _settings(options: dict) -> Settings:
    """Settings from a command's parameters (named as in the option table; the shared
    ones arrive in its ``**options``) and the config."""
    options = {**options.pop("options", {}), **options}
    cli = {BY_PARAMETER[k].name: v for k, v in options.items() if k in BY_PARAMETER}
    s = Settings.merge(options.get("config"), **cli)
    ctx = options.get("ctx")
    if ctx is not None and ctx.obj is not None:  # the progress bar main() drew, if any
        s.progress = ctx.obj
    return s


@app.command()
@o.data_options
def advantages(
    ctx: typer.Context,
    inputs: o.Inputs,
    output: Annotated[str, typer.Option("-o", "--output", help="Output file; format by extension (.parquet default, .jsonl, .json, .csv).", metavar="PATH")],
    float32: Annotated[bool, typer.Option("--float32", help="Write advantages as float32 (computed in float64).")] = False,
    overwrite_input: Annotated[bool, typer.Option("--overwrite-input", help="Allow -o to name one of the inputs (replaced once the whole output is written).")] = False,
    memory_limit: o.MemoryLimit = None,
    **options,
) -> None:
    """Write the input rows plus one adv:<label> column per estimator."""
    s = _settings(locals())
    check_output(output)
    rows, labels, notes, warnings = write_advantages(inputs, output, s, float32=float32, overwrite_input=overwrite_input)
    _say(notes, warnings)
    sys.stderr.write(f"wrote {rows} rows with {', '.join(labels)} to {output}\n")


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
            params = "\n".join(f"{p['name']}={catalog.format_value(p['default'])}" for p in e["params"])
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
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SAMPLES)}.", show_default=False, metavar="NAME")],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file (.parquet, .jsonl, .json, .csv).", metavar="PATH")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the bundled files use 0).", metavar="N")] = 0,
) -> None:
    """Write one of the bundled synthetic rollout sets."""
    check_output(output)
    table = sample(name, seed)
    write_table(table, output)
    sys.stderr.write(f"wrote {table.height} rows of sample '{name}' to {output}\n")


@app.command()
def inspect(
    ctx: typer.Context,
    inputs: o.Inputs,
    group: o.Group = None,
    reward: o.Reward = None,
    minimize: o.Minimize = None,
    source: o.Source = None,
    steps: o.Steps = None,
    batch_by: o.BatchBy = None,
    profile: o.Profile = None,
    config: o.Config = None,
    fmt: o.Format = None,
) -> None:
    """Show columns, the framework and roles detected, and the group sizes (per batch)."""
    f = _format(fmt)
    s = _settings(locals())
    doc = inspect_api(inputs, s)
    layouts = doc.get("layouts", [doc])
    if "layouts" in doc:
        _say(doc["notes"], [])
    for one in layouts:
        if "error" not in one and "layouts" not in doc:
            _say(one["notes"], one["warnings"])
    if f == "json":
        _json(doc)
        return
    if f == "markdown":
        sys.stdout.write("\n".join(line for one in layouts for line in render.markdown_inspect(one)) + "\n")
        return
    con = _out()
    for one in layouts:
        render.rich_inspect(con, one)


def _say(notes, warnings) -> None:
    """What mocli inferred (``note:``) and what may make its numbers wrong (``warning:``),
    on stderr."""
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")


def _notes(analysis: Analysis) -> None:
    _say(analysis.notes, analysis.warnings)


def _terminal() -> bool:
    return sys.stdout.isatty()


def _report_output(analysis: Analysis, fmt: str, title: str, flips: dict | None = None) -> None:
    doc = analysis.report.to_dict()
    if fmt == "json":
        if flips is not None:
            doc = dict(doc, flips=flips)
        _json(doc)
    elif fmt == "markdown":
        sys.stdout.write(render.markdown_report(doc, title, flips) + "\n")
    else:
        con = _out()
        con.print(render.rich_report(doc, title, flips, analysis.figures, show_visuals=con.is_terminal))


def _write_html(analysis: Analysis, path: str, title: str) -> None:
    check_output_text(path)
    _write_text(path, render_html(analysis.report, title, analysis.figures))
    sys.stderr.write(f"wrote the HTML report to {path}\n")


@app.command()
@o.data_options
def analyze(
    ctx: typer.Context,
    inputs: o.Inputs,
    by: o.By = None,
    fmt: o.Format = None,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write the self-contained HTML report here.", metavar="PATH")] = None,
    memory_limit: o.MemoryLimit = None,
    **options,
) -> None:
    """Report collapse, sign flips, conflict, interference, Pareto order and influence."""
    s = _settings(locals())
    f = _format(s.format)
    if html:
        check_output_text(html, "--html")
        _refuse_inputs(inputs, s, ("--html", html))
    analysis = analyze_api(inputs, s, by=by, figures=(f == "table" and _terminal()) or bool(html), require_figures=bool(html))
    _notes(analysis)
    if html:
        _write_html(analysis, html, "mocli analyze")
    _report_output(analysis, f, "mocli analyze")


@app.command()
@o.data_options
def compare(
    ctx: typer.Context,
    inputs: o.Inputs,
    by: o.By = None,
    fmt: o.Format = None,
    top: Annotated[int, typer.Option("--top", help="How many sign-flipping rows to list per pair.", metavar="N")] = 10,
    memory_limit: o.MemoryLimit = None,
    **options,
) -> None:
    """Estimators side by side, their agreement, and the rows that flip sign."""
    s = _settings(locals())
    f = _format(s.format)
    if len(s.estimators) < 2:
        raise UsageError("compare needs at least two estimators: -e A -e B")
    analysis = analyze_api(inputs, s, by=by, compare=True, figures=f == "table" and _terminal())
    _notes(analysis)
    labels = analysis.report.labels
    if analysis.advantages is None:  # streamed: the advantages were not kept
        sys.stderr.write("note: the rows that flip sign are listed only for a table analysed in memory\n")
        flips = None
    else:
        flips = {f"{a}|{b}": flip_rows(analysis, a, b, limit=top) for i, a in enumerate(labels) for b in labels[i + 1:]}
    _report_output(analysis, f, "mocli compare", flips)


@app.command()
@o.data_options
def check(
    ctx: typer.Context,
    inputs: o.Inputs,
    fail_if: Annotated[Optional[List[str]], typer.Option("--fail-if", help="'PATH OP NUMBER', repeatable; relative paths apply to every estimator.", metavar="'PATH OP NUMBER'")] = None,
    fmt: o.Format = None,
    junit: Annotated[Optional[str], typer.Option("--junit", help="Write a JUnit XML report here.", metavar="PATH")] = None,
    summary: Annotated[Optional[str], typer.Option("--summary", help="Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).", metavar="PATH")] = None,
    memory_limit: o.MemoryLimit = None,
    **options,
) -> None:
    """CI gate: exit 1 when a threshold expression holds, 0 when none does."""
    s = _settings(locals())
    f = _format(s.format)
    exprs = [check_mod.Expression.parse(e) for e in (fail_if or [])]
    exprs += [check_mod.Expression.from_config(e) for e in s.check]
    if not exprs:
        raise UsageError("no --fail-if expression given (and no [[tool.mocli.check]] in the config)")
    for option, path in (("--junit", junit), ("--summary", summary)):
        if path:
            check_output_text(path, option)
    _refuse_inputs(inputs, s, ("--junit", junit), ("--summary", summary))
    analysis = analyze_api(inputs, s)
    _notes(analysis)
    outcomes = check_mod.evaluate(analysis.report, exprs)
    if junit:
        _write_text(junit, check_mod.junit(outcomes))
    if summary:
        append_text(summary, check_mod.summary_markdown(outcomes), "--summary")
    if f == "json":
        _json({
            "passed": not check_mod.failed(outcomes),
            "checks": [
                {"expression": o.expression.text, "estimator": o.label or None, "path": o.path, "value": o.value, "status": o.status}
                for o in outcomes
            ],
        })
    elif f == "markdown":
        sys.stdout.write(check_mod.summary_markdown(outcomes))
    else:
        _out().print(render.rich_check(outcomes))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        sys.stdout.write(check_mod.annotations(outcomes))
    n_fail = sum(o.failed for o in outcomes)
    n_null = sum(o.value is None for o in outcomes)
    sys.stderr.write(f"{len(outcomes)} checks: {n_fail} failed, {n_null} null\n")
    if n_fail:
        raise typer.Exit(1)


def check_output_text(path: str, option: str = "output") -> None:
    check_writable(path, option)


def _refuse_inputs(inputs, s: Settings, *outputs: tuple[str, Optional[str]]) -> None:
    """No report file may replace an input (the contract's rule for every output)."""
    if any(path for _, path in outputs):
        refuse_inputs(outputs, input_files(inputs, s.source))


def _write_text(path: str, text: str) -> None:
    write_text(path, text)


@app.command()
@o.data_options
def verify(
    ctx: typer.Context,
    inputs: o.Inputs,
    logged: Annotated[Optional[str], typer.Option("--logged", help="Column with the advantages the trainer used (default with --from: the dump's own).", metavar="COLUMN")] = None,
    fmt: o.Format = None,
    tol: Annotated[float, typer.Option("--tol", help="Largest absolute difference that still agrees.", metavar="NUMBER")] = 1e-5,
    **options,
) -> None:
    """Recompute logged advantages under a profile; exit 1 when they differ beyond --tol."""
    s = _settings(locals())
    f = _format(s.format)
    if not 0 <= tol < float("inf"):
        raise UsageError(f"--tol must be a finite number >= 0, not {tol}")
    v = verify_api(inputs, logged, s, tol=tol)
    _say(v.notes, v.warnings)
    doc = v.to_dict()
    if f == "json":
        _json(doc)
    elif f == "markdown":
        sys.stdout.write(render.markdown_verify(doc) + "\n")
    else:
        _out().print(render.rich_verify(doc))
    if not v.passed:
        raise typer.Exit(1)


@app.command()
@o.data_options
def report(
    ctx: typer.Context,
    inputs: o.Inputs,
    output: Annotated[str, typer.Option("-o", "--output", help="The HTML file to write.", metavar="PATH")],
    by: o.By = None,
    memory_limit: o.MemoryLimit = None,
    **options,
) -> None:
    """Write one self-contained HTML report (inline SVG charts, no network)."""
    s = _settings(locals())
    if not output.lower().endswith((".html", ".htm")):
        raise UsageError(f"-o/--output '{output}' should end in .html")
    check_output_text(output)
    _refuse_inputs(inputs, s, ("-o/--output", output))
    if by is None:
        if s.step or (not s.source and "step" in schema_of(expand_inputs(inputs))) or s.source:
            by = s.step or "step"
    analysis = analyze_api(inputs, s, by=by, figures=True, require_figures=True)
    _write_html(analysis, output, "mocli report")
