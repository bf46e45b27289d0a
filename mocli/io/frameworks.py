"""Readers for the rollout dumps that training frameworks write (``--from``).

Each reader turns a framework's files, exactly as its own code writes them, into one
DataFrame with known roles (:class:`Dump`): the group key, the training batch (one
generation batch: a TRL file, a verl or NeMo-RL step), the objectives and their weights,
the scalar the trainer trained on where it logs one (verl's ``score``), and the
sequence-level advantage it logged. Whatever had to be inferred is said in ``notes``;
whatever may make the numbers differ from the trainer's is said in ``warnings``.
:mod:`mocli.io` takes it from there. The layouts are described in docs/inputs.md.
"""

from __future__ import annotations

import glob as globmod
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from ..errors import InputError, UsageError, first_line
from ..registry import suggest
from .readers import read_ndjson_lines

SOURCES = ("trl", "verl", "nemo_rl", "auto")
# columns mocli adds to a dump's frame; never written, shown or analysed
INTERNAL = "__mocli_"
GROUP = f"{INTERNAL}group"
FILE = f"{INTERNAL}file"
_DIGITS = re.compile(r"(\d+)")


@dataclass
class Dump:
    frame: pl.DataFrame
    source: str
    objectives: list[str]
    group: str
    group_rule: str
    batch: str  # the column whose values are the training batches
    batch_rule: str  # what a batch is, in words ("step", "file")
    files: list[Path] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    step: str | None = "step"
    logged: str | None = None
    scalar: str | None = None  # the logged scalar that trains (verl's score)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reward_specs(self) -> list[str]:
        """The objectives as ``-r`` would name them (``NAME=WEIGHT``)."""
        return [f"{name}={self.weights.get(name, 1.0)!r}" for name in self.objectives]


def public_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if not c.startswith(INTERNAL)]


def _step_from_name(path: Path) -> int | None:
    nums = _DIGITS.findall(path.stem)
    return int(nums[-1]) if nums else None


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_ndjson(path, infer_schema_length=None)
    except Exception as exc:
        if path.suffix.lower() == ".parquet":
            raise InputError(f"cannot read '{path}': {first_line(exc)}") from None
    # a byte-order mark, NaN tokens (json.dumps writes them for a NaN score), or a bad
    # line: read line by line, which names the line
    return read_ndjson_lines(path, constants=True)


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if not frames:
        raise InputError("no rows in the dump")
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except Exception as exc:
        raise InputError(f"the dump's files do not share one layout: {first_line(exc)}") from None


def _with_step(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    if "step" in df.columns:
        return df
    return df.with_columns(pl.lit(_step_from_name(path) or 0, dtype=pl.Int64).alias("step"))


def text_key(column: pl.Series) -> pl.Series:
    """A column as text that is equal exactly where the values are: strings as they are,
    a conversation (``list<struct<role, content>>``) as its messages in JSON, one a line."""
    dtype = column.dtype
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return column.list.eval(pl.element().struct.json_encode()).list.join("\n")
    if isinstance(dtype, pl.Struct):
        return column.struct.json_encode()
    try:
        return column.cast(pl.String)
    except Exception:
        return column.map_elements(lambda v: json.dumps(v, sort_keys=True, default=str), return_dtype=pl.String)


def display_text(column: pl.Series) -> pl.Series:
    """A column as text for people: a conversation as ``role: content`` messages joined by
    `` | ``; anything else as :func:`text_key` gives it."""
    dtype = column.dtype
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = {f.name for f in dtype.inner.fields}
        if {"role", "content"} <= fields:
            message = pl.concat_str(pl.element().struct.field("role"), pl.lit(": "), pl.element().struct.field("content"))
            return column.to_frame("c").select(pl.col("c").list.eval(message).list.join(" | ")).to_series()
    return text_key(column)


# ---------------------------------------------------------------------------------------
# TRL: output_dir/completions/completions_NNNNN.parquet (one generation batch a file)
# ---------------------------------------------------------------------------------------
_RUN = f"{INTERNAL}run"


def _trl_objectives(df: pl.DataFrame) -> list[str]:
    """The reward functions' columns: the float ones between ``completion`` and
    ``advantage`` (TRL writes one float column per reward function there, then any
    ``log_extra`` columns, which an integer, boolean or text type tells apart; a float
    extra cannot be told apart, and ``-r`` names the rewards then)."""
    cols = df.columns
    lo = cols.index("completion") + 1 if "completion" in cols else 0
    hi = cols.index("advantage") if "advantage" in cols else len(cols)
    skip = {"step", "advantage"}
    return [c for c in cols[lo:hi] if c not in skip and not c.startswith(INTERNAL) and df.schema[c].is_float()]


def read_trl(paths: Sequence[Path], exclude: Sequence[str] = ()) -> Dump:
    frames: list[pl.DataFrame] = []
    notes: list[str] = []
    warnings: list[str] = []
    previous: pl.DataFrame | None = None
    repeated: list[str] = []
    objectives: list[str] | None = None
    for n, path in enumerate(paths):
        df = _with_step(_read(path), path)
        if "prompt" not in df.columns:
            raise InputError(
                f"'{path}' has no 'prompt' column; a TRL completions file has step, prompt, completion, "
                "one column per reward function and advantage"
            )
        if df.height == 0:
            continue
        # steps_per_generation > 1 logs the same generation batch once per optimiser step
        body = df.drop("step")
        if previous is not None and body.schema == previous.schema and body.equals(previous):
            repeated.append(path.name)
            continue
        previous = body
        objectives = objectives or [c for c in _trl_objectives(df) if c not in exclude]
        key = text_key(df.get_column("prompt"))
        run = (key != key.shift(1)).fill_null(True).cum_sum()
        frames.append(df.with_columns(pl.lit(n, dtype=pl.Int64).alias(FILE), run.alias(_RUN)))
    if repeated:
        warnings.append(
            f"{len(repeated)} file(s) repeat the previous file's rows apart from 'step' and were read once "
            f"(steps_per_generation > 1 logs one generation batch at every step): {', '.join(repeated[:4])}"
            + (" ..." if len(repeated) > 4 else "")
        )
    df = _concat(frames)
    # a group is num_generations consecutive rows with one prompt: the usual run length
    runs = df.group_by(FILE, _RUN).len().get_column("len").to_list()
    tally = Counter(runs)
    size = max(tally, key=lambda k: (tally[k], -k))
    multiples = sum(1 for r in runs if r > size and r % size == 0)
    odd = sorted({r for r in runs if r % size})
    notes.append(f"groups: runs of {size} consecutive rows with the same prompt in one file (num_generations = {size}, the usual run)")
    if multiples:
        notes.append(f"{multiples} run(s) of a whole multiple of {size} rows with one prompt split into groups of {size} (a prompt drawn more than once in a batch)")
    if odd:
        warnings.append(
            f"runs of {', '.join(map(str, odd[:6]))} rows with one prompt are not a multiple of the group size {size}; "
            "they are kept as groups of their own size, which TRL did not train on (is the dump complete?)"
        )
    pos = pl.int_range(pl.len()).over(FILE, _RUN)
    length = pl.len().over(FILE, _RUN)
    sub = pl.when(length % size == 0).then(pos // size).otherwise(0)
    df = df.with_columns(
        (pl.col(FILE).cast(pl.String) + ":" + pl.col(_RUN).cast(pl.String) + ":" + sub.cast(pl.String)).alias(GROUP)
    ).drop(_RUN)
    objectives = objectives or []
    if not objectives:
        raise InputError(
            "the TRL completions files hold no reward columns (numeric columns between 'completion' and 'advantage')"
        )
    notes.append(f"objectives: the reward functions' columns {', '.join(objectives)} (-r narrows or weights them)")
    # the generation batch is the file; its step names it where every file has its own
    per_file = df.group_by(FILE).agg(pl.col("step").n_unique().alias("k"), pl.col("step").first().alias("s"))
    if per_file.get_column("k").max() == 1 and per_file.get_column("s").n_unique() == per_file.height:
        batch, rule = "step", "step (one file = one generation batch)"
    else:
        batch, rule = FILE, "file (one generation batch)"
    logged = "advantage" if "advantage" in df.columns else None
    return Dump(df, "trl", objectives, GROUP, f"{size} consecutive rows with the same prompt in one file", batch, rule,
                files=list(paths), logged=logged, notes=notes, warnings=warnings)


# ---------------------------------------------------------------------------------------
# verl: rollout_data_dir/<step>.jsonl
# ---------------------------------------------------------------------------------------
VERL_FIXED = ("input", "output", "gts", "score", "step", "uid", "request_id")
_V1_UID = r"^(.+)_\d+_\d+$"  # {prompt_uuid}_{session}_{index}


def fit_weights(y: np.ndarray, x: np.ndarray, tol: float = 1e-6) -> tuple[np.ndarray, float, float]:
    """Least squares ``y ~ x @ w + c`` on the rows where every value is present: the
    weights (rounded to 6 significant digits where that fits as well), the intercept and
    the relative residual ``|y - fit| / |y|``. A column that never varies cannot be told
    from the intercept: it keeps weight 1 and its value goes into ``c``."""
    keep = ~np.isnan(y) & ~np.isnan(x).any(axis=1)
    y, x = y[keep], x[keep]
    w = np.ones(x.shape[1])
    if y.size == 0:
        return w, 0.0, np.inf
    moves = x.max(axis=0) > x.min(axis=0)
    design = np.column_stack([x[:, moves], np.ones(len(y))])
    target = y - x[:, ~moves] @ w[~moves]
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    scale = max(float(np.linalg.norm(y)), 1e-300)

    def residual(c: np.ndarray) -> float:
        return float(np.linalg.norm(target - design @ c)) / scale

    tiny = 1e-9 * max(float(np.abs(y).max()), 1e-300)  # rounding noise (an intercept of -4e-16)
    rounded = np.array([0.0 if abs(c) < tiny else float(f"{c:.6g}") for c in coef]) + 0.0
    best = rounded if residual(rounded) <= max(residual(coef), tol) else coef
    w[moves] = best[:-1]
    return w, float(best[-1]), residual(best)


def _formula(names: Sequence[str], w: np.ndarray, c: float) -> str:
    terms = [f"{wk:g}*{n}" for n, wk in zip(names, w) if wk != 0]
    if c != 0:
        terms.append(f"{c:g}")
    return " + ".join(terms).replace("+ -", "- ") or "0"


def read_verl(paths: Sequence[Path], exclude: Sequence[str] = ()) -> Dump:
    frames = [_with_step(_read(path), path) for path in paths]
    df = _concat([f for f in frames if f.height])
    notes: list[str] = []
    warnings: list[str] = []
    if "uid" in df.columns:
        uid = df.get_column("uid").cast(pl.String)
        prompt = uid.str.extract(_V1_UID, 1)
        if prompt.null_count() == 0 and uid.n_unique() > prompt.n_unique():
            df = df.with_columns(prompt.alias(GROUP))
            group, rule = GROUP, "the prompt uuid of 'uid' ({prompt_uuid}_{session}_{index}) within a step"
        else:
            group, rule = "uid", "'uid' within a step"
    elif "input" in df.columns:
        group, rule = "input", "identical 'input' within a step (the legacy trainer writes no uid)"
    else:
        raise InputError("the verl dump has neither 'uid' nor 'input'; cannot form groups")
    notes.append(f"groups: {rule}")
    components = [c for c, t in df.schema.items()
                  if c not in VERL_FIXED and c not in exclude and not c.startswith(INTERNAL) and _is_number(t)]
    carried = [c for c, t in df.schema.items() if c not in VERL_FIXED and not c.startswith(INTERNAL) and not _is_number(t)]
    has_score = "score" in df.columns and _is_number(df.schema["score"])
    if not components and not has_score:
        raise InputError("the verl dump has no numeric 'score' and no numeric reward components")
    weights: dict[str, float] = {}
    scalar = "score" if has_score else None
    if components:
        objectives = components
        notes.append(f"objectives: the reward components {', '.join(components)}"
                     + (f"; text extras carried: {', '.join(carried)}" if carried else ""))
        if has_score:
            y = df.get_column("score").cast(pl.Float64).to_numpy()
            x = np.column_stack([df.get_column(c).cast(pl.Float64).to_numpy() for c in components])
            w, c, res = fit_weights(y, x)
            if res <= 1e-6:
                weights = {name: float(v) for name, v in zip(components, w)}
                notes.append(
                    f"score = {_formula(components, w, c)} (least squares with an intercept, relative residual {res:.1e}): "
                    "scalar estimators train on 'score', decoupled ones weight the components so"
                )
            else:
                warnings.append(
                    f"the components {', '.join(components)} do not explain 'score' (least squares with an intercept "
                    f"leaves a relative residual of {res:.2g}): scalar estimators train on 'score' as logged, decoupled "
                    "ones (gdpo, advantage_sum, ...) weight every component 1; pass -r NAME=WEIGHT for the real weights"
                )
    else:
        objectives = ["score"]
        scalar = None
        notes.append("objectives: 'score' (the dump has no reward components)")
    logged = "advantage" if "advantage" in df.columns else None
    return Dump(df, "verl", objectives, group, rule, "step", "step", files=list(paths), weights=weights,
                logged=logged, scalar=scalar, notes=notes, warnings=warnings)


# ---------------------------------------------------------------------------------------
# NeMo-RL: train_data_step<N>.jsonl, every value wrapped in a one-element list
# ---------------------------------------------------------------------------------------
def _unwrap(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _sequence_advantage(tokens: Any, mask: Any, length: Any) -> float | None:
    """The sequence's advantage from NeMo-RL's per-token list: the value at the first
    trained token (``token_loss_mask``), else at the last real token (``input_lengths -
    1``: NeMo-RL writes the sequence's value at every position, 0 in the padding)."""
    tokens = _unwrap(tokens)
    if tokens is None:
        return None
    if not isinstance(tokens, list):
        return float(tokens)
    mask = _unwrap(mask)
    if isinstance(mask, list):
        for v, m in zip(tokens, mask):
            if m:
                return float(v)
    if isinstance(length, (int, float)) and 0 < length <= len(tokens):
        return float(tokens[int(length) - 1])
    for v in reversed(tokens):
        if v:
            return float(v)
    return 0.0


_NEMO_TOKEN_LISTS = ("advantages", "token_loss_mask", "generation_logprobs", "prev_logprobs", "token_ids", "content")


def read_nemo_rl(paths: Sequence[Path], exclude: Sequence[str] = ()) -> Dump:
    rows = []
    dropped: set[str] = set()
    for path in paths:
        step = _step_from_name(path) or 0
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read '{path}': {first_line(exc)}") from None
        for ln, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"'{path}' line {ln} is not JSON: {exc.msg}") from None
            if not isinstance(rec, dict) or "rewards" not in rec:
                raise InputError(f"'{path}' line {ln} has no 'rewards' field (NeMo-RL train_data_step files log the total reward as 'rewards')")
            content = _unwrap(rec.get("content"))
            if isinstance(content, list) and content:
                prompt = content[0] if len(content) == 2 else content[:-1]
                response = content[-1]
            else:
                prompt, response = content, None
            if "prompt" in rec:
                prompt = _unwrap(rec["prompt"])
            reward = _unwrap(rec["rewards"])
            length = _unwrap(rec.get("input_lengths"))
            row: dict[str, Any] = {
                "step": int(_unwrap(rec.get("step", step))),
                "prompt": prompt if isinstance(prompt, str) or prompt is None else json.dumps(prompt, ensure_ascii=False),
                "response": response if isinstance(response, str) or response is None else json.dumps(response, ensure_ascii=False),
                "rewards": None if reward is None else float(reward),
            }
            if "advantages" in rec:
                row["advantage"] = _sequence_advantage(rec["advantages"], rec.get("token_loss_mask"), length)
            mask = _unwrap(rec.get("token_loss_mask"))
            if isinstance(mask, list):
                row["response_tokens"] = int(sum(1 for m in mask if m))
            for key, value in rec.items():
                if key in row or key in ("rewards", "prompt", "step") or key in _NEMO_TOKEN_LISTS:
                    continue
                value = _unwrap(value)
                if isinstance(value, (int, float, str, bool)) or value is None:
                    row[key] = value
                else:
                    dropped.add(key)
            dropped.update(k for k in _NEMO_TOKEN_LISTS if k in rec and k != "content")
            rows.append(row)
    if not rows:
        raise InputError("no rows in the NeMo-RL dump")
    df = pl.DataFrame(rows, infer_schema_length=None)
    if df.get_column("prompt").null_count():
        raise InputError("the NeMo-RL dump has rows without 'content' (the [prompt, response] pair); cannot form groups")
    notes = ["groups: identical prompt within a step (values unwrapped from NeMo-RL's one-element lists)"]
    if "advantage" in df.columns:
        notes.append("logged advantage: the response tokens' value of the per-token 'advantages'")
    if dropped:
        notes.append(f"per-token lists not kept: {', '.join(sorted(dropped))}")
    logged = "advantage" if "advantage" in df.columns and df["advantage"].null_count() < df.height else None
    return Dump(df, "nemo_rl", ["rewards"], "prompt", "identical prompt within a step", "step", "step",
                files=list(paths), logged=logged, notes=notes)


# ---------------------------------------------------------------------------------------
# finding the files and detecting the framework
# ---------------------------------------------------------------------------------------
def _sort_key(f: Path) -> tuple:
    return (str(f.parent), _step_from_name(f) or 0, f.name)


def _expand(item: str, patterns: Sequence[str]) -> list[Path]:
    p = Path(item)
    if p.is_dir():
        for pattern in patterns:
            found = sorted((f for f in p.rglob(pattern) if f.is_file()), key=_sort_key)
            if found:
                return found
        raise InputError(f"directory '{item}' holds no {' or '.join(patterns)} files")
    if p.is_file():
        return [p]
    if any(ch in item for ch in "*?["):
        found = sorted((Path(f) for f in globmod.glob(item, recursive=True) if Path(f).is_file()), key=_sort_key)
        if not found:
            raise InputError(f"glob '{item}' matches no files")
        return found
    raise InputError(f"input '{item}' does not exist")


def _files(inputs: Sequence[str], patterns: Sequence[str]) -> list[Path]:
    if not inputs:
        raise UsageError("no INPUT given; pass one or more files, directories or globs")
    out: list[Path] = []
    for item in inputs:
        out.extend(_expand(item, patterns))
    return list(dict.fromkeys(out))


PATTERNS = {
    "trl": ("completions_*.parquet", "*.parquet"),
    "verl": ("*.jsonl",),
    "nemo_rl": ("train_data_step*.jsonl", "*.jsonl"),
}
READERS = {"trl": read_trl, "verl": read_verl, "nemo_rl": read_nemo_rl}


def _kind(f: Path) -> str | None:
    name = f.name
    if name.startswith("completions_") and f.suffix == ".parquet":
        return "trl"
    if name.startswith("train_data_step") and f.suffix == ".jsonl":
        return "nemo_rl"
    if f.suffix == ".parquet":
        try:
            cols = pl.scan_parquet(f).collect_schema().names()
        except Exception:
            return None
        return "trl" if {"prompt", "completion"} <= set(cols) else None
    if f.suffix in (".jsonl", ".ndjson"):
        try:
            with open(f, encoding="utf-8") as fh:
                rec = json.loads(fh.readline())
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict):
            return None
        if {"input", "output", "score"} <= set(rec):
            return "verl"
        if "rewards" in rec and ("content" in rec or "advantages" in rec):
            return "nemo_rl"
    return None


def detect(inputs: Sequence[str]) -> str:
    """Which framework wrote these files (``--from auto``): files, folders or globs."""
    for item in inputs:
        p = Path(str(item))
        if p.is_dir():
            candidates = sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            candidates = [p]
        else:
            candidates = sorted(Path(f) for f in globmod.glob(str(item), recursive=True) if Path(f).is_file())
        for f in candidates:
            kind = _kind(f)
            if kind:
                return kind
    raise InputError(
        "cannot tell which framework wrote these files (looked for TRL completions_*.parquet, "
        "verl <step>.jsonl with input/output/score, NeMo-RL train_data_step*.jsonl); pass --from trl|verl|nemo_rl"
    )


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise UsageError(f"--from '{source}' is not one of {', '.join(SOURCES)}{suggest(source, list(SOURCES))}")


def resolve_source(source: str, inputs: Sequence[str]) -> str:
    """The framework ``--from`` names, ``auto`` detected."""
    check_source(source)
    return detect([str(i) for i in inputs]) if source == "auto" else source


def read(source: str, inputs: Sequence[str], exclude: Sequence[str] = ()) -> Dump:
    """The dump; ``exclude``: columns with another role (``--length``, ``--step`` ...),
    never objectives."""
    source = resolve_source(source, inputs)
    return READERS[source](_files([str(i) for i in inputs], PATTERNS[source]), [c for c in exclude if c])


def group_size_warnings(sizes_by_batch: dict[Any, np.ndarray], batch_rule: str) -> list[str]:
    """A warning where a batch holds groups of another size than its usual one (a prompt
    listed twice in a step, merged into one group; a truncated dump)."""
    odd = []
    for value, sizes in sizes_by_batch.items():
        if sizes.size == 0:
            continue
        counts = Counter(sizes.tolist())
        usual = max(counts, key=lambda k: (counts[k], -k))
        other = {k: v for k, v in counts.items() if k != usual}
        if other:
            odd.append((value, usual, other))
    if not odd:
        return []
    first = odd[0]
    others = ", ".join(f"{v} group(s) of {k}" for k, v in sorted(first[2].items()))
    word = batch_rule.split(" ")[0]
    return [
        f"group sizes differ within {len(odd)} {word}(s): {word} {first[0]} has {others} where its groups have {first[1]} rows "
        "(a prompt listed twice in a step is merged into one group; the trainer kept them apart, so their advantages differ)"
    ]
