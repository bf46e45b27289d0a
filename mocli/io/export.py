"""``--export KIND:DEST``: every metric of an analyze report, the whole table's and each
``--by`` slice's, written to a tracker as well.

* ``tensorboard:DIR``: scalars through TensorBoard's own writer (``tensorboard.summary.Writer``);
* ``mlflow:URI``: metrics of one MLflow run under that tracking URI (``sqlite:///mlflow.db``,
  ``http://host:5000``, ...), experiment ``mocli``;
* ``jsonl:FILE``: one JSON line per slice (and one for the whole table).

Names: ``mocli/<estimator>/<metric path>`` for an estimator's metric (the path as ``check``
reads it, ``sign_flip.max``), ``mocli/<path>`` for the others (``conflict.mixed_sign_rate``).
A slice whose value is a whole number is logged at that step (a training step); the whole
table at step 0 when there are no slices, else under ``mocli/whole_table/...``; a slice
whose value is not a whole number under ``mocli/<column>=<value>/...`` at step 0.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import UsageError
from .outputs import check_writable, write_text

KINDS = ("tensorboard", "mlflow", "jsonl")
SKIP = ("params",)  # an estimator's settings, not metrics


@dataclass(frozen=True)
class Target:
    kind: str
    dest: str
    text: str

    @classmethod
    def parse(cls, text: str) -> "Target":
        kind, sep, dest = str(text).partition(":")
        if not sep or kind not in KINDS or not dest:
            raise UsageError(f"--export '{text}' is not KIND:DEST with KIND one of {', '.join(KINDS)} "
                             "(tensorboard:DIR, mlflow:URI, jsonl:FILE)")
        if kind == "jsonl":
            check_writable(dest, "--export jsonl")
        if kind == "tensorboard" and Path(dest).exists() and not Path(dest).is_dir():
            raise UsageError(f"--export '{text}': '{dest}' is a file; tensorboard needs a directory")
        return cls(kind, dest, text)


def targets(texts: Sequence[str] | None) -> list[Target]:
    """The ``--export`` values, checked before any work."""
    return [Target.parse(t) for t in texts or []]


def metrics_of(doc: dict[str, Any]) -> dict[str, float]:
    """Every number of one report (not its slices), by name."""
    out: dict[str, float] = {}
    for root in ("input", "objectives", "conflict", "budget", "agreement"):
        if isinstance(doc.get(root), dict):
            for path, value in _leaves(doc[root], root):
                out[f"mocli/{path}"] = value
    for label, entry in doc.get("estimators", {}).items():
        for key, node in entry.items():
            if key in SKIP:
                continue
            for path, value in _leaves(node, key):
                out[f"mocli/{label}/{path}"] = value
    return out


def _leaves(node: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node):
        yield path, float(node)


def points(doc: dict[str, Any]) -> list[tuple[str | None, int, dict[str, float]]]:
    """``(slice value or None for the whole table, step, metrics)``, the names as the
    module says."""
    by = doc.get("by") or {}
    column = doc.get("by_column")
    out: list[tuple[str | None, int, dict[str, float]]] = []
    whole = metrics_of(doc)
    if by:
        whole = {name.replace("mocli/", "mocli/whole_table/", 1): v for name, v in whole.items()}
    out.append((None, 0, whole))
    for value, sub in by.items():
        step = _step(value)
        named = metrics_of(sub)
        if step is None:
            named = {name.replace("mocli/", f"mocli/{column}={value}/", 1): v for name, v in named.items()}
            step = 0
        out.append((value, step, named))
    return out


def _step(value: str) -> int | None:
    try:
        x = float(value)
    except ValueError:
        return None
    return int(x) if math.isfinite(x) and x == int(x) else None


def export(doc: dict[str, Any], chosen: Sequence[Target], run_name: str) -> list[str]:
    """Write ``doc`` to every target; what was written, one line each (for stderr)."""
    said = []
    pts = points(doc)
    count = sum(len(m) for _, _, m in pts)
    for t in chosen:
        if t.kind == "tensorboard":
            _tensorboard(pts, t.dest)
        elif t.kind == "mlflow":
            run_id = _mlflow(pts, t.dest, run_name, doc)
            said.append(f"logged {count} metrics to MLflow run {run_id} ({t.dest}, experiment mocli)")
            continue
        else:
            lines = [json.dumps({"slice": value, "step": step if value is not None else None, "by": doc.get("by_column"),
                                 "metrics": m}, allow_nan=False) for value, step, m in pts]
            write_text(t.dest, "\n".join(lines) + "\n")
        said.append(f"wrote {count} metrics to {t.kind} {t.dest}")
    return said


def _tensorboard(pts, folder: str) -> None:
    try:
        from tensorboard.summary import Writer
    except ImportError:
        raise UsageError("--export tensorboard needs TensorBoard: pip install tensorboard") from None
    os.makedirs(folder, exist_ok=True)
    writer = Writer(folder)
    try:
        for _, step, named in pts:
            for name, value in named.items():
                writer.add_scalar(name, value, step)
    finally:
        writer.close()


MLFLOW_KEY = re.compile(r"[^\w\-./ :]")  # what MLflow accepts in a metric name


def _mlflow(pts, uri: str, run_name: str, doc: dict[str, Any]) -> str:
    try:
        import mlflow
    except ImportError:
        raise UsageError("--export mlflow needs MLflow: pip install mlflow-skinny") from None
    for name in ("mlflow", "alembic"):  # their INFO lines would mix with mocli's stderr
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    try:
        exp = client.get_experiment_by_name("mocli")
        exp_id = exp.experiment_id if exp is not None else client.create_experiment("mocli")
        run = client.create_run(exp_id, run_name=run_name)
    except Exception as exc:
        raise UsageError(f"--export mlflow:{uri}: {' '.join(str(exc).split())[:300]}") from None
    rid = run.info.run_id
    inp = doc.get("input", {})
    client.log_param(rid, "objectives", ",".join(inp.get("objectives", [])))
    client.log_param(rid, "weights", ",".join(f"{w:g}" for w in inp.get("weights", [])))
    client.log_param(rid, "estimators", ",".join(doc.get("estimators", {})))
    from mlflow.entities import Metric

    stamp = int(__import__("time").time() * 1000)
    batch = [Metric(MLFLOW_KEY.sub("_", name), value, stamp, step) for _, step, named in pts for name, value in named.items()]
    for i in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics a call
        client.log_batch(rid, metrics=batch[i:i + 1000])
    client.set_terminated(rid)
    return rid
