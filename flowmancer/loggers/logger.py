"""``Logger`` and ``@logger``: receive every task's log lines (YAML ``loggers:`` block)."""

from __future__ import annotations

from abc import abstractmethod

from .. import registry
from ..basecomponent import Component
from ..eventbus.log import SerializableLogEvent


class Logger(Component):
    """Implement ``async update(evt)``: called in order with ``LogStartEvent``, ``LogWriteEvent``s and
    ``LogEndEvent`` for each task attempt."""

    @abstractmethod
    async def update(self, evt: SerializableLogEvent) -> None: ...


logger = registry.decorator("logger", Logger, "flowmancer.loggers.Logger")
