"""Readers for the rollout dumps that training frameworks write (``--from``).

Each reader turns a framework's files into one DataFrame with known roles: a group key
column (``__group``), the objective columns, a ``step`` column and, where the framework
logs one, the sequence-level advantage it trained on (``advantage``). :mod:`mocli.io`
takes it from there. Formats are described in docs/inputs.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import polars as pl

from .errors import InputError, UsageError
from .registry import suggest

SOURCES = ("trl", "verl", "nemo_rl", "auto")
GROUP = "__group"
_DIGITS = re.compile(r"(\d+)")


@dataclass
class Dump:
    frame: pl.DataFrame
    source: str
    objectives: list[str]
    group: str = GROUP
    step: str | None = "step"
    logged: str | None = None
    notes: list[str] = field(default_factory=list)


def _step_from_name(path: Path) -> int | None:
    nums = _DIGITS.findall(path.stem)
    return int(nums[-1]) if nums else None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_ndjson(path, infer_schema_length=None)
    except Exception as exc:
        raise InputError(f"cannot read '{path}': {_first_line(exc)}") from None


def _numeric(df: pl.DataFrame, exclude: Sequence[str]) -> list[str]:
    return [c for c, t in df.schema.items() if c not in exclude and (t.is_numeric() or t == pl.Boolean)]


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if not frames:
        raise InputError("no rows in the dump")
    return pl.concat(frames, how="diagonal_relaxed")


# ---------------------------------------------------------------------------------------
# TRL: output_dir/completions/completions_NNNNN.parquet
# ---------------------------------------------------------------------------------------
def read_trl(paths: Sequence[Path]) -> Dump:
    frames = []
    for n, path in enumerate(paths):
        df = _read(path)
        if "prompt" not in df.columns:
            raise InputError(f"'{path}' has no 'prompt' column; a TRL completions file has step, prompt, completion, one column per reward function and advantage")
        if "step" not in df.columns:
            df = df.with_columns(pl.lit(_step_from_name(path) or 0).alias("step"))
        prompt = pl.col("prompt").cast(pl.String)
        # a group is a run of consecutive rows with the same prompt, within one file and step
        run = ((prompt != prompt.shift(1)) | (pl.col("step") != pl.col("step").shift(1))).fill_null(True).cum_sum()
        df = df.with_columns((pl.lit(f"{n}:") + pl.col("step").cast(pl.String) + pl.lit(":") + run.cast(pl.String)).alias(GROUP))
        frames.append(df)
    df = _concat(frames)
    objectives = _numeric(df, ["step", "advantage", GROUP])
    if not objectives:
        raise InputError("the TRL completions files hold no reward columns (numeric columns besides step and advantage)")
    return Dump(df, "trl", objectives, logged="advantage" if "advantage" in df.columns else None)


# ---------------------------------------------------------------------------------------
# verl: rollout_data_dir/<step>.jsonl
# ---------------------------------------------------------------------------------------
VERL_FIXED = ("input", "output", "gts", "score", "step", "uid", "request_id")


def read_verl(paths: Sequence[Path]) -> Dump:
    frames = []
    for path in paths:
        df = _read(path)
        if "step" not in df.columns:
            df = df.with_columns(pl.lit(_step_from_name(path) or 0).alias("step"))
        frames.append(df)
    df = _concat(frames)
    if "uid" in df.columns:
        df = df.with_columns(pl.col("uid").cast(pl.String).alias(GROUP))
        notes = ["groups: uid"]
    elif "input" in df.columns:
        df = df.with_columns((pl.col("step").cast(pl.String) + pl.lit("\x1f") + pl.col("input").cast(pl.String)).alias(GROUP))
        notes = ["groups: identical input within a step (no uid field)"]
    else:
        raise InputError("the verl dump has neither 'uid' nor 'input'; cannot form groups")
    components = _numeric(df, [*VERL_FIXED, GROUP])
    objectives = components or (["score"] if "score" in df.columns else [])
    if not objectives:
        raise InputError("the verl dump has no 'score' and no numeric reward components")
    if components:
        notes.append("objectives: the reward components; 'score' is their logged total")
    logged = "advantage" if "advantage" in df.columns else None
    return Dump(df, "verl", objectives, logged=logged, notes=notes)


# ---------------------------------------------------------------------------------------
# NeMo-RL: train_data_step<N>.jsonl
# ---------------------------------------------------------------------------------------
def _sequence_advantage(tokens, mask) -> float | None:
    """The per-sequence advantage from NeMo-RL's token-level list: the value at the first
    trained token (``token_loss_mask``), else the last non-zero token, else 0."""
    if tokens is None:
        return None
    if not isinstance(tokens, list):
        return float(tokens)
    if mask is not None and isinstance(mask, list):
        for v, m in zip(tokens, mask):
            if m:
                return float(v)
    for v in reversed(tokens):
        if v:
            return float(v)
    return 0.0


def read_nemo_rl(paths: Sequence[Path]) -> Dump:
    rows = []
    for path in paths:
        step = _step_from_name(path) or 0
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read '{path}': {exc}") from None
        for ln, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"'{path}' line {ln} is not JSON: {exc.msg}") from None
            if "rewards" not in rec:
                raise InputError(f"'{path}' line {ln} has no 'rewards' field (NeMo-RL train_data_step files log the total reward as 'rewards')")
            if "prompt" in rec:
                prompt = rec["prompt"]
            elif isinstance(rec.get("content"), list) and len(rec["content"]) > 1:
                prompt = rec["content"][:-1]
            else:
                prompt = rec.get("content")
            reward = rec["rewards"]
            row = {
                "step": int(rec.get("step", step)),
                "prompt": json.dumps(prompt, ensure_ascii=False) if not isinstance(prompt, str) else prompt,
                "rewards": float(reward[0] if isinstance(reward, list) else reward) if reward is not None else None,
                "advantage": _sequence_advantage(rec.get("advantages"), rec.get("token_loss_mask")),
            }
            if isinstance(rec.get("input_lengths"), (int, float)):
                row["input_lengths"] = rec["input_lengths"]
            rows.append(row)
    if not rows:
        raise InputError("no rows in the NeMo-RL dump")
    df = pl.DataFrame(rows, infer_schema_length=None)
    df = df.with_columns((pl.col("step").cast(pl.String) + pl.lit("\x1f") + pl.col("prompt")).alias(GROUP))
    logged = "advantage" if df["advantage"].null_count() < df.height else None
    return Dump(df, "nemo_rl", ["rewards"], logged=logged, notes=["groups: identical prompt within a step"])


# ---------------------------------------------------------------------------------------
# finding the files and detecting the framework
# ---------------------------------------------------------------------------------------
def _files(inputs: Sequence[str], patterns: Sequence[str]) -> list[Path]:
    from .io import expand_inputs

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found: list[Path] = []
            for pattern in patterns:
                found = sorted(p.rglob(pattern), key=lambda f: (_step_from_name(f) or 0, str(f)))
                if found:
                    break
            if not found:
                raise InputError(f"directory '{item}' holds no {' or '.join(patterns)} files")
            out.extend(found)
        else:
            out.extend(expand_inputs([item]))
    return out


PATTERNS = {
    "trl": ("completions_*.parquet", "*.parquet"),
    "verl": ("*.jsonl",),
    "nemo_rl": ("train_data_step*.jsonl", "*.jsonl"),
}
READERS = {"trl": read_trl, "verl": read_verl, "nemo_rl": read_nemo_rl}


def detect(inputs: Sequence[str]) -> str:
    """Which framework wrote these files (``--from auto``)."""
    for item in inputs:
        p = Path(item)
        candidates = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in candidates:
            if not f.is_file():
                continue
            name = f.name
            if name.startswith("completions_") and f.suffix == ".parquet":
                return "trl"
            if name.startswith("train_data_step") and f.suffix == ".jsonl":
                return "nemo_rl"
            if f.suffix == ".parquet":
                cols = pl.scan_parquet(f).collect_schema().names()
                if {"prompt", "completion"} <= set(cols):
                    return "trl"
            if f.suffix in (".jsonl", ".ndjson"):
                try:
                    with open(f, encoding="utf-8") as fh:
                        rec = json.loads(fh.readline())
                except (OSError, ValueError):
                    continue
                if {"input", "output", "score"} <= set(rec):
                    return "verl"
                if "rewards" in rec and ("content" in rec or "advantages" in rec):
                    return "nemo_rl"
    raise InputError(
        "cannot tell which framework wrote these files (looked for TRL completions_*.parquet, "
        "verl <step>.jsonl with input/output/score, NeMo-RL train_data_step*.jsonl); pass --from trl|verl|nemo_rl"
    )


def read(source: str, inputs: Sequence[str]) -> Dump:
    if source not in SOURCES:
        raise UsageError(f"--from '{source}' is not one of {', '.join(SOURCES)}{suggest(source, list(SOURCES))}")
    if source == "auto":
        source = detect(inputs)
    return READERS[source](_files(inputs, PATTERNS[source]))
