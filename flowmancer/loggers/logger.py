"""``Logger`` and ``@logger``: receive every task's log lines (YAML ``loggers:`` block)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

from .. import registry
from ..component import Component
from ..eventbus.log import SerializableLogEvent


class Logger(Component):
    """Implement ``async update(evt)``: called in order with ``LogStartEvent``, ``LogWriteEvent``s and
    ``LogEndEvent`` for each task attempt."""

    @abstractmethod
    async def update(self, evt: SerializableLogEvent) -> None: ...


L = TypeVar("L", bound=type[Logger])


def logger(t: L) -> L:
    """Make a ``Logger`` subclass available to the ``loggers:`` block under its class name."""
    if not (isinstance(t, type) and issubclass(t, Logger)):
        raise TypeError(f"@logger needs a subclass of flowmancer.loggers.Logger, got {t!r}")
    registry.declare("logger", t)
    return t
