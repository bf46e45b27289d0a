"""One generic registry for estimators, schemes and profiles.

A registry maps a name to a class (or, for profiles, an instance). Lookups of unknown
names raise :class:`~mocli.errors.UsageError` with a "did you mean" suggestion. Third-party
estimators arrive through the ``mocli.estimators`` entry-point group.
"""

from __future__ import annotations

import difflib
from importlib import metadata
from typing import Generic, Iterator, TypeVar

from .errors import UsageError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Names to objects, in registration order."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._entry_point_group = entry_point_group
        self._plugins_loaded = entry_point_group is None

    def register(self, obj: T) -> T:
        """Add ``obj`` under its own ``name`` (the name users type, defined once, on the
        class or instance); usable as a class decorator."""
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name or name == "?":
            raise ValueError(f"a {self.kind} needs a name to be registered: {obj!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = obj
        return obj

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self._entry_point_group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = self.names()
            raise UsageError(
                f"unknown {self.kind} '{name}'{suggest(name, known)}; "
                f"accepted: {', '.join(known)}"
            ) from None

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load_plugins()
        return iter(list(self._items.items()))
