"""``Logger`` and ``@logger``: receive every task's log lines (YAML ``loggers:`` block)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from .. import registry
from ..basecomponent import Component

if TYPE_CHECKING:
    from ..eventbus.log import SerializableLogEvent


class Logger(Component):
    """Implement ``async update(evt)``: called in order with ``LogStartEvent``, ``LogWriteEvent``s and
    ``LogEndEvent`` for each task attempt."""

    @abstractmethod
    async def update(self, evt: SerializableLogEvent) -> None: ...


logger = registry.decorator("logger", Logger, "flowmancer.loggers.Logger")


def __getattr__(name: str) -> Any:
    """``SerializableLogEvent``, importable from here as in the original, made on first use: a run without a YAML
    logger never needs the event classes (~3 ms of every run's start)."""
    if name == "SerializableLogEvent":
        from ..eventbus.log import SerializableLogEvent

        return SerializableLogEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
