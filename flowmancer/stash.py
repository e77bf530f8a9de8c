"""Typed plugin state on ``config.stash``, ``job.stash`` and ``task.stash`` (after pytest's ``Stash``).

A plugin makes a key once, at module level, and reads back the type it stored::

    TIMES = StashKey[list[float]]("myplugin.times")
    job.stash[TIMES] = []
    job.stash[TIMES].append(1.0)  # mypy knows it is a list[float]

A key is an object, not a string, so two plugins never collide by picking the same name, and one plugin
cannot reach another's state without importing its key. Plain string keys still work (a ``Stash`` is a
``dict``), for plugins written before.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, Union, overload

T = TypeVar("T")
D = TypeVar("D")
_MISSING: Any = object()


class StashKey(Generic[T]):
    """A key of a ``Stash`` whose values are ``T``; ``name`` only shows in ``repr``."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})"


class Stash(dict):  # type: ignore[type-arg]
    """A ``dict`` whose ``StashKey`` lookups are typed."""

    @overload  # type: ignore[override]
    def __getitem__(self, key: StashKey[T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Union[StashKey[Any], str]) -> Any:
        return dict.__getitem__(self, key)

    @overload  # type: ignore[override]
    def get(self, key: StashKey[T]) -> Union[T, None]: ...
    @overload
    def get(self, key: StashKey[T], default: D) -> Union[T, D]: ...
    @overload
    def get(self, key: str, default: Any = None) -> Any: ...
    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, key, default)

    @overload  # type: ignore[override]
    def setdefault(self, key: StashKey[T], default: T) -> T: ...
    @overload
    def setdefault(self, key: str, default: Any = None) -> Any: ...
    def setdefault(self, key: Any, default: Any = None) -> Any:
        return dict.setdefault(self, key, default)

    @overload  # type: ignore[override]
    def pop(self, key: StashKey[T]) -> T: ...
    @overload
    def pop(self, key: StashKey[T], default: D) -> Union[T, D]: ...
    @overload
    def pop(self, key: str, default: Any = None) -> Any: ...
    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        return dict.pop(self, key) if default is _MISSING else dict.pop(self, key, default)
