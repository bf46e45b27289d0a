"""Reading one input file: the reader its extension picks, the checks a reader would let
pass (a header naming a column twice, a byte-order mark, Python's NaN tokens in JSON), and
the error that names the file (and, for JSON lines, the line) when it fails."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import polars as pl

from ..errors import InputError, first_line

READERS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "ndjson", ".ndjson": "ndjson", ".json": "json", ".csv": "csv"}


_HIVE = re.compile(r"^([^=]+)=(.*)$")


def hive_columns(path: Path) -> dict[str, object]:
    """``key=value`` folder names above a file (hive partitioning), values as numbers where
    they parse: ``step=10/part-0.parquet`` gives ``{"step": 10}``."""
    out: dict[str, object] = {}
    for part in path.parent.parts:
        m = _HIVE.match(part)
        if m:
            key, value = m.groups()
            for kind in (int, float):
                try:
                    out[key] = kind(value)
                    break
                except ValueError:
                    continue
            else:
                out[key] = value
    return out



# cells a CSV writer leaves for "no value" (pandas, R, Python's str(float('nan'))): null,
# which in a reward column means not applicable
CSV_NULLS = ["", "NA", "N/A", "nan", "NaN", "NAN", "null", "NULL", "None"]
_BOM = b"\xef\xbb\xbf"


def _head(path: Path, n: int = 1 << 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _csv_header(path: Path) -> None:
    """Refuse a CSV header that names a column twice (a reader would rename one)."""
    first = _head(path).split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    names = next(csv.reader([first]), [])
    seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        if name in seen:
            raise InputError(
                f"file '{path}' names column '{name}' twice in its header (columns {seen[name]} and {i}); "
                "column names must be unique"
            )
        seen[name] = i


def _json_constant(token: str):
    raise ValueError(f"'{token}' is not JSON (Python's json module writes it for a float NaN or infinity); write null for a missing value")


def read_ndjson_lines(path: Path, constants: bool = False) -> pl.DataFrame:
    """A JSON-lines file read line by line (slower than Polars' reader, which it stands in
    for on files that start with a byte-order mark, and which it follows to name the line
    of an error): an InputError naming the file and line of the first bad one. With
    ``constants``, ``NaN`` and ``Infinity`` tokens (Python's json writes them, and so
    the frameworks' dump writers) are read as those floats."""
    rows = []
    with open(path, encoding="utf-8-sig") as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.rstrip("\r\n"), parse_constant=None if constants else _json_constant)
            except ValueError as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                where = f", character {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                raise InputError(f"file '{path}' line {ln}{where}: {msg}") from None
            if not isinstance(rec, dict):
                raise InputError(f"file '{path}' line {ln}: a {type(rec).__name__}, not a JSON object (one row per line)")
            rows.append(rec)
    if not rows:
        raise InputError(f"file '{path}' holds no rows")
    try:
        return pl.DataFrame(rows, infer_schema_length=None)
    except Exception as exc:
        raise InputError(f"cannot read '{path}': {first_line(exc)}") from None


def read_error(path: Path, exc: BaseException) -> InputError:
    """The error to report for an input that failed to read: for JSON lines, the file and
    line of the first bad one; else the reader's first line, against the file."""
    if isinstance(exc, InputError):
        return exc
    if READERS.get(path.suffix.lower()) == "ndjson":
        try:
            read_ndjson_lines(path)
        except InputError as located:
            return located
    return InputError(f"cannot read '{path}': {first_line(exc)}")


def scan(path: Path) -> pl.LazyFrame:
    kind = READERS[path.suffix.lower()]
    if path.stat().st_size == 0:
        raise InputError(f"file '{path}' is empty")
    try:
        if kind == "parquet":
            return pl.scan_parquet(path)
        if kind == "ndjson":
            if _head(path, 3) == _BOM:
                return read_ndjson_lines(path).lazy()
            return pl.scan_ndjson(path, infer_schema_length=10000)
        if kind == "csv":
            _csv_header(path)
            return pl.scan_csv(path, infer_schema_length=10000, null_values=CSV_NULLS)
        if _head(path, 3) == _BOM:
            return pl.read_json(_head(path, path.stat().st_size)[3:]).lazy()
        return pl.read_json(path).lazy()
    except InputError:
        raise
    except Exception as exc:  # polars raises many kinds
        raise InputError(f"cannot read '{path}' as {kind}: {first_line(exc)}") from None
