"""``Extension`` and ``@extension``: observe every task state change (YAML ``extensions:`` block)."""

from __future__ import annotations

from abc import abstractmethod

from .. import registry
from ..basecomponent import Component
from ..eventbus.execution import SerializableExecutionEvent


class Extension(Component):
    """Implement ``async update(evt)``: called in order with an ``ExecutionStateTransition`` for every
    state change of every task."""

    @abstractmethod
    async def update(self, evt: SerializableExecutionEvent) -> None: ...


extension = registry.decorator("extension", Extension, "flowmancer.extensions.Extension")
