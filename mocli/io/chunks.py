"""Tables larger than memory: the input split into group-complete chunk files.

When the columns a report needs would not fit in the memory limit, the input is read once
and split by a hash of the group key into chunk files in a temporary folder (every group
lands whole in one chunk). The report is then built chunk by chunk from mergeable tallies
(:mod:`mocli.core.tally`): a first pass collects the batch-wide statistics that some estimators
and schemes need (GDPO's batch z-score, whitening, GPG's factor, Chebyshev's ideal point),
a second pass computes every chunk's advantages with those whole-table statistics and
merges its tallies. Quantiles and distinct counts come from sorted runs spilled to disk.
The result equals the in-memory report: counts and rates exactly, floating-point
statistics to rounding.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import polars as pl

from ..core.rollouts import Rollouts
from ..errors import InputError, UsageError
from .files import Plan, Progress, hive_columns, keep_steps, read_error, scan, silent, to_rollouts, with_group_key
from .outputs import check_interrupted, deferred_signals, pid_alive

# What analyze holds at its peak, per row: about 4 times the columns it reads (plus three
# of its own: codes, order, scalar; one copy is the rows laid out in group order), and about
# 2 more 8-byte values per estimator (measured: peak resident memory on the 12M-row
# benchmark table, 5 columns read: 292 bytes a row with 2 estimators). The figures below are
# those with about a fifth to spare; the chunk size is chosen so that one chunk stays
# within the limit.
COLUMN_COPIES = 5
ESTIMATOR_COLUMNS = 2.5
OWN_COLUMNS = 3
AUTO_SHARE = 0.6  # of the memory still available: what --memory-limit auto lets one run hold
SAMPLE_ROWS = 4096  # rows read to measure the width of a text column
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """``512MB``, ``4G``, ``1.5GiB`` or a number of bytes (units are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS or float(m.group(1)) <= 0:
        raise UsageError(f"--memory-limit '{text}' is not a size such as 512MB, 4GB or 1.5GiB (or 'auto')")
    return int(float(m.group(1)) * _UNITS[unit])


def available_memory() -> int:
    """Memory the system can still give (MemAvailable; the cgroup limit if lower)."""
    avail = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):
        cg = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cg != "max":
            avail = min(avail or int(cg), int(cg))
    return avail or (8 << 30)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def footprint(plan: Plan, rows: int, estimators: int) -> int:
    """The bytes a run over ``rows`` rows of ``plan`` holds at its peak (see COLUMN_COPIES):
    8 bytes per numeric cell, a text or nested column's measured width on its first rows."""
    width = 8 * OWN_COLUMNS
    for name in plan.needed:
        dtype = plan.schema.get(name)
        width += 8 if dtype is None or dtype.is_numeric() or dtype == pl.Boolean else _width(plan.paths, name)
    return int(rows * (COLUMN_COPIES * width + 8 * ESTIMATOR_COLUMNS * estimators))


def _width(paths: Sequence[Path], name: str) -> int:
    """Bytes per row of column ``name`` in memory, measured on the first rows that have it."""
    for p in paths:
        with contextlib.suppress(Exception):
            sample = scan(p).select(name).head(SAMPLE_ROWS).collect()
            if sample.height:
                return max(8, math.ceil(sample.estimated_size() / sample.height))
    return 8


def chunks_needed(plan: Plan, setting: str | None, share: float = 1.0, estimators: int = 2) -> tuple[int, int]:
    """How many chunks keep one chunk's working set (:func:`footprint`) within the limit
    (1 = in memory), and the limit in bytes: the setting, or for ``auto`` AUTO_SHARE of the
    memory still available (or of the cgroup's limit), so that a table is kept in memory
    whenever its estimated footprint fits there and only one that does not is streamed.
    ``share``: the part of the limit one chunk may use (the rest holds what is kept whole,
    such as the advantage columns)."""
    if plan.dump is not None or not plan.paths:
        return 1, 0
    rows = count_rows(plan.paths)
    need = footprint(plan, rows, estimators)
    if setting is not None and str(setting).strip().lower() != "auto":
        limit = parse_size(setting)
    else:
        limit = int(available_memory() * AUTO_SHARE)
    return max(1, min(rows, math.ceil(need / (limit * share)))), limit  # never more chunks than rows


def count_rows(paths: Sequence[Path]) -> int:
    total = 0
    for p in paths:
        try:
            total += int(scan(p).select(pl.len()).collect().item())
        except Exception as exc:
            raise read_error(p, exc) from None
    return total


@dataclass
class Chunked:
    """The input split into group-complete chunk files (Arrow IPC) in ``folder``."""

    plan: Plan
    folder: str
    parts: list[list[Path]]
    rows: int
    schema: dict[str, pl.DataType] = field(default_factory=dict)
    progress: Progress = silent

    def __len__(self) -> int:
        return len(self.parts)

    def frames(self, stage: str) -> Iterator[pl.DataFrame]:
        for i, files in enumerate(self.parts):
            self.progress(stage, i, len(self.parts))
            if files:
                yield pl.scan_ipc(files).collect()
        self.progress(stage, len(self.parts), len(self.parts))

    def chunks(self, stage: str, by: str | None = None) -> Iterator[Chunk]:
        """Each chunk's rows as :class:`Rollouts`, with their positions in the input (when
        split with ``row_index``) and their values of ``by`` as slice keys."""
        for df in self.frames(stage):
            yield chunk_of(df, self.plan, by)


@dataclass
class Chunk:
    """One group-complete chunk: its rollouts, the input position of each row (None unless
    split with ``row_index``) and each row's slice key (None without ``--by``)."""

    rollouts: Rollouts
    rows: np.ndarray | None
    keys: np.ndarray | None


def _target_schema(plan: Plan) -> dict[str, pl.DataType]:
    """The type each needed column has once all the files are put together (the same
    relaxed supertypes as reading them in memory)."""
    empties = []
    for p in plan.paths:
        lf = scan(p)
        have = lf.collect_schema()
        hive = hive_columns(p)
        cols = {c: have[c] for c in plan.needed if c in have}
        for k, v in hive.items():
            if k in plan.needed and k not in cols:
                cols[k] = pl.Int64 if isinstance(v, int) else pl.Float64 if isinstance(v, float) else pl.String
        empties.append(pl.DataFrame(schema=cols))
    merged = pl.concat(empties, how="diagonal_relaxed") if empties else pl.DataFrame()
    return {c: merged.schema[c] for c in plan.needed if c in merged.schema}


# the column a chunk file carries with each row's position in the (step-filtered) input
ROW = "__mocli_row__"
_CHUNK = "__mocli_chunk__"


def conformed(frame: pl.LazyFrame | pl.DataFrame, path: Path, types: dict[str, pl.DataType],
              columns: Sequence[str]) -> pl.LazyFrame | pl.DataFrame:
    """The rows of one input file as every engine reads them: its hive folders' values as
    columns, then ``columns`` in the types of the files put together (null where this file
    lacks one)."""
    have = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    hive = hive_columns(path)
    frame = frame.with_columns([pl.lit(v).alias(k) for k, v in hive.items() if k not in have])
    have = list(have) + [k for k in hive if k not in have]
    return frame.select([pl.col(c).cast(types[c]) if c in have else pl.lit(None, dtype=types[c]).alias(c) for c in columns])


def routed(df: pl.DataFrame, plan: Plan, n_chunks: int, name: str) -> pl.DataFrame:
    """Rows within ``--steps``, with the group key of several columns, and the chunk each
    goes to (column ``name``): ``hash(group) % n``, or with training batches
    ``hash(batch) % n``, so that every batch lands whole in one chunk, and its groups with it."""
    df = with_group_key(keep_steps(df, plan), plan)
    return df.with_columns((df.get_column(plan.batch or plan.group).hash(seed=0) % n_chunks).cast(pl.Int64).alias(name))


def chunk_of(df: pl.DataFrame, plan: Plan, by: str | None) -> "Chunk":
    """One group-complete chunk's rows as a :class:`Chunk`."""
    ro = to_rollouts(df, plan.group, plan.objectives, plan.minimize, plan.length, plan.baseline, whole=False,
                     batch=plan.batch, scalar=plan.scalar)
    rows = df.get_column(ROW).to_numpy() if ROW in df.columns else None
    return Chunk(ro, rows, slice_keys(df, by))


def partition(plan: Plan, n_chunks: int, folder: str, batch_rows: int = 1 << 18, row_index: bool = False,
              progress: Progress = silent) -> Chunked:
    """Read the needed columns once and write each row to chunk ``hash(group) % n`` (with
    training batches, ``hash(batch) % n``: every batch lands whole in one chunk, and its
    groups with it); with ``row_index`` each row also carries its position in the input
    (column ``ROW``)."""
    target = _target_schema(plan)
    parts: list[list[Path]] = [[] for _ in range(n_chunks)]
    rows = 0
    seen = dict.fromkeys((o.name for o in plan.objectives), 0)
    written = 0
    for n_done, p in enumerate(plan.paths):
        progress("splitting into chunks", n_done, len(plan.paths))
        try:
            lf = conformed(scan(p), p, target, plan.needed)
            batches = lf.collect_batches(chunk_size=batch_rows)
            for df in batches:
                check_interrupted()
                df = routed(df, plan, n_chunks, _CHUNK)
                if df.height == 0:
                    continue
                if row_index:
                    df = df.with_columns(pl.int_range(rows, rows + df.height, dtype=pl.Int64).alias(ROW))
                rows += df.height
                for name in seen:
                    seen[name] += df.height - df.get_column(name).null_count() - int(df.get_column(name).is_nan().sum() if df.schema[name].is_float() else 0)
                pieces = df.partition_by(_CHUNK, maintain_order=True, include_key=False, as_dict=True)
                for (c,), piece in pieces.items():
                    out = Path(folder) / f"chunk{int(c):05d}-{written:06d}.arrow"
                    piece.write_ipc(out)
                    parts[int(c)].append(out)
                    written += 1
        except (InputError, UsageError):
            raise
        except Exception as exc:
            raise read_error(p, exc) from None
    progress("splitting into chunks", len(plan.paths), len(plan.paths))
    if rows == 0:
        raise plan.no_rows()
    for name, n in seen.items():
        if n == 0:
            raise InputError(f"reward column '{name}' has no values (every cell is null/NaN)")
    return Chunked(plan, folder, parts, rows, target, progress)


CHUNKS_PREFIX = "mocli-chunks-"
_OWNER = re.compile(rf"^{CHUNKS_PREFIX}(\d+)-")


def clean_stale_chunks(folder: str | None = None) -> list[str]:
    """Remove the chunk folders that processes no longer running left behind (killed
    before their own clean-up could run); returns their paths."""
    root = Path(folder or tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            m = _OWNER.match(entry.name)
            if m and entry.is_dir() and not pid_alive(int(m.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(str(entry))
    return removed


@contextlib.contextmanager
def chunked_input(plan: Plan, n_chunks: int, row_index: bool = False, progress: Progress = silent) -> Iterator[Chunked]:
    """The split input in a temporary folder (``$MOCLI_TMPDIR`` or the system's), named
    after this process and removed afterwards, on an error or an interruption too; the
    folders of processes that died without removing theirs are removed first."""
    root = os.environ.get("MOCLI_TMPDIR") or None
    clean_stale_chunks(root)
    folder = tempfile.mkdtemp(prefix=f"{CHUNKS_PREFIX}{os.getpid()}-", dir=root)
    try:
        yield partition(plan, n_chunks, folder, row_index=row_index, progress=progress)
    finally:
        with deferred_signals():  # an interruption here must not leave half the folder
            for _ in range(3):  # a file a native writer was still finishing: once more
                shutil.rmtree(folder, ignore_errors=True)
                if not os.path.exists(folder):
                    break


def slice_keys(frame: pl.DataFrame, by: str | None) -> np.ndarray | None:
    """Each row's value of ``by`` as text (``null`` for a missing one), or None."""
    if by is None:
        return None
    return np.array(["null" if v is None else str(v) for v in frame.get_column(by).to_numpy().tolist()], dtype=object)
