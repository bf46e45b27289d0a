"""Settings from a TOML file: ``--config FILE`` (top-level keys, or a ``[tool.mocli]``
table), else ``[tool.mocli]`` in ``./pyproject.toml`` when present. Command-line options
always win."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import UsageError
from .options import OPTIONS
from .registry import suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# key -> expected Python type(s) in TOML, from the one option table
KEYS: dict[str, tuple[type, ...]] = {o.config_key: o.toml for o in OPTIONS}
_NAMES = {o.config_key: o.name for o in OPTIONS}
_LISTS = [o.config_key for o in OPTIONS if o.many and o.toml in ((list,), (list, dict)) and o.name != "check"]


def read(path: str | None) -> dict[str, Any]:
    """The settings table, validated; ``{}`` when there is nothing to read."""
    if path is None:
        default = Path("pyproject.toml")
        if not default.is_file():
            return {}
        data = _parse(default)
        table = data.get("tool", {}).get("mocli", {})
        return _validate(table, f"{default} [tool.mocli]")
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file '{path}' does not exist (--config)")
    data = _parse(p)
    table = data.get("tool", {}).get("mocli", data) if "tool" in data else data
    return _validate(table, str(p))


def _parse(p: Path) -> dict:
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file '{p}' is not valid TOML: {exc}") from None


def _validate(table: dict, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise UsageError(
                f"unknown key '{key}' in {where}{suggest(key, list(KEYS))}; accepted: {', '.join(KEYS)}"
            )
        if not isinstance(value, KEYS[key]):
            kinds = " or ".join("a table" if t is dict else "a list" if t is list else "a string" for t in KEYS[key])
            raise UsageError(f"key '{key}' in {where} must be {kinds}")
        out[key] = value
    for key in ("rewards", "storage_options"):  # a table of NAME = VALUE: the command line's NAME=VALUE
        if isinstance(out.get(key), dict):
            out[key] = [f"{k}={v}" for k, v in out[key].items()]
    for key in _LISTS:
        if key in out:
            out[key] = [str(v) for v in out[key]]
    return {_NAMES[key]: value for key, value in out.items()}
