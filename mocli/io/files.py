"""The one module that knows DataFrames: finding input files, reading only the needed
columns, validating them, factorising group keys into dense codes, and writing output
tables atomically. Everything past this module sees NumPy arrays."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numba
import numpy as np
import polars as pl

from ..core.rollouts import HUGE, Rollouts
from ..errors import InputError, UsageError, first_line
from . import frameworks
from .frameworks import FILE, group_size_warnings, public_columns
from .outputs import check_interrupted, check_writable, replacing
from .readers import READERS, hive_columns, read_error, scan
from ..registry import suggest

WRITERS = (".parquet", ".jsonl", ".ndjson", ".json", ".csv")
GROUP_CANDIDATES = ("group_id", "prompt_id", "uid", "group", "prompt", "input")
_REWARD_NAME = re.compile(r"^(.+_reward|reward_.+|rewards/.+)$")


# ---------------------------------------------------------------------------------------
# objectives
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    name: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Objective":
        """``NAME`` or ``NAME=WEIGHT``."""
        name, eq, weight = text.rpartition("=") if "=" in text else (text, "", "")
        name = name.strip()
        if not name:
            raise UsageError(f"--reward '{text}' has no column name; expected NAME or NAME=WEIGHT")
        if not eq:
            return cls(name)
        try:
            w = float(weight)
        except ValueError:
            raise UsageError(f"--reward '{text}': weight '{weight}' is not a number; expected NAME=WEIGHT") from None
        if not np.isfinite(w):
            raise UsageError(f"--reward '{text}': weight must be finite")
        return cls(name, w)


# ---------------------------------------------------------------------------------------
# progress: the library reports, whoever listens draws (the CLI, on a terminal)
# ---------------------------------------------------------------------------------------
# ``progress(stage, done, total)``: called by long work between its steps, which is also
# where that work stops when the command line was interrupted (SIGINT, SIGTERM)
Progress = Callable[[str, int, int], None]


def silent(stage: str, done: int, total: int) -> None:
    """The progress of a run nobody watches: only the check for an interruption."""
    check_interrupted()


def reporting_to(callback: Callable[[str, int, int], None]) -> Progress:
    """A :data:`Progress` that checks for an interruption, then calls ``callback``."""

    def report(stage: str, done: int, total: int) -> None:
        check_interrupted()
        callback(stage, done, total)

    return report


# ---------------------------------------------------------------------------------------
# finding and reading files
# ---------------------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """The versions of the libraries that read and computed a report."""
    return {"polars": pl.__version__, "numpy": np.__version__, "numba": numba.__version__}


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files, directories (their supported files, recursively, sorted) and globs."""
    if not inputs:
        raise UsageError("no INPUT given; pass one or more files, directories or globs")
    out: list[Path] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READERS)
            if not found:
                raise InputError(f"directory '{text}' holds no {', '.join(sorted(set(READERS)))} files")
            out.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in READERS:
                raise InputError(
                    f"input '{text}' has an unknown extension; accepted: {', '.join(READERS)}"
                )
            out.append(p)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).suffix.lower() in READERS and Path(f).is_file())
            if not found:
                raise InputError(f"glob '{text}' matches no {', '.join(READERS)} files")
            out.extend(found)
        else:
            raise InputError(f"input '{text}' does not exist")
    return out


def input_files(inputs: Sequence[str | os.PathLike], source: str | None = None) -> list[Path]:
    """The files a run reads: the inputs expanded, or a framework dump's files."""
    if source:
        kind = frameworks.resolve_source(source, [str(i) for i in inputs])
        return frameworks._files([str(i) for i in inputs], frameworks.PATTERNS[kind])
    return expand_inputs(inputs)


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "number"
    if dtype == pl.Null:
        return "null"
    return "text" if dtype in (pl.String, pl.Categorical) else str(dtype)


def schema_of(paths: Sequence[Path], per_file: dict[Path, dict[str, pl.DataType]] | None = None) -> dict[str, pl.DataType]:
    """Union of the files' columns (first-seen order, first-seen type); ``per_file`` (if
    given) receives each file's own."""
    cols: dict[str, pl.DataType] = {}
    for p in paths:
        try:
            schema = dict(scan(p).collect_schema())
        except Exception as exc:
            raise read_error(p, exc) from None
        for name, value in hive_columns(p).items():
            schema.setdefault(name, pl.Int64 if isinstance(value, int) else pl.Float64 if isinstance(value, float) else pl.String)
        if per_file is not None:
            per_file[p] = schema
        for name, dtype in schema.items():
            cols.setdefault(name, dtype)
    return cols


def same_key_kind(per_file: dict[Path, dict[str, pl.DataType]], column: str, what: str) -> None:
    """Refuse a key column that is a number in one file and text in another: the two
    would be merged as text, so that key 1 and key "1" become one group."""
    first: tuple[Path, str] | None = None
    for path, schema in per_file.items():
        if column not in schema or schema[column] == pl.Null:
            continue
        kind = _kind(schema[column])
        if first is None:
            first = (path, kind)
        elif kind != first[1]:
            raise InputError(
                f"{what} column '{column}' holds {first[1]} in '{first[0]}' but {kind} in '{path}': keys such as 1 "
                f"and \"1\" would be merged; give the column one type in every file"
            )


def scan_all(p: "Plan") -> pl.LazyFrame:
    """Every column of every input, lazily, as :func:`read_columns` with ``None`` would
    read them and :func:`keep_steps` would filter them (the columns were checked by an
    earlier read)."""
    frames = []
    for path in p.paths:
        lf = scan(path)
        have = lf.collect_schema().names()
        lf = lf.with_columns([pl.lit(v).alias(k) for k, v in hive_columns(path).items() if k not in have])
        frames.append(lf)
    lf = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    window = p.window
    if window is not None:
        lf = lf.filter(pl.col(p.step).cast(pl.Float64).is_between(window[0], window[1]))
    return lf


def read_columns(paths: Sequence[Path], columns: Sequence[str] | None, progress: Progress = silent) -> pl.DataFrame:
    """Read the named columns (``None`` = all) from every file and concatenate them; a
    column missing from some files is null there."""
    frames = []
    for n_done, p in enumerate(paths):
        progress("reading", n_done, len(paths))
        lf = scan(p)
        hive = hive_columns(p)
        try:
            have = lf.collect_schema().names()
            lf = lf.with_columns([pl.lit(v).alias(k) for k, v in hive.items() if k not in have])
            have = have + [k for k in hive if k not in have]
            if columns is not None:
                lf = lf.select([c for c in columns if c in have])
            df = lf.collect()
        except Exception as exc:
            raise read_error(p, exc) from None
        frames.append(df)
    progress("reading", len(paths), len(paths))
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except Exception as exc:
        raise InputError(f"the inputs' columns do not fit together: {first_line(exc)}") from None


# ---------------------------------------------------------------------------------------
# column selection and validation
# ---------------------------------------------------------------------------------------
def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null


def _numeric_columns(schema: dict[str, pl.DataType]) -> list[str]:
    return [c for c, t in schema.items() if t.is_numeric() or t == pl.Boolean]


def _missing(name: str, schema: dict, what: str, option: str) -> InputError:
    return InputError(
        f"{what} column '{name}' not found{suggest(name, list(schema))} ({option}); "
        f"columns: {', '.join(schema)}"
    )


def detect_group(schema: dict[str, pl.DataType], group: str | None) -> str:
    if group is not None:
        if group not in schema:
            raise _missing(group, schema, "group", "-g/--group")
        return group
    for c in GROUP_CANDIDATES:
        if c in schema:
            return c
    raise InputError(
        f"no group column found (looked for {', '.join(GROUP_CANDIDATES)}); pass -g COL; "
        f"columns: {', '.join(schema)}"
    )


def detect_rewards(schema: dict[str, pl.DataType], rewards: Sequence[str] | None, exclude: Sequence[str]) -> list[Objective]:
    if rewards:
        objs = [Objective.parse(r) for r in rewards]
        names = [o.name for o in objs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UsageError(f"--reward names column(s) {', '.join(sorted(dup))} more than once")
        for o in objs:
            if o.name not in schema:
                raise _missing(o.name, schema, "reward", "-r/--reward")
        return objs
    found = [c for c, t in schema.items() if _REWARD_NAME.match(c) and c not in exclude and _is_numeric(t)]
    if not found:
        raise InputError(
            "no reward columns named *_reward, reward_* or rewards/*; pass -r NAME[=WEIGHT]; "
            f"numeric columns: {', '.join(_numeric_columns(schema)) or 'none'}"
        )
    return [Objective(c) for c in found]


def _float_column(df: pl.DataFrame, name: str, what: str, *, allow_nan: bool = True, whole: bool = True) -> np.ndarray:
    dtype = df.schema[name]
    if whole and df.height and df.get_column(name).null_count() == df.height:
        raise InputError(f"{what} column '{name}' has no values (every cell is null/NaN)")
    if not _is_numeric(dtype):
        raise InputError(f"{what} column '{name}' is {dtype}, not numeric; {what} columns must hold numbers (or booleans)")
    arr = df.get_column(name).cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        huge = np.abs(arr) >= HUGE  # inf too; NaN is not
    if huge.any():
        inf = np.isinf(arr[huge])
        if inf.any():
            raise InputError(
                f"{what} column '{name}' holds {int(inf.sum())} infinite values; "
                f"use finite numbers, or null/NaN for not applicable"
            )
        top = float(np.abs(arr[huge]).max())
        raise InputError(
            f"{what} column '{name}' holds values up to {top:.3g} in magnitude ({int(huge.sum())} rows at {HUGE:.0e} "
            "or more): mocli's statistics square them, which overflows float64 near 1e154; rescale the column"
        )
    if not allow_nan and np.isnan(arr).any():
        raise InputError(f"{what} column '{name}' holds {int(np.isnan(arr).sum())} null/NaN values; every row needs a value")
    return np.ascontiguousarray(arr)


def factorize(series: pl.Series, what: str = "group") -> tuple[np.ndarray, int]:
    """Dense codes in order of first appearance (hash-based, no sort of the keys)."""
    codes, n_groups, _, _ = grouping(series, what)
    return codes, n_groups


def grouping(series: pl.Series, what: str = "group") -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Dense codes in order of first appearance, and the group layout: ``order`` (each
    group's rows, in file order, groups one after another) and ``offsets``. Polars' hash
    grouping lists each group's row numbers in the order the rows come (it does so whatever
    ``maintain_order`` says), so the layout is that list, flattened: no sort of its own."""
    if series.null_count():
        raise InputError(
            f"{what} column '{series.name}' holds {series.null_count()} null values; every row needs a {what} key"
        )
    grouped = (
        series.to_frame("k").with_row_index("__row")
        .group_by("k", maintain_order=True).agg(pl.col("__row"))
    )
    rows = grouped.get_column("__row")
    sizes = rows.list.len().to_numpy()
    order = rows.explode().to_numpy().astype(np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    codes = np.empty(len(series), dtype=np.int64)
    codes[order] = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    return codes, len(sizes), order, offsets


@dataclass
class Loaded:
    """A loaded rollout table: the arrays, the column roles and (optionally) the frame."""

    rollouts: Rollouts
    group: str
    objectives: list[Objective]
    length: str | None = None
    baseline: str | None = None
    step: str | None = None
    frame: pl.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    logged: str | None = None  # the advantage column a framework dump logs, if any
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch: str | None = None  # the column that names the training batches
    source: str | None = None  # the framework whose dump this is
    group_rule: str | None = None
    batch_rule: str | None = None
    scalar: str | None = None  # the logged scalar that trains (verl's score)
    group_columns: tuple[str, ...] = ()  # several: their tuple is the group (``group`` names the key)

    @property
    def batch_label(self) -> str:
        """What a training batch is, as the JSON ``params.batch`` says it."""
        return describe_batch(self.batch)

    def public_frame(self) -> pl.DataFrame | None:
        """The frame without mocli's own helper columns (never written or shown)."""
        if self.frame is None:
            return None

        made = [self.group] if len(self.group_columns) > 1 else []  # the key of several group columns
        return self.frame.select([c for c in public_columns(self.frame.columns) if c not in made])


def describe_batch(column: str | None) -> str:

    if column is None:
        return "whole table"
    return "file" if column == FILE else column


def parse_steps(text: str | None) -> tuple[float, float] | None:
    """``A:B`` (inclusive; either side may be empty) or a single step ``A``."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        a = float(lo) if lo.strip() else -np.inf
        b = (float(hi) if hi.strip() else np.inf) if sep else a
    except ValueError:
        raise UsageError(f"--steps '{text}' is not A:B (inclusive, e.g. 100:200, 100: or :200) or one step") from None
    if a > b:
        raise UsageError(f"--steps '{text}': the first step is after the last")
    return a, b


@dataclass
class Plan:
    """What loading will read: the files, their columns and the role of each."""

    paths: list[Path]
    schema: dict[str, pl.DataType]
    group: str
    objectives: list[Objective]
    minimize: Sequence[str]
    length: str | None
    baseline: str | None
    step: str | None
    needed: list[str]
    steps: str | None = None
    dump: Any = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch: str | None = None
    scalar: str | None = None
    # the columns whose tuple is the group key (``group`` itself for one column; for
    # several, ``group`` names the key added to each frame read, see with_group_key)
    group_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.group_columns:
            self.group_columns = (self.group,)

    @property
    def window(self) -> tuple[float, float] | None:
        return parse_steps(self.steps)

    @property
    def files(self) -> list[Path]:
        """Every file read: the inputs, or a framework dump's files."""
        return list(self.dump.files) if self.dump is not None else list(self.paths)

    def no_rows(self) -> InputError:
        where = ", ".join(str(p) for p in self.files) or "the dump"
        return InputError(f"no rows in {where}" + (f" within --steps {self.steps}" if self.steps else ""))


def group_key_name(columns: Sequence[str]) -> str:
    """The name of the key made of several group columns (their tuple), as reports show it."""
    return "+".join(columns)


def with_group_key(df: pl.DataFrame, plan: "Plan") -> pl.DataFrame:
    """``df`` with the group key of several group columns (a struct of them) added under
    :func:`group_key_name`; ``df`` itself for one group column."""
    if len(plan.group_columns) < 2:
        return df
    return df.with_columns(pl.struct(list(plan.group_columns)).alias(plan.group))


def plan(
    inputs: Sequence[str | os.PathLike],
    *,
    group: str | Sequence[str] | None = None,
    rewards: Sequence[str] | None = None,
    minimize: Sequence[str] = (),
    length: str | None = None,
    baseline: str | None = None,
    step: str | None = None,
    extra: Sequence[str] = (),
    source: str | None = None,
    steps: str | None = None,
    batch_by: str | None = None,
) -> Plan:
    """Resolve the column roles from the files' schemas (nothing but a framework dump is
    read yet); every naming error is raised here. ``group``: one column, or several whose
    tuple is the group key (agent-wise groups: ``["prompt", "agent"]``)."""
    columns = [group] if isinstance(group, str) else list(group or [])
    if len(columns) != len(set(columns)):
        raise UsageError(f"-g/--group names a column twice: {', '.join(columns)}")
    group = columns[0] if len(columns) == 1 else None
    notes: list[str] = []
    warnings: list[str] = []
    dump = None
    scalar = None
    if source:
        dump = frameworks.read(source, [str(i) for i in inputs], [*columns, length, baseline, step, batch_by])
        schema = {c: t for c, t in dump.frame.schema.items()}
        if not columns:
            group = dump.group
        if not rewards:
            rewards = dump.reward_specs()
            scalar = dump.scalar
        step = step or dump.step
        batch_by = batch_by or dump.batch
        notes = [f"read {len(dump.files)} file(s) as a {dump.source} dump"] + dump.notes
        warnings = list(dump.warnings)
        paths: list[Path] = []
    else:
        paths = expand_inputs(inputs)
        per_file: dict[Path, dict[str, pl.DataType]] = {}
        schema = schema_of(paths, per_file)
    if step is None and steps is not None and "step" in schema:
        step = "step"
    if steps is not None and step is None:
        raise UsageError("--steps needs a step column: pass --step COL")
    parse_steps(steps)
    if len(columns) > 1:
        for c in columns:
            detect_group(schema, c)
        key_columns = tuple(columns)
        gcol = group_key_name(columns)
        if gcol in schema:
            raise UsageError(f"-g/--group: the key of {', '.join(columns)} would be named '{gcol}', which is already a column")
    else:
        gcol = detect_group(schema, group)
        key_columns = (gcol,)
    if dump is None and len(paths) > 1:
        for c in key_columns:
            same_key_kind(per_file, c, "group")
        if batch_by:
            same_key_kind(per_file, batch_by, "batch")
    extras = {"length": (length, "--length"), "baseline": (baseline, "--baseline"), "step": (step, "--step"),
              "batch": (batch_by, "--batch-by")}
    for what, (col, opt) in extras.items():
        if col is not None and col not in schema:
            raise _missing(col, schema, what, opt)
    roles = [*key_columns, length or "", baseline or "", step or "", batch_by or ""]
    objs = detect_rewards(schema, rewards, exclude=roles)
    names = [o.name for o in objs]
    for m in minimize:
        if m not in names:
            raise UsageError(f"--minimize names '{m}', which is not a reward{suggest(m, names)}; rewards: {', '.join(names)}")
    for col in extra:
        if col not in schema:
            raise _missing(col, schema, "requested", "--by/--logged")
    needed = [*key_columns, *names] + [c for c in (length, baseline, step, batch_by, scalar) if c] + list(extra)
    return Plan(paths, schema, gcol, objs, minimize, length, baseline, step, list(dict.fromkeys(needed)), steps, dump,
                notes, warnings, batch_by, scalar, key_columns)


def load(
    inputs: Sequence[str | os.PathLike],
    *,
    extra: Sequence[str] = (),
    all_columns: bool = False,
    progress: Progress = silent,
    **roles: Any,
) -> Loaded:
    """Read rollout files into :class:`Rollouts`; ``frame`` holds the columns read (every
    column with ``all_columns``, else the needed ones plus ``extra``). ``roles`` are
    :func:`plan`'s: group, rewards, minimize, length, baseline, step, ``source`` (a
    framework's dump: trl, verl, nemo_rl, auto), ``steps`` (a step range) and
    ``batch_by`` (the training batch column). ``progress``: see :data:`Progress`."""
    p = plan(inputs, extra=extra, **roles)
    dump = p.dump
    if dump is not None:
        keep = p.needed + ([dump.logged] if dump.logged and dump.logged not in p.needed else [])
        df = dump.frame if all_columns else dump.frame.select(keep)
    else:
        df = read_columns(p.paths, None if all_columns else p.needed, progress)
    df = with_group_key(keep_steps(df, p), p)
    if df.height == 0:
        raise p.no_rows()
    ro = to_rollouts(df, p.group, p.objectives, p.minimize, p.length, p.baseline, batch=p.batch, scalar=p.scalar)
    warnings = list(p.warnings) + layout_warnings(ro, df, p)
    return Loaded(
        ro, p.group, p.objectives, p.length, p.baseline, p.step, df, p.files, dump.logged if dump else None,
        p.notes, warnings, p.batch, dump.source if dump else None, dump.group_rule if dump else None,
        dump.batch_rule if dump else None, p.scalar, p.group_columns,
    )


def group_sizes_by_batch(ro: Rollouts, df: pl.DataFrame, batch: str) -> dict[Any, np.ndarray]:
    """The sizes of the groups of each training batch, keyed by the batch column's value
    (in the order batches first appear); empty without batches."""
    if ro.batch is None or batch not in df.columns or ro.n_groups == 0:
        return {}
    sizes = np.diff(ro.offsets)
    first = ro.order[ro.offsets[:-1]]  # each group's first row
    of_group = ro.batch[first]
    order = np.argsort(of_group, kind="stable")
    bounds = np.flatnonzero(np.diff(of_group[order])) + 1
    values = df.get_column(batch)
    out = {}
    for part in np.split(order, bounds):
        out[values[int(first[part[0]])]] = sizes[part]
    return out


def layout_warnings(ro: Rollouts, df: pl.DataFrame, p: Plan) -> list[str]:
    """What the loaded layout says may be wrong: every group a singleton (no
    group-relative signal at all: the wrong group column?), and in a framework's dump,
    groups of another size than the rest of their batch."""
    out = []
    if ro.n > 1 and ro.n_groups == ro.n:
        out.append(
            f"every group has one row ({ro.n} groups of one, group column '{p.group}'): no advantage is group-relative; "
            "is the group column right (-g COL)?"
        )
    elif p.dump is not None:

        by_batch = group_sizes_by_batch(ro, df, p.batch) if p.batch is not None else {"all": np.diff(ro.offsets)}
        out += group_size_warnings(by_batch, describe_batch(p.batch))
    return out


def keep_steps(df: pl.DataFrame, p: Plan) -> pl.DataFrame:
    """The rows within ``--steps``."""
    window = p.window
    if window is None:
        return df
    st = _float_column(df, p.step, "step", allow_nan=False)
    return df.filter(pl.Series((st >= window[0]) & (st <= window[1])))


def to_rollouts(
    df: pl.DataFrame, gcol: str, objs: Sequence[Objective], minimize: Sequence[str] = (),
    length: str | None = None, baseline: str | None = None, *, whole: bool = True,
    batch: str | None = None, scalar: str | None = None,
) -> Rollouts:
    """The arrays of a frame whose columns were checked to exist. ``whole=False`` (one
    chunk of a streamed table) skips the check that a reward column has some value, which
    only the whole table can answer. ``batch``: the training batch column (a group is
    then its key within one batch); ``scalar``: the logged scalar that trains."""
    cols = []
    for o in objs:
        col = _float_column(df, o.name, "reward", whole=whole)
        if whole and np.isnan(col).all():
            raise InputError(f"reward column '{o.name}' has no values (every cell is null/NaN)")
        cols.append(col)
    r = np.column_stack(cols) if cols else np.zeros((df.height, 0))
    len_arr = _float_column(df, length, "length", allow_nan=False) if length else None
    if len_arr is not None and (len_arr < 0).any():
        raise InputError(f"length column '{length}' holds negative values; lengths are token counts >= 0")
    base_arr = _float_column(df, baseline, "baseline", whole=whole) if baseline else None
    batch_codes = None
    if batch is not None and batch != gcol:
        batch_codes, _ = factorize(df.get_column(batch), "batch")
        if df.get_column(gcol).null_count():
            factorize(df.get_column(gcol))  # raises the group column's error
        codes, n_groups, order, offsets = grouping(df.select(pl.struct(batch, gcol)).to_series().alias(gcol))
    else:
        codes, n_groups, order, offsets = grouping(df.get_column(gcol))
    scalar_arr = _float_column(df, scalar, "score", whole=whole) if scalar else None
    weights = np.array([o.weight for o in objs], dtype=np.float64)
    mins = np.array([o.name in set(minimize) for o in objs], dtype=bool)
    return Rollouts(np.ascontiguousarray(r), tuple(o.name for o in objs), weights, mins, codes, order, offsets, len_arr,
                    base_arr, batch_codes, scalar_arr)


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def output_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == "":
        return ".parquet"
    if suffix not in WRITERS:
        raise UsageError(f"output '{path}' has an unknown extension; accepted: {', '.join(WRITERS)}")
    return suffix


def check_output(path: str | os.PathLike) -> None:
    """Fail before any work when the output cannot be written."""

    output_format(path)
    check_writable(path, "-o/--output")


def write_table(df: pl.DataFrame | pl.LazyFrame, path: str | os.PathLike, inputs: Sequence[Path] = ()) -> None:
    """Write to a temporary file beside ``path`` and rename: no partial output, and an
    existing file is left untouched on failure or interruption. A LazyFrame is streamed to
    the file (collected first only for ``.json``, which has no streaming writer); when that
    fails, the ``inputs`` it reads are checked first, so that an unreadable input is named
    as the culprit rather than the output."""

    check_output(path)
    fmt = output_format(path)
    lazy = isinstance(df, pl.LazyFrame)
    try:
        with replacing(path, fmt[1:]) as tmp:
            if lazy and fmt == ".json":
                df, lazy = df.collect(), False
            if fmt == ".parquet":
                df.sink_parquet(tmp) if lazy else df.write_parquet(tmp)
            elif fmt in (".jsonl", ".ndjson"):
                df.sink_ndjson(tmp) if lazy else df.write_ndjson(tmp)
            elif fmt == ".json":
                df.write_json(tmp)
            else:
                df.sink_csv(tmp) if lazy else df.write_csv(tmp)
    except InputError:
        if lazy:
            for p in inputs:
                check_readable(p)
        raise


def check_readable(path: Path) -> None:
    """Read a whole input file (every column, in streaming batches): an InputError naming
    it when it cannot be read, as a corrupt page or a value of another type far down does."""
    try:
        for _ in scan(path).collect_batches(chunk_size=1 << 18):
            pass
    except Exception as exc:
        raise read_error(path, exc) from None
