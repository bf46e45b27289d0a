"""``--engine ray``: the analyze report of a table worked through on a Ray cluster.

The input files are read with Ray Data (Parquet, JSON lines, CSV), each row gets the
columns and types the local engine gives it (hive folders, ``--steps``, the group key of
several columns) and the partition ``hash(group key) % n`` (with training batches
``hash(batch) % n``: a batch lands whole in one partition, and its groups with it), the
same routing as the local engine's chunk files. Ray's hash shuffle puts each partition's
rows together; every partition is then one group-complete chunk, tallied on a worker by
the local engine's own code (:func:`mocli.diagnostics.tally_rollouts`), and the tallies are
merged on the driver. Batch-wide statistics (GDPO's batch z-score, whitening, ...) take one
pass more: each worker records its chunk's share, the driver merges them
(:func:`merge_stats`) and sends the whole table's values with the last pass, so every chunk
computes with the statistics of the whole table.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Iterator, Sequence

import polars as pl

from ..core.tally import merge
from ..core.work import BatchStats
from ..diagnostics import chunk_scopes, report_from_trees, tally_rollouts
from ..diagnostics.budget import BudgetRule
from ..errors import UsageError
from ..io.chunks import Chunk, _target_schema, chunk_of, conformed, count_rows, routed
from ..io.files import Plan
from ..io.readers import READERS
from ..kernels import CPU
from .pipeline import run_estimators

PART = "__mocli_part__"
PATH = "__mocli_path__"


def connect(address: str | None = None) -> Any:
    """Ray, connected: to ``address`` (``--ray-address``), else ``$RAY_ADDRESS``, else a
    local cluster started here; an already connected driver stays as it is."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'mocli[ray]'") from None
    for name in ("ray", "ray.data", "ray._private", "ray.data._internal"):  # mocli's stderr carries notes and errors only
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        kw = dict(log_to_driver=False, configure_logging=False, include_dashboard=False)
        try:
            ray.init(address=target, **kw) if target else ray.init(**kw)
        except Exception as exc:  # an address that does not answer, a cluster of another version
            raise UsageError(f"--engine ray: cannot connect to the Ray cluster at '{target or 'local'}': "
                             f"{' '.join(str(exc).split())[:300]}") from None
    import ray.data

    for name in ("ray", "ray.data", "ray.data.dataset", "ray._private"):  # Ray Data sets its own levels on import
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


@contextlib.contextmanager
def sort_shuffle() -> Iterator[None]:
    """Ray Data's pull-based sort shuffle for mocli's groupings, the driver's setting put
    back afterwards: on the tables measured it starts no shuffle actors and took a third of
    the time of Ray's default hash shuffle on a small table (docs/scale.md)."""
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    context = DataContext.get_current()
    before = context.shuffle_strategy
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        yield
    finally:
        context.shuffle_strategy = before


def partitions_for(rows: int) -> int:
    """About a million rows a partition, at least one per CPU of the cluster."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(cpus, -(-rows // 1_000_000))


def dataset(plan: Plan, n: int, carried: dict[str, pl.DataType] | None = None) -> Any:
    """The needed columns (and ``carried`` ones) of every input, read with Ray Data, each
    row with its partition."""
    import ray.data

    target = _target_schema(plan)
    kinds: dict[str, list[str]] = {}
    for p in plan.paths:
        kinds.setdefault(READERS[p.suffix.lower()], []).append(str(p))
    parts = []
    for kind, paths in kinds.items():
        if kind == "parquet":
            ds = ray.data.read_parquet(paths, include_paths=True, file_extensions=None)
        elif kind == "ndjson":
            ds = ray.data.read_json(paths, lines=True, include_paths=True, file_extensions=None)
        elif kind == "csv":
            ds = ray.data.read_csv(paths, include_paths=True, file_extensions=None)
        else:
            raise UsageError(f"--engine ray reads .parquet, .jsonl/.ndjson and .csv files, not {kind} ('{paths[0]}')")
        parts.append(ds.map_batches(_Route(plan, target, n, carried), batch_format="pyarrow"))
    out = parts[0]
    for other in parts[1:]:
        out = out.union(other)
    return out


class _Route:
    """A batch of rows as the local engine reads them, with each row's partition;
    ``carried``: the other columns to keep (``advantages`` writes every input column),
    with their types across the files."""

    def __init__(self, plan: Plan, target: dict[str, pl.DataType], n: int,
                 carried: dict[str, pl.DataType] | None = None) -> None:
        self.plan, self.target, self.n = plan, target, n
        self.carried = carried or {}

    def __call__(self, table: Any) -> Any:
        df = pl.from_arrow(table)
        if PATH not in df.columns:
            df = df.rename({"path": PATH})
        types = {**self.carried, **self.target}
        columns = [*self.carried, *(c for c in self.plan.needed if c not in self.carried)]
        pieces = [conformed(piece, Path(path), types, columns)
                  for (path,), piece in df.partition_by(PATH, as_dict=True, maintain_order=True).items()]
        df = pl.concat(pieces, how="vertical") if pieces else pl.DataFrame(schema=types)
        return routed(df, self.plan, self.n, PART).to_arrow()


def _chunk(table: Any, plan: Plan, by: str | None) -> Chunk:
    return chunk_of(pl.from_arrow(table).drop(PART, strict=False), plan, by)


def _payload(obj: Any) -> dict[str, list]:
    return {"payload": [pickle.dumps(obj)]}


def merge_stats(into: BatchStats, part: BatchStats) -> None:
    """One partition's pass over its chunk, folded into the driver's statistics: what it
    recorded is merged with what the other partitions recorded."""
    for key, value in part.pending.items():
        into.pending[key] = merge(into.pending.get(key), value)
    into.incomplete |= part.incomplete
    into.scopes |= part.scopes


def analyze_ray(plan: Plan, resolved: Sequence[Any], scheme: Any, conds: Sequence[Any], *, compare: bool = False,
                by: str | None = None, rule: Any = None, address: str | None = None, partitions: int | None = None):
    """The analyze report of ``plan``'s inputs computed on Ray (equal to the in-memory one
    up to the order of sums), and how many partitions it used."""
    connect(address)
    with sort_shuffle():
        return _analyze(plan, resolved, scheme, conds, compare, by, rule, partitions)


def _analyze(plan, resolved, scheme, conds, compare, by, rule, partitions):
    n = partitions or partitions_for(count_rows(plan.paths))
    grouped = dataset(plan, n).groupby(PART, num_partitions=n)
    final, two_pass = _statistics(grouped, plan, resolved, scheme, conds, by)

    def tally(table):
        chunk = _chunk(table, plan, by)
        trees = {}
        for key, sub in chunk_scopes(chunk):
            s = None
            if two_pass:
                s = BatchStats(known=dict(final[key].known)) if key in final else BatchStats()
            tree, _, _ = tally_rollouts(sub, resolved, scheme, conds, compare, CPU, s, None, rule or BudgetRule())
            trees[key] = tree
        return _payload(trees)

    trees: dict[Any, Any] = {}
    for row in grouped.map_groups(tally, batch_format="pyarrow").iter_rows():
        for key, tree in pickle.loads(row["payload"]).items():
            trees[key] = merge(trees.get(key), tree)
    if None not in trees:
        raise plan.no_rows()
    return report_from_trees(trees, by), n


def _statistics(grouped: Any, plan: Plan, resolved, scheme, conds, by: str | None) -> tuple[dict[Any, BatchStats], bool]:
    """The batch-wide statistics of the whole table (and of each slice of ``by``), in as
    many passes over the partitions as they depend on one another; and whether any were
    needed. Each partition records its chunk's share; the driver merges them."""
    stats: dict[Any, BatchStats] = {}
    two_pass = False
    if plan.batch is None:  # each training batch lies whole in one partition: its statistics are its own
        while True:
            known = {k: copy.deepcopy(v) for k, v in stats.items()}

            def record(table, known=known):
                chunk = _chunk(table, plan, by)
                local: dict[Any, BatchStats] = {}
                for key, sub in chunk_scopes(chunk):
                    s = local.setdefault(key, BatchStats(known=dict(known[key].known) if key in known else {}))
                    run_estimators(sub, resolved, scheme, conds, device=CPU, stats=s)
                return _payload(local)

            for row in grouped.map_groups(record, batch_format="pyarrow").iter_rows():
                for key, part in pickle.loads(row["payload"]).items():
                    merge_stats(stats.setdefault(key, BatchStats()), part)
            if not any(s.scopes for s in stats.values()):
                break  # nothing batch-wide
            if not any([s.settle() for s in stats.values()]):
                two_pass = True
                break
    return (stats if two_pass else {}), two_pass


def advantages_ray(plan: Plan, resolved: Sequence[Any], scheme: Any, conds: Sequence[Any], output: str, *,
                   float32: bool = False, address: str | None = None, partitions: int | None = None) -> tuple[int, int]:
    """Every input row with one ``adv:<label>`` column per estimator, computed on Ray and
    written as a folder of Parquet files (one or more per partition; rows in no particular
    order) at ``output``: written beside it first and moved into place when complete, so a
    failed run leaves an existing ``output`` as it was. Returns the rows written and the
    partitions used."""
    connect(address)
    with sort_shuffle():
        return _advantages(plan, resolved, scheme, conds, output, float32, partitions)


def _advantages(plan, resolved, scheme, conds, output, float32, partitions):
    import shutil
    import tempfile

    import numpy as np

    from ..io.files import schema_of

    columns = schema_of(plan.paths)
    carried = {c: t for c, t in columns.items() if c not in plan.needed}
    n = partitions or partitions_for(count_rows(plan.paths))
    grouped = dataset(plan, n, carried).groupby(PART, num_partitions=n)
    final, two_pass = _statistics(grouped, plan, resolved, scheme, conds, None)
    dtype = np.float32 if float32 else np.float64

    def compute(table):
        df = pl.from_arrow(table).drop(PART)
        ro = chunk_of(df, plan, None).rollouts
        stats = BatchStats(known=dict(final[None].known)) if two_pass and None in final else None
        advs, _ = run_estimators(ro, resolved, scheme, conds, device=CPU, stats=stats)
        out = df.select([c for c in columns if c in df.columns])  # the input's columns, in its order
        return out.with_columns([pl.Series(f"adv:{label}", a.astype(dtype)) for label, a in advs.items()]).to_arrow()

    target = Path(output)
    staging = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.resolve().parent)
    try:
        grouped.map_groups(compute, batch_format="pyarrow").write_parquet(staging)
        rows = int(pl.scan_parquet(f"{staging}/*.parquet").select(pl.len()).collect().item())
        old = None
        if target.exists():
            old = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.resolve().parent)
            os.replace(target, Path(old) / "previous")
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rows, n

