"""``Extension`` and ``@extension``: observe every task state change (YAML ``extensions:`` block)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

from .. import registry
from ..component import Component
from ..eventbus.execution import SerializableExecutionEvent


class Extension(Component):
    """Implement ``async update(evt)``: called in order with an ``ExecutionStateTransition`` for every
    state change of every task."""

    @abstractmethod
    async def update(self, evt: SerializableExecutionEvent) -> None: ...


E = TypeVar("E", bound=type[Extension])


def extension(t: E) -> E:
    """Make an ``Extension`` subclass available to the ``extensions:`` block under its class name."""
    if not (isinstance(t, type) and issubclass(t, Extension)):
        raise TypeError(f"@extension needs a subclass of flowmancer.extensions.Extension, got {t!r}")
    registry.declare("extension", t)
    return t
