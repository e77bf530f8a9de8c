"""``Extension`` and ``@extension``: observe every task state change (YAML ``extensions:`` block)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from .. import registry
from ..basecomponent import Component

if TYPE_CHECKING:
    from ..eventbus.execution import SerializableExecutionEvent


class Extension(Component):
    """Implement ``async update(evt)``: called in order with an ``ExecutionStateTransition`` for every
    state change of every task."""

    @abstractmethod
    async def update(self, evt: SerializableExecutionEvent) -> None: ...


extension = registry.decorator("extension", Extension, "flowmancer.extensions.Extension")


def __getattr__(name: str) -> Any:
    """``SerializableExecutionEvent``, importable from here as in the original, made on first use: a run without a YAML
    extension never needs the event classes (~3 ms of every run's start)."""
    if name == "SerializableExecutionEvent":
        from ..eventbus.execution import SerializableExecutionEvent

        return SerializableExecutionEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
