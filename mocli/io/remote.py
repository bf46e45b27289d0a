"""Inputs in object stores and on the web: ``s3://``, ``gs://``, ``az://``, ``hf://`` and
``https://`` files, prefixes and globs, read by Polars' own cloud readers.

A remote input is read once per process into a local copy that keeps each file's name and
place under its bucket (one local file per remote file, in the same format), so that
everything after it (hive partitions such as ``step=3/``, a framework dump's one file per
step, the chunked streaming of a large table) works as it does on local files. Credentials
come from the environment variables the cloud readers know (``AWS_*``, ``GOOGLE_*``,
``AZURE_*``, ``HF_TOKEN``) or from ``--storage-option KEY=VALUE``."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import polars as pl

from ..errors import InputError, UsageError

REMOTE = re.compile(r"^(s3|s3a|gs|gcs|az|abfs|abfss|adl|hf|https?)://", re.IGNORECASE)
# what a remote prefix is searched for, and how each kind is read and written back
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "ndjson", ".ndjson": "ndjson", ".csv": "csv"}
FILE = "__mocli_source_file"

_staged: dict[tuple, tuple[list[str], str]] = {}  # (input, options) -> (local paths, note)
_folder: list[str] = []


def is_remote(item: Any) -> bool:
    return isinstance(item, str) and bool(REMOTE.match(item))


def storage_options(entries: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``--storage-option KEY=VALUE`` entries (or a mapping) as Polars' ``storage_options``."""
    if not entries:
        return {}
    if isinstance(entries, Mapping):
        return {str(k): str(v) for k, v in entries.items()}
    out = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--storage-option '{entry}' is not KEY=VALUE (e.g. aws_region=us-east-1)")
        out[key.strip()] = value
    return out


def localise(inputs: Sequence[Any], options: Sequence[str] | Mapping[str, str] | None = None) -> tuple[list[Any], list[str]]:
    """``inputs`` with every remote one replaced by the local copies of its files, and a
    note per remote input on what was read. Local inputs pass as they are."""
    if not any(is_remote(str(i)) for i in inputs):
        return list(inputs), []
    opts = storage_options(options)
    out: list[Any] = []
    notes: list[str] = []
    for item in inputs:
        text = str(item)
        if not is_remote(text):
            out.append(item)
            continue
        key = (text, tuple(sorted(opts.items())))
        if key not in _staged:
            _staged[key] = _stage(text, opts)
        paths, note = _staged[key]
        out.extend(paths)
        notes.append(note)
    return out, notes


def _globs(text: str) -> list[tuple[str, str]]:
    """``(glob or file, format)`` pairs to read for one remote input."""
    suffix = Path(text.split("?", 1)[0]).suffix.lower()
    if any(ch in text for ch in "*?[") and suffix in FORMATS:
        return [(text, FORMATS[suffix])]
    if suffix in FORMATS:
        return [(text, FORMATS[suffix])]
    if suffix == ".json":
        raise UsageError(f"input '{text}': a remote .json array is not read; write the rows as .jsonl or .parquet")
    if text.lower().startswith(("http://", "https://")):
        raise UsageError(f"input '{text}': a web address names one file (.parquet, .jsonl, .ndjson or .csv); "
                         "a folder or a glob needs an object store (s3://, gs://, az://, hf://)")
    base = text.rstrip("/*")
    return [(f"{base}/**/*{ext}", kind) for ext, kind in FORMATS.items()]


def _scan(source: str, kind: str, opts: dict[str, str]) -> pl.LazyFrame:
    kw: dict[str, Any] = {"storage_options": opts or None, "include_file_paths": FILE}
    if kind == "parquet":
        return pl.scan_parquet(source, hive_partitioning=False, **kw)
    if kind == "ndjson":
        return pl.scan_ndjson(source, infer_schema_length=10000, **kw)
    return pl.scan_csv(source, **kw)


def _write(frame: pl.DataFrame, path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.write_parquet(path)
    elif kind == "ndjson":
        frame.write_ndjson(path)
    else:
        frame.write_csv(path)


def _local_path(folder: Path, url: str) -> Path:
    scheme, _, rest = url.partition("://")
    parts = [p for p in rest.split("?", 1)[0].split("/") if p not in ("", ".", "..")]
    return folder.joinpath(scheme.lower(), *parts)


def _stage(text: str, opts: dict[str, str]) -> tuple[list[str], str]:
    folder = Path(_stage_folder())
    wanted = _globs(text)
    prefix = len(wanted) > 1
    files: list[str] = []
    rows = 0
    for source, kind in wanted:
        try:
            frame = _scan(source, kind, opts).collect()
        except Exception as exc:  # the cloud readers' errors: no such key, no credentials, ...
            message = " ".join(str(exc).split())
            if prefix and ("expanded paths were empty" in message or "no such file" in message.lower()
                           or "404" in message or "not found" in message.lower()):
                continue  # this kind of file is not under the prefix
            raise InputError(
                f"cannot read '{text}' ({source}): {message[:300]}; credentials and endpoints come from the usual "
                "environment variables (AWS_*, GOOGLE_*, AZURE_*, HF_TOKEN) or --storage-option KEY=VALUE"
            ) from None
        for (url,), rows_of_file in frame.partition_by(FILE, as_dict=True, include_key=False, maintain_order=True).items():
            local = _local_path(folder, url)
            _write(rows_of_file, local, kind)
            files.append(str(local))
        rows += frame.height
    if not files:
        raise InputError(f"input '{text}' holds no {', '.join(sorted(set(FORMATS)))} files (or none with rows)")
    files.sort()
    note = (f"read {text} with Polars' cloud reader: {len(files)} file{'s' * (len(files) != 1)}, {rows} rows, "
            "worked on from a local copy")
    return files, note


def _stage_folder() -> str:
    if not _folder:
        path = tempfile.mkdtemp(prefix="mocli-remote-", dir=os.environ.get("MOCLI_TMPDIR") or None)
        _folder.append(path)
        atexit.register(shutil.rmtree, path, True)
    return _folder[0]
