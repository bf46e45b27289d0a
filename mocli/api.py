"""Library entry points that start from files: what each CLI command calls.

    >>> import mocli
    >>> table = mocli.advantages_table(["rollouts.parquet"], estimators=["grpo", "gdpo"])
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import field, fields, make_dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from . import config as config_mod
from . import kernels
from .core.rollouts import Rollouts
from .diagnostics.budget import BudgetRule
from .diagnostics import Analysis, analyze_chunked, analyze_rollouts, choose_estimators
from .diagnostics.verify import verify_rollouts
from .diagnostics import sweep as sweep_mod
from .diagnostics.sweep import DEFAULT_METRICS, Sweep
from .engine.pipeline import compute_advantages, make_scheme, resolve, run_estimators
from .engine.stream import advantages_chunked
from .errors import MocliError, UsageError
from .io.chunks import chunked_input, chunks_needed, human_size
from .io.files import (
    Loaded, describe_batch, expand_inputs, group_sizes_by_batch, load, plan, schema_of, silent, write_table,
)
from .io.frameworks import resolve_source
from .io.readers import READERS
from .io.remote import localise
from .io.outputs import refuse_inputs
from .io.tables import (
    column_values, group_names, numeric_column, picked_rows, text_columns, with_advantages, write_beside_inputs,
)
from .kernels import CPU
from .options import OPTIONS
from .schemes import Condition, Scheme


class _SettingsMethods:
    """What every :class:`Settings` does with its fields."""

    @classmethod
    def merge(cls, config: str | None = None, **cli: Any) -> "Settings":
        """The command line's values (``cli``, by field name) over the config file's."""
        table = config_mod.read(config)
        out = cls()
        for f in fields(cls):
            if f.name == "progress":
                if cli.get("progress") is not None:
                    out.progress = cli["progress"]
                continue
            value = cli.get(f.name)
            if value is None or value == [] or value == ():
                value = table.get(f.name)
            if value is not None:
                setattr(out, f.name, list(value) if isinstance(value, (list, tuple)) else value)
        return out

    def settled(self, inputs: Any = None) -> "Settings":
        """``--from auto`` resolved to the framework that wrote the inputs, and the profile
        that ``--from`` implies when none is given (else ``mocli``)."""
        if self.source and inputs is not None and not hasattr(inputs, "rewards"):
            self.source = resolve_source(self.source, [str(i) for i in inputs])
        if self.profile is None:
            self.profile = self.source if self.source in ("trl", "verl", "nemo_rl") else "mocli"
            self._implied = self.source == self.profile
        return self

    def profile_notes(self) -> list[str]:
        """What the run inferred before reading: the remote inputs read into local copies,
        the profile that ``--from`` implies."""
        implied = [f"profile {self.profile} (implied by --from {self.source}; --profile overrides)"] if getattr(self, "_implied", False) else []
        return list(getattr(self, "_remote", [])) + implied

    def roles(self) -> dict[str, Any]:
        return dict(
            group=self.group or None, rewards=self.rewards or None, minimize=self.minimize, length=self.length,
            baseline=self.baseline, step=self.step, source=self.source, steps=self.steps, batch_by=self.batch_by,
        )

    def load(self, inputs: Sequence[str | os.PathLike], all_columns: bool = False, extra: Sequence[str] = ()) -> Loaded:
        return load(inputs, extra=extra, all_columns=all_columns, progress=self.progress, **self.roles())

    def combination(self) -> tuple[Scheme, list[Condition]]:
        """The scheme (``--scheme``, ``--gate``) and the ``--when`` conditions, built."""
        return make_scheme(self.scheme, self.gate), [Condition.parse(c) for c in self.when]

    def choose(self, weights: np.ndarray | None, length: bool, names: Sequence[str] | None = None):
        """The estimators to run on a table with these objective weights (and a length
        column or not), and the warning the choice needs (:func:`choose_estimators`)."""
        return choose_estimators(self.estimators, weights, self.profile, length, names)

    @property
    def budget_rule(self) -> BudgetRule:
        """What the rollout budget counts as a success, and its target (``success``,
        ``budget_target``)."""
        return BudgetRule.parse(self.success, self.budget_target)

    @property
    def compute_device(self) -> kernels.Device:
        """The device :attr:`device` names, resolved (refused with the reason when it cannot run)."""
        return kernels.device(self.device)


def _begin(inputs: Any, settings: "Settings | None", options: dict[str, Any]) -> tuple["Settings", Any]:
    """The settings of a run (``settings``, else ``options`` over the config file),
    settled on its inputs, and the inputs with each remote one (``s3://``, ``hf://``, ...)
    replaced by a local copy of its files (:mod:`mocli.io.remote`)."""
    s = settings or Settings.merge(**options)
    if not isinstance(inputs, Rollouts):
        inputs, s._remote = localise(list(inputs), s.storage_options)
    return s.settled(inputs), inputs


def _setting(option) -> tuple[str, Any, Any]:
    if option.many:
        return option.name, list, field(default_factory=list)
    return option.name, Any, field(default=option.default)


# Every option that shapes loading and computing (one field per entry of the option
# table, mocli.options.OPTIONS), merged from the command line and the config file (the
# command line wins), and ``progress``: what long work reports to (see io.files.Progress).
Settings = make_dataclass(
    "Settings",
    [_setting(o) for o in OPTIONS] + [("progress", Any, field(default=silent, repr=False, compare=False))],
    bases=(_SettingsMethods,),
    namespace={"__module__": __name__, "__doc__": "The options of one run (see mocli.options.OPTIONS)."},
)


def advantages_table(
    inputs: Sequence[str | os.PathLike],
    settings: Settings | None = None,
    float32: bool = False,
    **options: Any,
) -> Any:
    """The input rows (every column) plus one ``adv:<label>`` column per estimator (a
    Polars DataFrame)."""
    return _advantages_loaded(inputs, settings, float32, **options)[0]


def _advantages_loaded(inputs, settings: Settings | None, float32: bool, **options: Any) -> tuple[Any, Loaded]:
    s, inputs = _begin(inputs, settings, options)
    specs = s.estimators or ["grpo"]
    resolve(specs, s.profile)  # fail on a bad spec before reading anything
    device = s.compute_device
    loaded = s.load(inputs, all_columns=True)
    adv = compute_advantages(
        loaded.rollouts, specs, scheme=s.scheme, conditions=s.when, gates=s.gate, profile=s.profile, device=device
    )
    return with_advantages(loaded.public_frame(), adv, np.float32 if float32 else np.float64), loaded


def write_advantages(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    settings: Settings | None = None,
    float32: bool = False,
    overwrite_input: bool = False,
    **options: Any,
) -> tuple[int, list[str], list[str], list[str]]:
    """Write :func:`advantages_table` to ``output``; returns the row count, the columns
    added, notes and warnings. An ``output`` that is one of the inputs is refused unless
    ``overwrite_input``. Only the columns the estimators read are loaded; the advantage
    columns are then written alongside the input files streamed through, so the whole
    table is never held. An input over the memory limit (``memory_limit``, see
    :func:`mocli.io.chunks.chunks_needed`) is computed in group-complete chunks, so that only
    the advantage columns are held whole. A framework's dump is read and written whole."""
    s, inputs = _begin(inputs, settings, options)
    specs = s.estimators or ["grpo"]
    resolved = resolve(specs, s.profile)  # fail on a bad spec before reading anything
    device = s.compute_device
    if (s.engine or "local") != "local":
        return _advantages_ray(inputs, s, resolved, output, float32)
    p = plan(inputs, **s.roles())
    refuse_inputs([("-o/--output", output)], p.files, overwrite_input)
    # the rest of the limit: the advantage columns, the writer
    n, limit = chunks_needed(p, s.memory_limit, share=0.25, estimators=len(resolved))
    if p.dump is not None:
        table, loaded = _advantages_loaded(inputs, s, float32)
        write_table(table, output)
        return table.height, [c for c in table.columns if c.startswith("adv:")], s.profile_notes() + loaded.notes, loaded.warnings
    scheme, conds = s.combination()
    notes = s.profile_notes() + p.notes
    warnings = list(p.warnings)
    if n <= 1:
        loaded = s.load(inputs)
        warnings = loaded.warnings
        rollouts = loaded.rollouts
        del loaded
        adv, _ = run_estimators(rollouts, resolved, scheme, conds, device=device)
        del rollouts
    else:
        with chunked_input(p, n, row_index=True, progress=s.progress) as chunked:
            adv = advantages_chunked(chunked, resolved, scheme, conds, device)
        notes.append(f"streamed in {n} group-complete chunks ({chunked.rows} rows; memory limit {human_size(limit)})")
    rows = next(iter(adv.values())).shape[0]
    return rows, write_beside_inputs(p, adv, output, np.float32 if float32 else np.float64), notes, warnings


def analyze(
    inputs: Sequence[str | os.PathLike],
    settings: Settings | None = None,
    *,
    by: str | None = None,
    compare: bool = False,
    figures: bool = False,
    require_figures: bool = False,
    **options: Any,
) -> Analysis:
    """Load rollouts (or take a :class:`~mocli.Rollouts`) and analyse them: an
    :class:`~mocli.diagnostics.Analysis` whose ``report`` is the analyze report
    (``.to_dict()`` is the JSON document).

        >>> analysis = mocli.analyze(["rollouts.parquet"], estimators=["grpo", "gdpo"], by="step")
        >>> analysis.report.to_dict()["estimators"]["grpo"]["collapse"]["zero_variance_group_rate"]

    ``by`` adds one report per value of that column; ``compare`` adds pairwise agreement
    and keeps the advantages so that :func:`flip_rows` can list the rows that flip sign;
    ``figures`` adds the data behind the pictures. An input whose columns would not fit in
    ``memory_limit`` (a size such as ``"2GB"``; default ``auto``: AUTO_SHARE of the available memory) is
    analysed in group-complete chunks (:mod:`mocli.engine.stream`): the same report,
    without the pictures and without the advantages; ``require_figures`` makes that an
    error instead.
    """
    s, inputs = _begin(inputs, settings, options)
    if isinstance(inputs, Rollouts):
        specs, chosen = s.choose(inputs.weights, inputs.length is not None)
        out = analyze_rollouts(
            inputs, specs, scheme=s.scheme, conditions=s.when, gates=s.gate,
            profile=s.profile, compare=compare, keep_advantages=compare, figures=figures,
            device=s.compute_device, progress=s.progress, rule=s.budget_rule,
        )
        return annotate(out, "batch index" if inputs.batch is not None else "whole table", [], chosen)
    if s.estimators:
        resolve(s.estimators, s.profile)  # fail on a bad spec before reading anything
    rule = s.budget_rule
    device = s.compute_device
    if (s.engine or "local") != "local":
        return _analyze_ray(inputs, s, by, compare, require_figures)
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
            extra += text_columns(schema_of(expand_inputs(inputs)))
        loaded = s.load(inputs, extra=list(dict.fromkeys(extra)))
    ro = loaded.rollouts
    specs, chosen = s.choose(ro.weights, ro.length is not None)
    out = analyze_rollouts(
        ro, specs, scheme=s.scheme, conditions=s.when, gates=s.gate,
        profile=s.profile, compare=compare, slices=column_values(loaded.frame, by) if by else None,
        slice_column=by, keep_advantages=compare, figures=figures, device=device, progress=s.progress, rule=rule,
    )
    out.frame = loaded.public_frame()
    out.group = loaded.group
    return annotate(out, loaded.batch_label, s.profile_notes() + loaded.notes, loaded.warnings + chosen)


def annotate(analysis: Analysis, batch: str, notes: list[str], warnings: list[str], said: Sequence[str] = ()) -> Analysis:
    """Put what was inferred about the input (``input.notes``), what may be wrong
    (``input.warnings``) and what a training batch is (every estimator's
    ``params.batch``) into the report. ``said``: notes for stderr only (how the work was
    done, such as streaming), which leave the report as it would be otherwise."""
    analysis.notes = list(notes) + list(said)
    analysis.warnings = list(warnings)
    report = analysis.report
    for rep in [report, *report.by.values()]:
        rep.input["batch_by"] = None if batch == "whole table" else batch
        rep.input["notes"] = list(notes)
        rep.input["warnings"] = list(warnings)
        for entry in rep.estimators.values():
            entry["params"] = {**entry["params"], "batch": batch}
    return analysis


def _analyze_streamed(inputs, s: Settings, by: str | None, compare: bool, require_figures: bool) -> Analysis | None:
    """The analysis of an input too large for the memory limit, built chunk by chunk; None
    when the input fits (the caller then works in memory)."""
    p = plan(inputs, extra=[by] if by else [], **s.roles())
    specs, chosen = s.choose(np.array([o.weight for o in p.objectives]), p.length is not None)
    n, limit = chunks_needed(p, s.memory_limit, estimators=len(specs))
    if n <= 1:
        return None
    if require_figures:
        raise UsageError(
            f"the HTML report needs the table in memory, and it would take about {n} times the memory limit "
            f"({human_size(limit)}); raise --memory-limit, or report on a --steps range"
        )
    resolved = resolve(specs, s.profile)
    scheme, conds = s.combination()
    with chunked_input(p, n, progress=s.progress) as chunked:
        report = analyze_chunked(chunked, resolved, scheme, conds, compare=compare, by=by, device=s.compute_device,
                                 rule=s.budget_rule)
    streamed = f"streamed in {n} group-complete chunks ({chunked.rows} rows; memory limit {human_size(limit)})"
    return annotate(Analysis(report), describe_batch(p.batch), s.profile_notes() + p.notes, p.warnings + chosen, [streamed])


def _ray_engine(s: Settings) -> None:
    """Refuse what ``--engine ray`` does not do."""
    if s.engine != "ray":
        raise UsageError(f"--engine must be local or ray, not '{s.engine}'")
    if s.source:
        raise UsageError("--engine ray reads plain tables; a --from dump is read whole on this machine (drop --engine ray)")


def _advantages_ray(inputs, s: Settings, resolved, output, float32: bool) -> tuple[int, list[str], list[str], list[str]]:
    """``advantages`` on a Ray cluster: a folder of Parquet files at ``output``."""
    _ray_engine(s)
    if Path(str(output)).suffix.lower() in READERS:
        raise UsageError(f"-o/--output '{output}': --engine ray writes a folder of Parquet files (one or more per "
                         "partition); give a folder path without an extension")
    from .engine.ray_engine import advantages_ray

    p = plan(inputs, **s.roles())
    refuse_inputs([("-o/--output", output)], p.files)
    if any(Path(f).resolve().is_relative_to(Path(str(output)).resolve()) for f in p.files):
        raise UsageError(f"-o/--output '{output}' holds input files; write the advantages elsewhere")
    rows, n = advantages_ray(p, resolved, *s.combination(), str(output),
                             float32=float32, address=s.ray_address)
    notes = s.profile_notes() + p.notes + [f"worked through on Ray in {n} group-complete partitions; rows in partition order"]
    return rows, [f"adv:{r.label}" for r in resolved], notes, list(p.warnings)


def _analyze_ray(inputs, s: Settings, by: str | None, compare: bool, require_figures: bool) -> Analysis:
    """The analysis of the inputs worked through on a Ray cluster (``--engine ray``)."""
    _ray_engine(s)
    if require_figures:
        raise UsageError("the HTML report needs the table in memory on this machine; drop --engine ray")
    from .engine.ray_engine import analyze_ray

    p = plan(inputs, extra=[by] if by else [], **s.roles())
    specs, chosen = s.choose(np.array([o.weight for o in p.objectives]), p.length is not None)
    resolved = resolve(specs, s.profile)
    scheme, conds = s.combination()
    report, n = analyze_ray(p, resolved, scheme, conds, compare=compare, by=by, rule=s.budget_rule,
                            address=s.ray_address)
    said = f"worked through on Ray in {n} group-complete partitions"
    return annotate(Analysis(report), describe_batch(p.batch), s.profile_notes() + p.notes, p.warnings + chosen, [said])


def flip_rows(analysis: Analysis, a: str, b: str, limit: int = 20, width: int = 60) -> list[dict[str, Any]]:
    """The rows whose advantage sign differs between estimators ``a`` and ``b``, most telling
    first, with the group key, the rewards and any text columns (truncated)."""
    rows = analysis.flips(a, b, limit)
    batch = analysis.batch
    keys, texts = picked_rows(analysis.frame, [r for r, _, _ in rows], analysis.group)
    out: list[dict[str, Any]] = []
    for i, (row, va, vb) in enumerate(rows):
        entry: dict[str, Any] = {"row": row}
        if keys is not None:
            entry["group"] = keys[i]
        elif "prompt" in texts:  # a group mocli formed (TRL's runs of one prompt): its prompt
            entry["group"] = _clip(texts["prompt"][i], width)
        entry[a] = va
        entry[b] = vb
        entry["rewards"] = {
            name: (None if np.isnan(v) else float(v)) for name, v in zip(batch.names, batch.rewards[row])
        }
        for col, values in texts.items():
            if values[i] is not None:
                entry[col] = _clip(values[i], width)
        out.append(entry)
    return out


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


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
    column (:class:`mocli.diagnostics.verify.Verification`). With ``--from`` the dump's own advantage
    column is the default."""
    s, inputs = _begin(inputs, settings, options)
    spec = (s.estimators or ["grpo"])
    if len(spec) > 1:
        raise UsageError("verify takes one estimator (-e SPEC): the one the trainer used")
    resolve(spec, s.profile)
    if s.source:  # a framework dump: read whole, its own advantage column by default
        loaded = s.load(inputs, all_columns=True)
        logged = logged or loaded.logged
        if logged is None:
            raise UsageError(f"the {s.source} dump logs no advantage column; pass --logged COL")
        if logged not in loaded.frame.columns:
            s.load(inputs, extra=[logged])  # raises the usual missing-column error
    else:
        if logged is None:
            raise UsageError("--logged COL is required: the column holding the advantages the trainer used")
        loaded = s.load(inputs, extra=[logged])
    values = numeric_column(loaded.frame, logged, "--logged")
    v = verify_rollouts(
        loaded.rollouts, values, estimator=spec[0], profile=s.profile, scheme=s.scheme, conditions=s.when,
        gates=s.gate, tol=tol, group_keys=group_names(loaded.frame, loaded.group), top=top, device=s.compute_device,
    )
    v.params["batch"] = loaded.batch_label
    v.notes = s.profile_notes() + loaded.notes
    v.warnings = loaded.warnings
    return v


def sweep(
    inputs: Sequence[str | os.PathLike] | Rollouts,
    settings: Settings | None = None,
    *,
    grid: Mapping[str, Sequence[float]] | Sequence[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    **options: Any,
) -> Sweep:
    """Evaluate candidate weightings of the objectives under each estimator (default
    ``grpo`` and ``gdpo``) and mark the Pareto-optimal ones (:class:`~mocli.diagnostics.sweep.Sweep`).

        >>> result = mocli.sweep(["rollouts.parquet"], grid={"correct_reward": [1, 2, 4]})
        >>> result.best.weights, result.best.metrics["sign_flip.max"]

    ``grid``: weights per objective (``{"name": [w, ...]}`` or ``--grid`` strings
    ``"name=w1,w2"``); objectives without one keep their weight; none: 0.5, 1 and 2 times
    each weighted objective's weight. ``samples``: that many random weightings instead,
    log-uniform between 0.25 and 4 times the weights (``seed``). ``metrics``: report paths
    relative to the estimator, all minimised (default ``sign_flip.max``,
    ``collapse.masked_signal_group_rate``, ``influence.gap``). The current weights are
    always a candidate. The table is held in memory."""
    s, inputs = _begin(inputs, settings, options)
    resolve(s.estimators or ["grpo", "gdpo"], s.profile)  # fail on a bad spec before reading anything
    paths = list(metrics or DEFAULT_METRICS)
    if samples is not None and grid:
        raise UsageError("give either --grid or --samples, not both")
    if isinstance(inputs, Rollouts):
        rollouts, notes, warnings = inputs, [], []
    else:
        loaded = s.load(inputs)
        rollouts, notes, warnings = loaded.rollouts, s.profile_notes() + loaded.notes, loaded.warnings
    specs, chosen = s.choose(None, rollouts.length is not None, names=["grpo", "gdpo"])
    resolved = resolve(specs, s.profile)
    sweep_mod.sections_for(paths, rollouts.length is not None)  # a bad --metric fails before any work
    names = list(rollouts.names)
    if grid is not None and not isinstance(grid, Mapping):
        grid = sweep_mod.parse_grid(list(grid), names)
    elif grid:
        grid = sweep_mod.parse_grid([f"{k}={','.join(repr(float(w)) for w in ws)}" for k, ws in grid.items()], names)
    cands = sweep_mod.weightings(names, rollouts.weights, grid or None, samples, seed)
    out = sweep_mod.sweep_rollouts(
        rollouts, resolved, *s.combination(), candidates=cands,
        paths=paths, device=s.compute_device, progress=s.progress,
    )
    out.notes = notes + out.notes
    out.warnings = list(warnings) + chosen
    return out


def inspect(inputs: Sequence[str | os.PathLike], settings: Settings | None = None, **options: Any) -> dict[str, Any]:
    """Columns and their types, the detected framework, group rule, objectives, trained
    scalar, training batch and group sizes (per batch), and the profile that applies. On
    several files that do not share one layout and cannot be read as one table (and no
    ``--from``), each file is described on its own under ``layouts``."""
    s, inputs = _begin(inputs, settings, options)
    try:
        return _inspect_one(inputs, s)
    except MocliError:
        if s.source:
            raise
        paths = expand_inputs(inputs)
        if len(paths) < 2 or len({tuple(schema_of([p])) for p in paths}) < 2:
            raise
    layouts = []  # the files do not read as one table: describe each
    for p in paths:
        try:
            layouts.append(_inspect_one([p], s))
        except MocliError as exc:
            layouts.append({"files": [str(p)], "error": str(exc)})
    return {"files": [str(p) for p in paths], "layouts": layouts,
            "notes": [f"the {len(paths)} files do not share one layout: each is described on its own"]}


def _inspect_one(inputs, s: Settings) -> dict[str, Any]:
    loaded = s.load(inputs, all_columns=bool(s.source))
    ro = loaded.rollouts
    frame = loaded.public_frame()
    schema = dict(frame.schema) if s.source else schema_of(loaded.files)
    roles = {loaded.group: "group", loaded.length: "length", loaded.baseline: "baseline", loaded.step: "step",
             loaded.logged: "logged advantage", loaded.scalar: "trained scalar"}
    if loaded.batch:
        roles[loaded.batch] = "batch" if loaded.batch != loaded.step else "step, batch"
    roles.update({name: "group" for name in loaded.group_columns})
    roles.update({name: "reward" for name in ro.names})
    sizes = np.diff(ro.offsets)
    scorable = ~np.all(np.isnan(ro.rewards), axis=1)
    _, _, counts, _ = CPU.seg_mean_var(np.zeros(ro.n), scorable, ro.order, ro.offsets, 0)
    by_batch = {
        str(key): {"groups": int(sz.size), "min": int(sz.min()), "median": float(np.median(sz)), "max": int(sz.max())}
        for key, sz in (group_sizes_by_batch(ro, frame, loaded.batch).items() if loaded.batch else [])
    }
    if loaded.scalar and not s.rewards:
        trained = f"'{loaded.scalar}' as logged"
    else:
        trained = f"{s.scheme} of the objectives"
    return {
        "files": [str(p) for p in loaded.files],
        "source": loaded.source,
        "profile": s.profile,
        "notes": s.profile_notes() + loaded.notes,
        "warnings": loaded.warnings,
        "rows": ro.n,
        "columns": {name: {"type": str(dtype), "role": roles.get(name)} for name, dtype in schema.items()},
        "group": loaded.group if not loaded.group.startswith("__mocli_") else None,
        "group_rule": loaded.group_rule or (
            f"columns {', '.join(repr(c) for c in loaded.group_columns)} (their tuple)" if len(loaded.group_columns) > 1
            else f"column '{loaded.group}'") + (f" within each {loaded.batch_label}" if loaded.batch else ""),
        "groups": ro.n_groups,
        "group_size": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "singleton_groups": int((counts == 1).sum()),
        "batch": loaded.batch_label,
        "group_size_by_batch": by_batch,
        "trained_scalar": trained,
        "logged": loaded.logged,
        "rewards": {
            name: {"weight": float(w), "direction": "min" if m else "max", "missing": int(np.isnan(ro.rewards[:, k]).sum())}
            for k, (name, w, m) in enumerate(zip(ro.names, ro.weights, ro.minimize))
        },
    }
