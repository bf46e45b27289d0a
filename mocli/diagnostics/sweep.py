"""``mocli sweep``: candidate weightings of the objectives, each evaluated with every
estimator on the same loaded rollouts, and the Pareto-optimal ones (CLI.md ``sweep``).

The rollouts are laid out in group order once. The estimator-independent group statistics (the
:class:`~mocli.diagnostics.metrics.GroupView`) depend only on which objectives are weighted,
so they are built once per pattern of non-zero weights; each candidate then reruns the
combination, the estimators and only the report sections its metrics read, through the
same functions as ``mocli analyze``, so that a candidate's metrics equal the analyze report
of that weighting and estimator."""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.rollouts import Rollouts
from ..core.tally import finish
from ..engine.pipeline import Resolved, run_estimators
from ..engine.prepare import prepare
from ..errors import UsageError
from .. import __version__
from ..io.files import Progress, library_versions, silent
from ..io.outputs import check_interrupted
from ..kernels import CPU, Device
from ..params import finite
from ..registry import suggest
from ..schemes import Condition, Scheme
from . import ABSOLUTE_ROOTS, add_derived, lookup, metrics, missing_key

DEFAULT_METRICS = ("sign_flip.max", "collapse.masked_signal_group_rate", "influence.gap")
DEFAULT_FACTORS = (0.5, 1.0, 2.0)  # the default grid, times each weighted objective's weight
SAMPLE_RANGE = (0.25, 4.0)  # --samples: log-uniform factors of the weights
# tables with at least this many rows spread their candidates over the cores
PARALLEL_ROWS = 20_000


@dataclass(frozen=True)
class Candidate:
    """One weighting under one estimator, with its metrics (all minimised)."""

    estimator: str
    weights: dict[str, float]  # every objective, gridded or not
    metrics: dict[str, float | None]
    pareto: bool = False
    current: bool = False  # the weights the table was loaded with

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "weights": dict(self.weights), "metrics": dict(self.metrics),
                "pareto": self.pareto, "current": self.current}


@dataclass
class Sweep:
    """What :func:`mocli.sweep` returns. ``candidates``: Pareto-optimal ones first, each
    part ordered by the metrics in turn (null last); ``best``: the first of them (the least
    first metric, ties broken by the next); ``baseline``: the current weights under the
    first estimator, the setup a move to ``best`` is measured from."""

    candidates: list[Candidate]
    metrics: list[str]
    estimators: list[str]
    objectives: list[str]
    current: dict[str, float]
    rows: int = 0
    groups: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def pareto(self) -> list[Candidate]:
        return [c for c in self.candidates if c.pareto]

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def baseline(self) -> Candidate | None:
        first = self.estimators[0] if self.estimators else None
        return next((c for c in self.candidates if c.current and c.estimator == first), None)

    def change(self) -> str:
        """One sentence: what moving from the baseline to the best candidate changes."""
        best, base = self.best, self.baseline
        if best is None:
            return "no candidate was evaluated"
        if base is None:
            return f"the current weights are not among the candidates; the best by {self.metrics[0]} is {best.estimator} with {weights_text(best.weights)}"
        first = self.metrics[0]
        if best is base or (best.estimator == base.estimator and best.weights == base.weights):
            return (f"{base.estimator} with the current weights is already the best candidate by {first}; "
                    f"no weighting of these {len(self.candidates)} lowers it")
        if best.metrics[first] is None:
            return f"{first} is null for every candidate (no row where an objective and the advantage both take a side)"
        if base.metrics[first] is not None and best.metrics[first] >= base.metrics[first]:
            return (f"no candidate lowers {first} below {_show(base.metrics[first])} ({base.estimator} with the current "
                    "weights); the Pareto set trades the other metrics against it")
        moved = ", ".join(f"{m} {_show(base.metrics[m])} -> {_show(best.metrics[m])}" for m in self.metrics)
        to = "the same weights" if best.weights == base.weights else weights_text(best.weights)
        return (f"moving from {base.estimator} with the current weights ({weights_text(base.weights)}) to "
                f"{best.estimator} with {to} changes {moved}")

    def _repr_html_(self) -> str:
        """The sweep's chart and what changes, as one element of a notebook's output."""
        from ..render.html import render_sweep_html

        return render_sweep_html(self.to_dict(), notebook=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": {"rows": self.rows, "groups": self.groups, "objectives": list(self.objectives),
                      "weights": [self.current[k] for k in self.objectives], "notes": list(self.notes),
                      "warnings": list(self.warnings), "mocli_version": __version__, "versions": library_versions()},
            "sweep": {
                "metrics": list(self.metrics),
                "estimators": list(self.estimators),
                "current": dict(self.current),
                "best": self.best.to_dict() if self.best else None,
                "change": self.change(),
                "candidates": [c.to_dict() for c in self.candidates],
            },
        }


def _show(v: float | None) -> str:
    return "null" if v is None else f"{v:.4g}"


def weights_text(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in weights.items())


# ---------------------------------------------------------------------------------------
# the candidates
# ---------------------------------------------------------------------------------------
def parse_grid(entries: Sequence[str], names: Sequence[str]) -> dict[str, list[float]]:
    """``--grid NAME=W1,W2,...`` entries as ``{name: [weights]}``."""
    out: dict[str, list[float]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise UsageError(f"--grid '{entry}' is not NAME=W1,W2,... (e.g. correct_reward=0.5,1,2)")
        if name not in names:
            raise UsageError(f"--grid '{entry}': no objective '{name}'{suggest(name, list(names))}; "
                             f"the objectives are {', '.join(names)}")
        if name in out:
            raise UsageError(f"--grid names '{name}' twice; give all of its weights in one --grid")
        ws = [finite(v.strip(), f"--grid '{entry}'") for v in values.split(",")]
        out[name] = list(dict.fromkeys(ws))
    return out


def weightings(names: Sequence[str], weights: np.ndarray, grid: Mapping[str, Sequence[float]] | None = None,
               samples: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """The candidate weight vectors: the current weights first, then the Cartesian product
    of ``grid`` (objectives without one keep their weight; no grid: 0.5, 1 and 2 times each
    weighted objective's weight), or ``samples`` draws log-uniform between 0.25 and 4 times
    the weights (``seed``). Duplicates and all-zero vectors are dropped."""
    weights = np.asarray(weights, dtype=np.float64)
    out = [weights.copy()]
    if samples is not None:
        if grid:
            raise UsageError("give either --grid or --samples, not both")
        if samples < 1:
            raise UsageError(f"--samples must be at least 1, not {samples}")
        rng = np.random.default_rng(seed)
        lo, hi = math.log(SAMPLE_RANGE[0]), math.log(SAMPLE_RANGE[1])
        factors = np.exp(rng.uniform(lo, hi, size=(samples, weights.shape[0])))
        out += [weights * f for f in factors]
    else:
        axes = []
        for k, name in enumerate(names):
            if grid and name in grid:
                axes.append([float(w) for w in grid[name]])
            elif not grid and weights[k] != 0:
                axes.append([float(weights[k] * f) for f in DEFAULT_FACTORS])
            else:
                axes.append([float(weights[k])])
        out += [np.array(combo) for combo in itertools.product(*axes)]
    seen: set[tuple[float, ...]] = set()
    unique = []
    for w in out:
        key = tuple(float(x) for x in w)
        if key in seen or not np.any(w != 0):
            continue
        seen.add(key)
        unique.append(w)
    return unique


# ---------------------------------------------------------------------------------------
# the metrics
# ---------------------------------------------------------------------------------------
def sections_for(paths: Sequence[str], has_length: bool) -> set[str]:
    """The report sections (:data:`metrics.SECTIONS`) that the metric paths read; a path
    outside them is refused with what is accepted."""
    out: set[str] = set()
    for path in paths:
        root, _, rest = path.partition(".")
        if root in ABSOLUTE_ROOTS:
            raise UsageError(f"--metric '{path}': sweep metrics are paths relative to the estimator (as in check), "
                             "such as sign_flip.max; this one is the same for every candidate")
        if root not in metrics.SECTIONS or not rest:
            raise UsageError(f"--metric '{path}' is not a path in an estimator's report{suggest(root, metrics.SECTIONS)}; "
                             f"it starts with one of {', '.join(metrics.SECTIONS)} (e.g. sign_flip.max)")
        if root in ("length", "aggregation") and not has_length:
            raise UsageError(f"--metric '{path}' needs the response length: give --length COLUMN")
        out.add("collapse:groups" if root == "collapse" and rest in metrics.GROUP_COLLAPSE else root)
    return out


def metric_values(entry: dict[str, Any], paths: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for path in paths:
        try:
            value = lookup(entry, path)
        except KeyError as exc:
            raise UsageError(f"--metric '{path}': {missing_key(entry, str(exc.args[0]))}") from None
        if isinstance(value, (dict, list, str, bool)):
            raise UsageError(f"--metric '{path}' is not a number; pick one of its keys")
        out[path] = None if value is None else float(value)
    return out


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (candidates x metrics, minimised; NaN for null, counted as worse
    than any number) that no other row dominates: no other is at most as large in every
    metric and smaller in one."""
    v = np.where(np.isnan(values), np.inf, values)
    keep = np.ones(v.shape[0], dtype=bool)
    for i in range(v.shape[0]):
        le = (v <= v[i]).all(axis=1)
        lt = (v < v[i]).any(axis=1)
        keep[i] = not (le & lt).any()
    return keep


def _order_key(c: Candidate, paths: Sequence[str]) -> tuple:
    return (not c.pareto, *[(c.metrics[p] is None, c.metrics[p] or 0.0) for p in paths])


# ---------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------
def sweep_rollouts(
    rollouts: Rollouts,
    resolved: Sequence[Resolved],
    scheme: Scheme,
    conds: Sequence[Condition] = (),
    *,
    candidates: Sequence[np.ndarray] | None = None,
    paths: Sequence[str] = DEFAULT_METRICS,
    device: Device = CPU,
    progress: Progress = silent,
    workers: int | None = None,
) -> Sweep:
    """Every candidate weighting (default: :func:`weightings` of the table's weights) under
    every estimator of ``resolved``; ``paths``: the metrics (estimator-relative report
    paths, minimised). A table that carries its trainer's logged scalar (verl's
    ``score``) is combined from its objectives here: the logged scalar holds only the
    weights it was trained with."""
    names = list(rollouts.names)
    paths = list(dict.fromkeys(paths))
    if not paths:
        raise UsageError("give at least one --metric")
    sections = sections_for(paths, rollouts.length is not None)
    notes: list[str] = []
    if rollouts.scalar is not None:
        rollouts = replace(rollouts, scalar=None)
        notes.append("every candidate combines the objectives with its own weights (weighted sum); the logged "
                     "'score' holds only the weights it was trained with")
    # laid out in group order once, as analyze lays out each table (so the sums run in the
    # same order and the metrics are the same to the last bit)
    rollouts, _ = rollouts.grouped()
    cands = list(candidates) if candidates is not None else weightings(names, rollouts.weights)
    current = np.asarray(rollouts.weights, dtype=np.float64)
    labels = [r.label for r in resolved]

    views: dict[tuple, Any] = {}
    lock = threading.Lock()

    def view_for(w: np.ndarray, policy: str):
        key = (policy, tuple(bool(x) for x in (w != 0)))
        with lock:
            if key not in views:
                batch = prepare(replace(rollouts, weights=w), scheme, conds, policy)
                views[key] = metrics.GroupView.of(batch, device)
            return views[key]

    def evaluate(w: np.ndarray) -> list[Candidate]:
        check_interrupted()
        ro = replace(rollouts, weights=w)
        advs, batches = run_estimators(ro, resolved, scheme, conds, device=device)
        named = dict(zip(names, (float(x) for x in w)))
        out = []
        for r in resolved:
            policy = r.estimator.nan_policy
            tree = metrics.estimator_metrics(advs[r.label], batches[policy], view_for(w, policy), ro.length, ro.batch,
                                             sections)
            entry = finish(tree)
            add_derived(entry, named)
            out.append(Candidate(r.label, named, metric_values(entry, paths), current=bool(np.array_equal(w, current))))
        return out

    # the first candidate in this thread: a bad --metric path fails before any other work
    results: list[list[Candidate]] = [evaluate(cands[0])]
    progress("evaluating candidates", 1, len(cands))
    threads = workers if workers is not None else _workers(rollouts.n)
    if threads > 1 and len(cands) > 2:
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="mocli-sweep") as pool:
            for done, res in enumerate(pool.map(evaluate, cands[1:]), start=2):
                results.append(res)
                progress("evaluating candidates", done, len(cands))
    else:
        for done, w in enumerate(cands[1:], start=2):
            results.append(evaluate(w))
            progress("evaluating candidates", done, len(cands))

    flat = [c for res in results for c in res]
    values = np.array([[np.nan if c.metrics[p] is None else c.metrics[p] for p in paths] for c in flat], dtype=np.float64)
    mask = pareto_mask(values.reshape(len(flat), len(paths)))
    flat = [replace(c, pareto=bool(m)) for c, m in zip(flat, mask)]
    ranked = sorted(range(len(flat)), key=lambda i: (_order_key(flat[i], paths), i))
    return Sweep([flat[i] for i in ranked], paths, labels, names, dict(zip(names, (float(x) for x in current))),
                 rows=rollouts.n, groups=rollouts.n_groups, notes=notes)


def _workers(rows: int) -> int:
    """Threads for the candidates: one per core on a large table (the kernels release the
    GIL and NumPy does on large arrays); one on a small one, where threads only add
    overhead."""
    if rows < PARALLEL_ROWS:
        return 1
    from numba import config as numba_config

    return max(1, int(numba_config.NUMBA_NUM_THREADS))
