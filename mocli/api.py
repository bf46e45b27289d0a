"""Library entry points that start from files: what each CLI command calls.

    >>> import mocli
    >>> table = mocli.advantages_table(["rollouts.parquet"], estimators=["grpo", "gdpo"])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import polars as pl

from . import config as config_mod
from . import kernels
from .io import Loaded, load, scan_all
from .errors import UsageError
from .pipeline import compute_advantages, resolve, run_estimators


@dataclass
class Settings:
    """Every option that shapes loading and computing, merged from the command line and
    the config file (the command line wins)."""

    group: str | None = None
    rewards: list[str] = field(default_factory=list)
    minimize: list[str] = field(default_factory=list)
    length: str | None = None
    baseline: str | None = None
    step: str | None = None
    estimators: list[str] = field(default_factory=list)
    scheme: str = "weighted_sum"
    gate: list[str] = field(default_factory=list)
    when: list[str] = field(default_factory=list)
    profile: str = "mocli"
    format: str | None = None
    check: list[Any] = field(default_factory=list)
    source: str | None = None
    steps: str | None = None
    device: str = "cpu"
    memory_limit: str | None = None

    @classmethod
    def merge(cls, config: str | None = None, **cli: Any) -> "Settings":
        table = config_mod.read(config)
        out = cls()
        for f in fields(cls):
            value = cli.get(f.name)
            if value is None or value == [] or value == ():
                value = table.get(f.name)
            if value is not None:
                setattr(out, f.name, list(value) if isinstance(value, (list, tuple)) else value)
        return out

    def roles(self) -> dict[str, Any]:
        return dict(
            group=self.group, rewards=self.rewards or None, minimize=self.minimize, length=self.length,
            baseline=self.baseline, step=self.step, source=self.source, steps=self.steps,
        )

    def load(self, inputs: Sequence[str | os.PathLike], all_columns: bool = False, extra: Sequence[str] = ()) -> Loaded:
        return load(inputs, extra=extra, all_columns=all_columns, **self.roles())


def advantages_table(
    inputs: Sequence[str | os.PathLike],
    settings: Settings | None = None,
    float32: bool = False,
    **options: Any,
) -> pl.DataFrame:
    """The input rows (every column) plus one ``adv:<label>`` column per estimator."""
    s = settings or Settings.merge(**options)
    specs = s.estimators or ["grpo"]
    resolve(specs, s.profile)  # fail on a bad spec before reading anything
    loaded = s.load(inputs, all_columns=True)
    with kernels.device(s.device):
        adv = compute_advantages(
            loaded.rollouts, specs, scheme=s.scheme, conditions=s.when, gates=s.gate, profile=s.profile
        )
    dtype = np.float32 if float32 else np.float64
    cols = [pl.Series(f"adv:{label}", a.astype(dtype)) for label, a in adv.items()]
    return loaded.frame.with_columns(cols)


def write_advantages(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    settings: Settings | None = None,
    float32: bool = False,
    **options: Any,
) -> tuple[int, list[str], list[str]]:
    """Write :func:`advantages_table` to ``output``; returns the row count, the columns
    added and notes. Only the columns the estimators read are loaded; the advantage
    columns are then written alongside the input files streamed through, so the whole
    table is never held. An input over the memory limit (``memory_limit``, see
    :func:`mocli.stream.chunks_needed`) is computed in group-complete chunks, so that only
    the advantage columns are held whole. A framework's dump is read and written whole."""
    from .io import plan, write_table
    from .pipeline import make_scheme
    from .schemes import Condition
    from .stream import advantages_chunked, chunked_input, chunks_needed, human_size

    s = settings or Settings.merge(**options)
    specs = s.estimators or ["grpo"]
    resolved = resolve(specs, s.profile)  # fail on a bad spec before reading anything
    p = plan(inputs, **s.roles())
    n, limit = chunks_needed(p, s.memory_limit, share=0.25)  # the rest: the advantage columns, the writer
    if p.dump is not None:
        table = advantages_table(inputs, s, float32=float32)
        write_table(table, output)
        return table.height, [c for c in table.columns if c.startswith("adv:")], []
    scheme = make_scheme(s.scheme, s.gate)
    conds = [Condition.parse(c) for c in s.when]
    notes = []
    if n <= 1:
        rollouts = s.load(inputs).rollouts
        with kernels.device(s.device):
            adv, _ = run_estimators(rollouts, resolved, scheme, conds)
        del rollouts
    else:
        with kernels.device(s.device), chunked_input(p, n, row_index=True) as chunked:
            adv = advantages_chunked(chunked, resolved, scheme, conds)
        notes.append(f"streamed in {n} group-complete chunks ({chunked.rows} rows; memory limit {human_size(limit)})")
    rows = next(iter(adv.values())).shape[0]
    return rows, _write_beside_inputs(p, adv, output, np.float32 if float32 else np.float64), notes


def _write_beside_inputs(p, adv: dict[str, np.ndarray], output, dtype) -> list[str]:
    """Write the input files, streamed through, with one ``adv:<label>`` column per entry
    of ``adv`` (rows in input order) in place of a same-named input column (where
    ``with_columns`` would put it) or appended; ``adv`` is emptied as its columns are
    handed over. Returns the names of the columns written."""
    from .io import write_table
    from .stream import ROW

    names = {label: f"adv:{label}" for label in adv}
    temp = {label: f"{ROW}{i}" for i, label in enumerate(adv)}
    added = pl.DataFrame({temp[label]: adv.pop(label).astype(dtype, copy=False) for label in list(adv)})
    source = scan_all(p)
    have = source.collect_schema().names()
    replaced = {names[label]: temp[label] for label in names}
    select = [pl.col(replaced[c]).alias(c) if c in replaced else pl.col(c) for c in have]
    select += [pl.col(temp[label]).alias(col) for label, col in names.items() if col not in have]
    write_table(pl.concat([source, added.lazy()], how="horizontal").select(select), output)
    return list(names.values())


TEXT_COLUMNS = ("prompt", "question", "input", "completion", "response", "output", "text")


def analyze(
    inputs: Sequence[str | os.PathLike],
    settings: Settings | None = None,
    *,
    by: str | None = None,
    compare: bool = False,
    figures: bool = False,
    require_figures: bool = False,
    **options: Any,
):
    """Load rollouts (or take a :class:`~mocli.Rollouts`) and build the analyze report
    (:class:`mocli.diagnostics.Report`; ``.to_dict()`` is the JSON document).

        >>> report = mocli.analyze(["rollouts.parquet"], estimators=["grpo", "gdpo"], by="step")
        >>> report.to_dict()["estimators"]["grpo"]["collapse"]["zero_variance_group_rate"]

    ``by`` adds one report per value of that column; ``compare`` adds pairwise agreement
    and keeps the advantages so that :func:`flip_rows` can list the rows that flip sign.
    An input whose columns would not fit in ``memory_limit`` (a size such as ``"2GB"``;
    default: half the available memory) is analysed in group-complete chunks
    (:mod:`mocli.stream`): the same report, without the pictures (``figures``) and without
    the advantages; ``require_figures`` makes that an error instead.
    """
    from .batch import Rollouts
    from .diagnostics import analyze_rollouts
    from .io import expand_inputs, schema_of

    s = settings or Settings.merge(**options)
    if isinstance(inputs, Rollouts):
        with kernels.device(s.device):
            return analyze_rollouts(
                inputs, s.estimators or None, scheme=s.scheme, conditions=s.when, gates=s.gate,
                profile=s.profile, compare=compare, keep_advantages=compare, figures=figures,
            )
    if s.estimators:
        resolve(s.estimators, s.profile)  # fail on a bad spec before reading anything
    if not s.source:
        streamed = _analyze_streamed(inputs, s, by, compare, require_figures)
        if streamed is not None:
            return streamed
    extra: list[str] = []
    if by:
        extra.append(by)
    if s.source:  # a framework dump is in memory whole anyway: keep every column
        loaded = s.load(inputs, all_columns=True)
        if by and by not in loaded.frame.columns:
            s.load(inputs, extra=[by])  # raises the usual missing-column error
    else:
        if compare:
            schema = schema_of(expand_inputs(inputs))
            extra += [c for c in TEXT_COLUMNS if c in schema and schema[c] == pl.String]
        loaded = s.load(inputs, extra=list(dict.fromkeys(extra)))
    slices = loaded.frame.get_column(by).to_numpy() if by else None
    with kernels.device(s.device):
        report = analyze_rollouts(
            loaded.rollouts, s.estimators or None, scheme=s.scheme, conditions=s.when, gates=s.gate,
            profile=s.profile, compare=compare, slices=slices, slice_column=by, keep_advantages=compare,
            figures=figures,
        )
    report._frame = loaded.frame  # type: ignore[attr-defined]
    report._group = loaded.group  # type: ignore[attr-defined]
    return report


def _analyze_streamed(inputs, s: Settings, by: str | None, compare: bool, require_figures: bool):
    """The report of an input too large for the memory limit, built chunk by chunk; None
    when the input fits (the caller then works in memory)."""
    from .diagnostics import default_estimators_for
    from .io import plan
    from .pipeline import make_scheme
    from .schemes import Condition
    from .stream import analyze_chunked, chunked_input, chunks_needed, human_size

    p = plan(inputs, extra=[by] if by else [], **s.roles())
    n, limit = chunks_needed(p, s.memory_limit, keep_in_memory=require_figures or compare)
    if n <= 1:
        return None
    if require_figures:
        raise UsageError(
            f"the HTML report needs the table in memory, and it would take about {n} times the memory limit "
            f"({human_size(limit)}); raise --memory-limit, or report on a --steps range"
        )
    weights = np.array([o.weight for o in p.objectives])
    specs = s.estimators or default_estimators_for(weights)
    resolved = resolve(specs, s.profile)
    scheme = make_scheme(s.scheme, s.gate)
    conds = [Condition.parse(c) for c in s.when]
    with kernels.device(s.device), chunked_input(p, n) as chunked:
        report = analyze_chunked(chunked, resolved, scheme, conds, compare=compare, by=by)
    report.notes = [f"streamed in {n} group-complete chunks ({chunked.rows} rows; memory limit {human_size(limit)})"]
    return report


def flip_rows(report, a: str, b: str, limit: int = 20, width: int = 60) -> list[dict[str, Any]]:
    """The rows whose advantage sign differs between estimators ``a`` and ``b``, most telling
    first, with the group key, the rewards and any text columns (truncated)."""
    from .diagnostics import flips

    frame = getattr(report, "_frame", None)
    group = getattr(report, "_group", None)
    batch = report._batch
    out = []
    for row, va, vb in flips(report, a, b, limit):
        entry: dict[str, Any] = {"row": row}
        if frame is not None and group is not None:
            key = frame.get_column(group)[row]
            entry["group"] = key if isinstance(key, (int, float, str)) else str(key)
        entry[a] = va
        entry[b] = vb
        entry["rewards"] = {
            name: (None if np.isnan(v) else float(v)) for name, v in zip(batch.names, batch.rewards[row])
        }
        if frame is not None:
            for col in TEXT_COLUMNS:
                if col in frame.columns and frame.schema[col] == pl.String and col != group:
                    text = frame.get_column(col)[row]
                    if text is not None:
                        text = " ".join(str(text).split())
                        entry[col] = text if len(text) <= width else text[: width - 1] + "…"
        out.append(entry)
    return out


def verify(
    inputs: Sequence[str | os.PathLike],
    logged: str | None = None,
    settings: Settings | None = None,
    *,
    tol: float = 1e-5,
    top: int = 5,
    **options: Any,
):
    """Recompute the advantages under the profile and compare them with the ``logged``
    column (:class:`mocli.verification.Verification`). With ``--from`` the dump's own advantage
    column is the default."""
    from .errors import UsageError
    from .verification import verify_rollouts

    s = settings or Settings.merge(**options)
    spec = (s.estimators or ["grpo"])
    if len(spec) > 1:
        raise UsageError("verify takes one estimator (-e SPEC): the one the trainer used")
    resolve(spec, s.profile)
    if logged is None:
        probe = s.load(inputs) if s.source else None
        logged = probe.logged if probe is not None else None
        if logged is None:
            raise UsageError("--logged COL is required: the column holding the advantages the trainer used")
    loaded = s.load(inputs, extra=[logged])
    values = loaded.frame.get_column(logged)
    if not (values.dtype.is_numeric() or values.dtype == pl.Null):
        raise UsageError(f"--logged column '{logged}' is {values.dtype}, not numeric")
    keys = loaded.frame.get_column(loaded.group).to_list()
    with kernels.device(s.device):
        return verify_rollouts(
            loaded.rollouts, values.cast(pl.Float64).to_numpy(), estimator=spec[0], profile=s.profile,
            scheme=s.scheme, conditions=s.when, gates=s.gate, tol=tol, group_keys=keys, top=top,
        )


def inspect(inputs: Sequence[str | os.PathLike], settings: Settings | None = None, **options: Any) -> dict[str, Any]:
    """Columns and their types, the detected group and reward columns, group sizes."""
    from .io import schema_of
    from .kernels import seg_mean_var

    s = settings or Settings.merge(**options)
    loaded = s.load(inputs)
    ro = loaded.rollouts
    if loaded.files:
        schema = schema_of(loaded.files)
    else:  # a framework dump: the columns of the table it was read into
        schema = dict(s.load(inputs, all_columns=True).frame.schema)
    roles = {loaded.group: "group", loaded.length: "length", loaded.baseline: "baseline", loaded.step: "step",
             loaded.logged: "logged advantage"}
    roles.update({name: "reward" for name in ro.names})
    sizes = np.diff(ro.offsets)
    scorable = ~np.all(np.isnan(ro.rewards), axis=1)
    _, _, counts, _ = seg_mean_var(np.zeros(ro.n), scorable, ro.order, ro.offsets, 0)
    return {
        "files": [str(p) for p in loaded.files],
        "notes": loaded.notes,
        "rows": ro.n,
        "columns": {name: {"type": str(dtype), "role": roles.get(name)} for name, dtype in schema.items()},
        "group": loaded.group,
        "groups": ro.n_groups,
        "group_size": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "singleton_groups": int((counts == 1).sum()),
        "rewards": {
            name: {"weight": float(w), "direction": "min" if m else "max", "missing": int(np.isnan(ro.rewards[:, k]).sum())}
            for k, (name, w, m) in enumerate(zip(ro.names, ro.weights, ro.minimize))
        },
    }
