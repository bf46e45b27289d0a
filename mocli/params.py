"""Parameters of estimators and schemes: the ``NAME:key=value,...`` spec syntax, and the
frozen-dataclass fields that hold them.

A parameter is a dataclass field made with :func:`param`, which records its help text, its
type and, for enumerations, the accepted choices. The CLI parser, ``mocli estimators``
and the generated docs all read these fields, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from .errors import UsageError
from .registry import suggest


def param(default: Any, help: str, *, choices: tuple[str, ...] | None = None, type: type | None = None,
          nan_means: str | None = None):
    """A dataclass field that is a user-settable parameter. A float must be finite;
    ``nan_means`` lets NaN through, saying what it stands for (``"same as eps"``)."""
    kind = type if type is not None else builtin_type(default)
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "type": kind, "nan_means": nan_means}
    )


def finite(text: str, where: str, *, nan_ok: bool = False) -> float:
    """``text`` as a finite number (NaN too with ``nan_ok``), or a UsageError naming
    ``where`` and what was given."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: '{text}' is not a number") from None
    if math.isinf(value) or (math.isnan(value) and not nan_ok):
        raise UsageError(f"{where}: '{text}' is not a finite number; give a finite number" + (" or nan" if nan_ok else ""))
    return value


def builtin_type(value: Any) -> type:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    return str


def parse_spec(spec: str, what: str = "estimator") -> tuple[str, dict[str, str]]:
    """Split ``NAME:key=value,key=value`` into the name and the raw string values."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"empty {what} spec; expected NAME or NAME:key=value,...")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    values: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise UsageError(
                    f"{what} spec '{spec}': '{item}' is not key=value; "
                    f"expected NAME:key=value,key=value"
                )
            if key in values:
                raise UsageError(f"{what} spec '{spec}': parameter '{key}' is given twice")
            values[key] = value.strip()
    return name, values


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(value: Any, field: dataclasses.Field, owner: str) -> Any:
    """Convert a raw value (a string from the command line, or a TOML value) to the
    field's type, or raise a UsageError naming the parameter and what it accepts."""
    kind = field.metadata.get("type", str)
    choices = field.metadata.get("choices")
    where = f"parameter '{field.name}' of {owner}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise UsageError(f"{where} must be true or false, not '{value}'")
    if kind is float:
        try:
            out = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            out = None
        if out is None or math.isnan(out) and str(value).lower() != "nan":
            raise UsageError(f"{where} must be a number, not '{value}'")
        nan_means = field.metadata.get("nan_means")
        if math.isinf(out) or (math.isnan(out) and not nan_means):
            raise UsageError(
                f"{where} must be a finite number, not '{value}'" + (f" (nan: {nan_means})" if nan_means else "")
            )
        return out
    if kind is int:
        try:
            fv = float(value)
            if isinstance(value, bool) or fv != int(fv):
                raise ValueError
            out = int(fv)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"{where} must be an integer, not '{value}'") from None
        if choices is not None and str(out) not in choices:
            raise UsageError(f"{where} must be one of {', '.join(choices)}, not '{value}'")
        return out
    text = value if isinstance(value, str) else str(value)
    if choices is not None and text not in choices:
        raise UsageError(
            f"{where} must be one of {', '.join(choices)}, not '{text}'{suggest(text, choices)}"
        )
    return text


def fields_of(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def build(cls, name: str, values: Mapping[str, Any], defaults: Mapping[str, Any] = {}, what: str = "estimator"):
    """Instantiate ``cls`` from profile ``defaults`` (only the fields it has) overridden by
    the user's ``values`` (every key must be a field)."""
    known = {f.name: f for f in fields_of(cls)}
    owner = f"{what} '{name}'"
    kwargs: dict[str, Any] = {}
    for key, value in defaults.items():
        if key in known:
            kwargs[key] = coerce(value, known[key], owner)
    for key, value in values.items():
        if key not in known:
            accepted = ", ".join(known) or "none"
            raise UsageError(
                f"unknown parameter '{key}' for {owner}{suggest(key, list(known))}; "
                f"accepted: {accepted}"
            )
        kwargs[key] = coerce(value, known[key], owner)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def describe(obj) -> dict[str, Any]:
    """The full resolved parameter set of an estimator or scheme instance."""
    return {f.name: getattr(obj, f.name) for f in fields_of(type(obj))}
