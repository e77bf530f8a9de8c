"""Name -> class lookup for ``@task``, ``@logger``, ``@extension`` and ``@checkpointer`` classes.

Decorators only record the class. A run builds its own ``Registry`` from the classes whose module is
still the live one in ``sys.modules``, so an in-process re-run (tests, ``--watch``) never sees stale
classes, and two different classes under one name are reported with both files.
"""

from __future__ import annotations

import inspect
import sys
from collections import defaultdict
from typing import Any, Callable, Iterator, Optional, TypeVar

_declared: dict[str, list[type[Any]]] = defaultdict(list)
C = TypeVar("C", bound=type)


def declare(kind: str, cls: type[Any]) -> None:
    _declared[kind].append(cls)


def decorator(kind: str, base: type[Any], base_path: str) -> Callable[[C], C]:
    """The ``@task`` / ``@logger`` / ``@extension`` / ``@checkpointer`` decorators: check and record."""

    def deco(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"@{kind} needs a subclass of {base_path}, got {cls!r}")
        declare(kind, cls)
        return cls

    deco.__name__ = deco.__qualname__ = kind
    deco.__doc__ = f"Make a ``{base.__name__}`` subclass available to job definitions under its class name."
    return deco


def _is_live(cls: type[Any]) -> bool:
    module = sys.modules.get(cls.__module__)
    if module is None:
        return False
    if cls.__qualname__ != cls.__name__:  # defined in a function or class: cannot be looked up
        return True
    return getattr(module, cls.__name__, None) is cls


def class_file(cls: type[Any]) -> str:
    try:
        return inspect.getsourcefile(cls) or cls.__module__
    except TypeError:
        return cls.__module__


class Registry:
    """The classes of one kind visible to one run."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.classes: dict[str, type[Any]] = {}
        self.conflicts: dict[str, list[type[Any]]] = {}
        seen: dict[str, list[type[Any]]] = defaultdict(list)
        for cls in _declared[kind]:
            if _is_live(cls) and cls not in seen[cls.__name__]:
                seen[cls.__name__].append(cls)
        for name, classes in seen.items():
            files = {class_file(c) for c in classes}
            if len(files) > 1:
                self.conflicts[name] = classes
            self.classes[name] = classes[-1]

    def get(self, name: str) -> Optional[type[Any]]:
        return self.classes.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.classes)
