"""What the library's entry points do with the rows as read: add the advantage columns,
write them beside the inputs streamed through, pick rows and columns for people to read.
The DataFrame work stays here; callers pass and receive NumPy arrays and plain values."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import polars as pl

from ..errors import UsageError
from .chunks import ROW
from .files import Plan, scan_all, write_table
from .frameworks import display_text, text_key

# columns shown beside the rows that flip sign, when they hold text
TEXT_COLUMNS = ("prompt", "question", "input", "completion", "response", "output", "text")


def with_advantages(frame: pl.DataFrame, adv: dict[str, np.ndarray], dtype) -> pl.DataFrame:
    """``frame`` plus one ``adv:<label>`` column per entry of ``adv`` (as ``dtype``)."""
    return frame.with_columns([pl.Series(f"adv:{label}", a.astype(dtype)) for label, a in adv.items()])


def write_beside_inputs(p: Plan, adv: dict[str, np.ndarray], output: str | os.PathLike, dtype) -> list[str]:
    """Write the input files, streamed through, with one ``adv:<label>`` column per entry
    of ``adv`` (rows in input order) in place of a same-named input column (where
    ``with_columns`` would put it) or appended; ``adv`` is emptied as its columns are
    handed over. Returns the names of the columns written."""
    names = {label: f"adv:{label}" for label in adv}
    temp = {label: f"{ROW}{i}" for i, label in enumerate(adv)}
    added = pl.DataFrame({temp[label]: adv.pop(label).astype(dtype, copy=False) for label in list(adv)})
    source = scan_all(p)
    have = source.collect_schema().names()
    replaced = {names[label]: temp[label] for label in names}
    select = [pl.col(replaced[c]).alias(c) if c in replaced else pl.col(c) for c in have]
    select += [pl.col(temp[label]).alias(col) for label, col in names.items() if col not in have]
    write_table(pl.concat([source, added.lazy()], how="horizontal").select(select), output, inputs=p.paths)
    return list(names.values())


def text_columns(schema: dict[str, Any]) -> list[str]:
    """The :data:`TEXT_COLUMNS` of ``schema`` that hold strings."""
    return [c for c in TEXT_COLUMNS if c in schema and schema[c] == pl.String]


def numeric_column(frame: pl.DataFrame, column: str, option: str) -> np.ndarray:
    """``column`` as float64 (nulls NaN); a UsageError naming ``option`` when not numeric."""
    values = frame.get_column(column)
    if not (values.dtype.is_numeric() or values.dtype == pl.Null):
        raise UsageError(f"{option} column '{column}' is {values.dtype}, not numeric")
    return values.cast(pl.Float64).to_numpy()


def column_values(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column's values as a NumPy array (slice keys, group keys)."""
    return frame.get_column(column).to_numpy()


def group_names(frame: pl.DataFrame, group: str) -> list | None:
    """Each row's group as people know it: the group column's value, or for a group mocli
    formed (TRL's runs of one prompt) its prompt; None when there is neither."""
    if not group.startswith("__mocli_"):
        return frame.get_column(group).to_list()
    if "prompt" in frame.columns:
        return text_key(frame.get_column("prompt")).to_list()
    return None


def picked_rows(frame: pl.DataFrame | None, rows: Sequence[int], group: str | None) -> tuple[list | None, dict[str, list]]:
    """For the rows ``rows``: their group keys (None when the frame has no group column)
    and the text columns as people read them (a TRL conversation as its messages)."""
    if frame is None:
        return None, {}
    picked = frame[list(rows)]
    texts = {col: display_text(picked.get_column(col)).to_list()
             for col in TEXT_COLUMNS if col in picked.columns and col != group}
    keys = None
    if group is not None and group in picked.columns:
        keys = [k if isinstance(k, (int, float, str)) else str(k) for k in picked.get_column(group).to_list()]
    return keys, texts
