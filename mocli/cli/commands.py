"""The commands. Each one parses its options, calls one library function and renders."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, List, Optional

import typer
from rich.console import Console

from .. import __version__
from ..render import catalog
from ..diagnostics import check as check_mod
from ..api import (
    Settings, analyze as analyze_api, flip_rows, inspect as inspect_api, sweep as sweep_api, verify as verify_api, write_advantages,
)
from ..errors import UsageError
from ..options import BY_PARAMETER, CANDIDATES, CHECKS, INPUT, OUTPUT
from ..diagnostics import Analysis
from ..io.files import check_output, expand_inputs, input_files, library_versions, schema_of, write_table
from ..io.outputs import append_text, check_writable, refuse_inputs, write_text
from ..io import export as export_mod
from ..io.remote import is_remote, localise
from ..render.html import render_html, render_sweep_html
from ..io.samples import SAMPLES, sample
from . import help as help_format
from .progress import Bar
from . import options as o
from ..render import terminal as render
from ..diagnostics.summary import findings, fmt as fmt_value

MAIN_EXAMPLE = "mocli analyze sample_data/math.parquet --length response_length"

app = typer.Typer(
    name="mocli",
    help="Reward composition and offline advantage analysis for multi-reward RL.",
    epilog=f"""
# the README's first example: the bundled math sample, with length diagnostics
{MAIN_EXAMPLE}
# a TRL run's logged completions, per training step
mocli analyze output_dir/completions --from trl --by step
# `mocli COMMAND --help` shows a command's options and examples
""",
    cls=help_format.Group,
    context_settings={"max_content_width": 100},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def command(name: str):
    """The command ``name``, whose --help lists its options in sections and ends with its
    EXAMPLES."""
    return app.command(name, cls=help_format.Command, epilog=EXAMPLES[name], context_settings={"max_content_width": 100})


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

# each command's examples (its --help ends with them; tests run the ones on sample_data/)
EXAMPLES = {
    "advantages": """
# GRPO and GDPO advantages next to every input column
mocli advantages sample_data/math.parquet -e grpo -e gdpo -o with_advantages.parquet
# your own weights; the format reward only monitored
mocli advantages rollouts/ -r correct_reward=1 -r format_reward=0 -o advantages.parquet
""",
    "estimators": """
mocli estimators
mocli estimators --format json
""",
    "schemes": """
mocli schemes
# the same as a Markdown table, for a design doc
mocli schemes --format markdown
""",
    "profiles": """
mocli profiles
# every profile's settings, for a script
mocli profiles --format json
""",
    "sample": """
mocli sample math -o math.parquet
mocli sample tool_calling -o tool_calling.jsonl --seed 1
""",
    "inspect": """
mocli inspect sample_data/math.parquet
# which framework wrote a folder of dumps, and how mocli reads it
mocli inspect dumps/ --from auto
""",
    "analyze": """
mocli analyze sample_data/math.parquet --length response_length
# per training step, as JSON for a script
mocli analyze sample_data/math.parquet --by step --format json
# a verl dump, with an HTML report beside the terminal one
mocli analyze verl_dumps/ --from verl --html report.html
""",
    "compare": """
mocli compare sample_data/math.parquet -e grpo -e gdpo -e rloo
# TRL's z-score against Dr. GRPO's mean-only advantage, three flipping rows per pair
mocli compare sample_data/safety.parquet -e grpo -e dr_grpo --top 3
""",
    "check": """
mocli check sample_data/math.parquet --fail-if 'sign_flip.correct_reward > 0.2'
# in CI: a JUnit file and the job's step summary
mocli check rollouts/ --fail-if 'collapse.zero_variance_group_rate > 0.5' --junit junit.xml --summary "$GITHUB_STEP_SUMMARY"
""",
    "verify": """
# TRL's logged advantages, recomputed under TRL's own defaults
mocli verify output_dir/completions --from trl
mocli verify verl_dumps/ --from verl -e grpo --tol 1e-6
""",
    "sweep": """
mocli sweep sample_data/math.parquet
# your own grid for one objective, and a chart of the trade-off
mocli sweep sample_data/math.parquet --grid correct_reward=1,2,4 --html sweep.html
# 200 random weightings under GRPO only, ranked by sign flips and the influence gap
mocli sweep sample_data/math.parquet --samples 200 --seed 1 -e grpo --metric sign_flip.max --metric influence.gap
""",
    "report": """
mocli report sample_data/math.parquet -o report.html
mocli report output_dir/completions --from trl -o report.html
""",
}

FORMATS = ("table", "json", "markdown")


def _format(value: Optional[str]) -> str:
    fmt = value or "table"
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not one of {', '.join(FORMATS)}")
    return fmt


def _out() -> Console:
    """The console for stdout: a terminal's width (or $COLUMNS); a pipe or file gets a wide
    fixed width instead of Rich's 80 columns. Rich honours NO_COLOR."""
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(soft_wrap=False, width=None if wide else render.WIDE)


def _json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _settings(options: dict) -> Settings:
    """Settings from a command's parameters (named as in the option table; the shared
    ones arrive in its ``**options``) and the config."""
    options = {**options.pop("options", {}), **options}
    cli = {BY_PARAMETER[k].name: v for k, v in options.items() if k in BY_PARAMETER}
    s = Settings.merge(options.get("config"), **cli)
    ctx = options.get("ctx")
    if ctx is not None and isinstance(ctx.obj, Bar):  # the progress bar main() draws, if any
        s.progress = ctx.obj.report
    return s


def _done(ctx: typer.Context) -> None:
    """The work is done: erase the progress bar before anything is printed."""
    if isinstance(ctx.obj, Bar):
        ctx.obj.close()


@command("advantages")
@o.data_options
def advantages(
    ctx: typer.Context,
    inputs: o.Inputs,
    output: Annotated[str, typer.Option("-o", "--output", help="Output file; format by extension (.parquet default, .jsonl, .json, .csv).", metavar="PATH", rich_help_panel=OUTPUT)],
    float32: Annotated[bool, typer.Option("--float32", help="Write advantages as float32 (computed in float64).", rich_help_panel=OUTPUT)] = False,
    overwrite_input: Annotated[bool, typer.Option("--overwrite-input", help="Allow -o to name one of the inputs (replaced once the whole output is written).", rich_help_panel=OUTPUT)] = False,
    memory_limit: o.MemoryLimit = None,
    engine: o.Engine = None,
    ray_address: o.RayAddress = None,
    **options,
) -> None:
    """Write the input rows plus one adv:<label> column per estimator."""
    s = _settings(locals())
    if (s.engine or "local") == "local":
        check_output(output)  # --engine ray writes a folder (checked where it is made)
    rows, labels, notes, warnings = write_advantages(inputs, output, s, float32=float32, overwrite_input=overwrite_input)
    _done(ctx)
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
    if kind == "profiles":
        head = ["name", "what it sets", "source"]
        rows = [[e["name"], e["summary"], e["source"]] for e in entries]
    else:
        head = ["name", "what it computes", "parameters (default)", "source"]
        rows = [[e["name"], e["summary"], "\n".join(f"{p['name']}={catalog.format_value(p['default'])}" for p in e["params"]),
                 e["source"]] for e in entries]
    con = _out()
    con.print(render.rich_listing(kind.capitalize(), head, rows, con.width))


@command("estimators")
def estimators(fmt: o.Format = None) -> None:
    """List the estimators with parameters, defaults, formulas and sources."""
    _listing("estimators", fmt)


@command("schemes")
def schemes(fmt: o.Format = None) -> None:
    """List the reward-combination schemes."""
    _listing("schemes", fmt)


@command("profiles")
def profiles(fmt: o.Format = None) -> None:
    """List the framework profiles and the defaults they set."""
    _listing("profiles", fmt)


@command("sample")
def sample_cmd(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SAMPLES)}.", show_default=False, metavar="NAME")],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file (.parquet, .jsonl, .json, .csv).", metavar="PATH", rich_help_panel=OUTPUT)],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the bundled files use 0).", metavar="N", show_default=False)] = 0,
) -> None:
    """Write one of the bundled synthetic rollout sets."""
    check_output(output)
    table = sample(name, seed)
    write_table(table, output)
    sys.stderr.write(f"wrote {table.height} rows of sample '{name}' to {output}\n")


@command("inspect")
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
    _done(ctx)
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


def _report_output(analysis: Analysis, fmt: str, title: str, flips: dict | None = None, quiet: bool = False) -> None:
    doc = analysis.report.to_dict()
    if quiet and fmt != "json":  # the findings and one status line; JSON stays whole for scripts
        found = [sentence for _, sentence in findings(doc)]
        for sentence in found:
            sys.stdout.write(f"- {sentence}\n" if fmt == "markdown" else f"• {sentence}\n")
        sys.stderr.write(f"{title}: {len(found)} finding{'s' * (len(found) != 1)}\n" if found else f"{title}: nothing stands out\n")
    elif fmt == "json":
        if flips is not None:
            doc = dict(doc, flips=flips)
        _json(doc)
    elif fmt == "markdown":
        sys.stdout.write(render.markdown_report(doc, title, flips) + "\n")
    else:
        con = _out()
        con.print(render.rich_report(doc, title, flips, analysis.figures, show_visuals=con.is_terminal, width=con.width))


def _write_html(analysis: Analysis, path: str, title: str) -> None:
    check_output_text(path)
    _write_text(path, render_html(analysis.report, title, analysis.figures))
    sys.stderr.write(f"wrote the HTML report to {path}\n")


@command("analyze")
@o.data_options
def analyze(
    ctx: typer.Context,
    inputs: o.Inputs,
    by: o.By = None,
    fmt: o.Format = None,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write the self-contained HTML report here.", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    quiet: o.Quiet = False,
    success: o.Success = None,
    budget_target: o.BudgetTarget = None,
    memory_limit: o.MemoryLimit = None,
    export: o.Export = None,
    engine: o.Engine = None,
    ray_address: o.RayAddress = None,
    **options,
) -> None:
    """Report collapse, sign flips, conflict, interference, Pareto order and influence."""
    s = _settings(locals())
    f = _format(s.format)
    trackers = export_mod.targets(export)
    if html:
        check_output_text(html, "--html")
    _refuse_inputs(inputs, s, ("--html", html), *_export_files(trackers))
    visuals = f == "table" and _terminal() and not quiet
    analysis = analyze_api(inputs, s, by=by, figures=visuals or bool(html), require_figures=bool(html))
    _done(ctx)
    if not quiet:
        _notes(analysis)
    _export(analysis, trackers, "analyze", inputs, quiet)
    if html:
        _write_html(analysis, html, "mocli analyze")
    _report_output(analysis, f, "mocli analyze", quiet=quiet)


@command("compare")
@o.data_options
def compare(
    ctx: typer.Context,
    inputs: o.Inputs,
    by: o.By = None,
    fmt: o.Format = None,
    top: Annotated[int, typer.Option("--top", help="How many sign-flipping rows to list per pair.  [default: 10]", metavar="N", rich_help_panel=OUTPUT, show_default=False)] = 10,
    quiet: o.Quiet = False,
    success: o.Success = None,
    budget_target: o.BudgetTarget = None,
    memory_limit: o.MemoryLimit = None,
    export: o.Export = None,
    engine: o.Engine = None,
    ray_address: o.RayAddress = None,
    **options,
) -> None:
    """Estimators side by side, their agreement, and the rows that flip sign."""
    s = _settings(locals())
    f = _format(s.format)
    if len(s.estimators) < 2:
        raise UsageError("compare needs at least two estimators: -e A -e B")
    trackers = export_mod.targets(export)
    _refuse_inputs(inputs, s, *_export_files(trackers))
    analysis = analyze_api(inputs, s, by=by, compare=True, figures=f == "table" and _terminal() and not quiet)
    _done(ctx)
    if not quiet:
        _notes(analysis)
    _export(analysis, trackers, "compare", inputs, quiet)
    labels = analysis.report.labels
    if analysis.advantages is None:  # streamed: the advantages were not kept
        if not quiet:
            sys.stderr.write("note: the rows that flip sign are listed only for a table analysed in memory\n")
        flips = None
    else:
        flips = {f"{a}|{b}": flip_rows(analysis, a, b, limit=top) for i, a in enumerate(labels) for b in labels[i + 1:]}
    _report_output(analysis, f, "mocli compare", flips, quiet=quiet)


@command("check")
@o.data_options
def check(
    ctx: typer.Context,
    inputs: o.Inputs,
    fail_if: Annotated[Optional[List[str]], typer.Option("--fail-if", help="Fail when the report's value at PATH compares true (e.g. 'sign_flip.correct_reward > 0.2'), repeatable; a path without an estimator applies to every estimator.", metavar="'PATH OP NUMBER'", rich_help_panel=CHECKS)] = None,
    fmt: o.Format = None,
    junit: Annotated[Optional[str], typer.Option("--junit", help="Write a JUnit XML report here.", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    summary: Annotated[Optional[str], typer.Option("--summary", help="Append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    quiet: o.Quiet = False,
    success: o.Success = None,
    budget_target: o.BudgetTarget = None,
    memory_limit: o.MemoryLimit = None,
    export: o.Export = None,
    engine: o.Engine = None,
    ray_address: o.RayAddress = None,
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
    trackers = export_mod.targets(export)
    _refuse_inputs(inputs, s, ("--junit", junit), ("--summary", summary), *_export_files(trackers))
    analysis = analyze_api(inputs, s)
    _done(ctx)
    if not quiet:
        _notes(analysis)
    _export(analysis, trackers, "check", inputs, quiet)
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
    elif quiet:  # the checks that failed, then the status line
        for outcome in outcomes:
            if outcome.failed:
                label = f" ({outcome.label})" if outcome.label else ""
                sys.stdout.write(f"failed: {outcome.expression.text}{label}: {fmt_value(outcome.value)}\n")
    elif f == "markdown":
        sys.stdout.write(check_mod.summary_markdown(outcomes))
    else:
        con = _out()
        con.print(render.rich_check(outcomes, con.width))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        sys.stdout.write(check_mod.annotations(outcomes))
    n_fail = sum(o.failed for o in outcomes)
    n_null = sum(o.value is None for o in outcomes)
    sys.stderr.write(f"{len(outcomes)} checks: {n_fail} failed, {n_null} null\n")
    if n_fail:
        raise typer.Exit(1)


def _export_files(trackers) -> list[tuple[str, str]]:
    """The files an --export writes (a jsonl file), for the rule that no output replaces an input."""
    return [("--export", t.dest) for t in trackers if t.kind == "jsonl"]


def _export(analysis: Analysis, trackers, command: str, inputs, quiet: bool) -> None:
    if trackers:
        said = export_mod.export(analysis.report.to_dict(), trackers, f"mocli {command} {' '.join(map(str, inputs))}")
        if not quiet:
            _say(said, [])


def check_output_text(path: str, option: str = "output") -> None:
    check_writable(path, option)


def _refuse_inputs(inputs, s: Settings, *outputs: tuple[str, Optional[str]]) -> None:
    """No report file may replace an input (the contract's rule for every output; a remote
    input is never a local file)."""
    local = [i for i in inputs if not is_remote(str(i))]
    if local and any(path for _, path in outputs):
        refuse_inputs(outputs, input_files(local, s.source))


def _write_text(path: str, text: str) -> None:
    write_text(path, text)


@command("verify")
@o.data_options
def verify(
    ctx: typer.Context,
    inputs: o.Inputs,
    logged: Annotated[Optional[str], typer.Option("--logged", help="Column with the advantages the trainer used.  [default: with --from, the dump's own]", metavar="COLUMN", rich_help_panel=INPUT, autocompletion=o.complete_columns)] = None,
    fmt: o.Format = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the status line (no tables, no notes).", rich_help_panel=OUTPUT)] = False,
    tol: Annotated[float, typer.Option("--tol", help="Largest absolute difference that still agrees.  [default: 1e-05]", metavar="NUMBER", rich_help_panel=CHECKS, show_default=False)] = 1e-5,
    **options,
) -> None:
    """Recompute logged advantages under a profile; exit 1 when they differ beyond --tol."""
    s = _settings(locals())
    f = _format(s.format)
    if not 0 <= tol < float("inf"):
        raise UsageError(f"--tol must be a finite number >= 0, not {tol}")
    v = verify_api(inputs, logged, s, tol=tol)
    _done(ctx)
    if not quiet:
        _say(v.notes, v.warnings)
    doc = v.to_dict()
    if f == "json":
        _json(doc)
    elif quiet:
        sys.stdout.write(render.verify_lines(doc)[0] + "\n")
    elif f == "markdown":
        sys.stdout.write(render.markdown_verify(doc) + "\n")
    else:
        con = _out()
        con.print(render.rich_verify(doc, con.width))
    if not v.passed:
        raise typer.Exit(1)


@command("report")
@o.data_options
def report(
    ctx: typer.Context,
    inputs: o.Inputs,
    output: Annotated[str, typer.Option("-o", "--output", help="The HTML file to write.", metavar="PATH", rich_help_panel=OUTPUT)],
    by: o.By = None,
    success: o.Success = None,
    budget_target: o.BudgetTarget = None,
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
        if s.step or s.source or "step" in schema_of(expand_inputs(localise(inputs, s.storage_options)[0])):
            by = s.step or "step"
    analysis = analyze_api(inputs, s, by=by, figures=True, require_figures=True)
    _done(ctx)
    _write_html(analysis, output, "mocli report")


@command("sweep")
@o.data_options
def sweep(
    ctx: typer.Context,
    inputs: o.Inputs,
    grid: Annotated[Optional[List[str]], typer.Option("--grid", help="Weights to try for one objective, repeatable; the candidates are every combination, objectives without a grid keep their weight.  [default: 0.5, 1 and 2 times each weighted objective's weight]", metavar="NAME=W1,W2,...", rich_help_panel=CANDIDATES, show_default=False)] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", help="Try N random weightings instead, each weight drawn log-uniform between 0.25 and 4 times its value.", metavar="N", rich_help_panel=CANDIDATES, show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of --samples.  [default: 0]", metavar="N", rich_help_panel=CANDIDATES, show_default=False)] = 0,
    metric: Annotated[Optional[List[str]], typer.Option("--metric", help="Report path to minimise, relative to the estimator as in check (e.g. sign_flip.max), repeatable.  [default: sign_flip.max, collapse.masked_signal_group_rate, influence.gap]", metavar="PATH", rich_help_panel=CANDIDATES, show_default=False)] = None,
    fmt: o.Format = None,
    top: Annotated[int, typer.Option("--top", help="How many Pareto-optimal candidates the table shows.  [default: 20]", metavar="N", rich_help_panel=OUTPUT, show_default=False)] = 20,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write an HTML chart of the trade-off between the first two metrics here.", metavar="PATH", rich_help_panel=OUTPUT)] = None,
    **options,
) -> None:
    """Which weights and estimator to train with: candidate weightings and their Pareto set."""
    s = _settings(locals())
    f = _format(s.format)
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    if html:
        check_output_text(html, "--html")
        _refuse_inputs(inputs, s, ("--html", html))
    result = sweep_api(inputs, s, grid=grid, samples=samples, seed=seed, metrics=metric)
    _done(ctx)
    _say(result.notes, result.warnings)
    doc = result.to_dict()
    if html:
        _write_text(html, render_sweep_html(doc))
        sys.stderr.write(f"wrote the HTML chart to {html}\n")
    if f == "json":
        _json(doc)
    elif f == "markdown":
        sys.stdout.write(render.markdown_sweep(doc, top) + "\n")
    else:
        con = _out()
        con.print(render.rich_sweep(doc, top, con.width))
