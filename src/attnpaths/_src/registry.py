"""Registries: named extension points (tasks, data sources, settings presets, experiments).

A registry maps names to objects. The library registers its own entries at import; a user adds theirs with
`register` (or the decorator form) without editing the library, and every command-line `choices` list is read
from a registry, so a user's entry shows up there too.

    DATA_SOURCES = Registry("data source")

    @DATA_SOURCES.register("my_images")
    def my_images(settings): ...

    DATA_SOURCES["my_images"]     # -> the function; an unknown name raises ValueError with the known names
"""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' when `name` is close to one of `known`, else ''."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Name -> object, in registration order.

    Args:
      what: what the entries are, for error messages ("data source", "preset of oneshot", ...).
    """

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Register `obj` under `name`; without `obj`, return a decorator that registers what it decorates.

        Raises ValueError if `name` is taken by another object (pass replace=True to override an entry on
        purpose) or is not a non-empty string. Registering the same object again under its name changes nothing.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string; got {name!r}")
        if obj is None:
            def decorator(fn: T) -> T:
                self.register(name, fn, replace=replace)
                return fn
            return decorator
        if name in self._entries and self._entries[name] is not obj and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered; pass replace=True to override it")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests and user code that registered something temporarily)."""
        self[name]
        del self._entries[name]

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.what} {name!r}{did_you_mean(name, self._entries)}; known: "
                             f"{', '.join(self._entries) or 'none'}") from None

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order (what the CLI offers as choices)."""
        return tuple(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"


