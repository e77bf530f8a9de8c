"""``Checkpointer`` and ``@checkpointer``: where ``-r`` finds the state of the last failed run."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Awaitable, Dict, Set, Union

from .. import registry
from ..basecomponent import Component


class NoCheckpointAvailableError(Exception):
    """``read_checkpoint`` found nothing to resume from."""


@dataclass
class CheckpointContents:
    name: str
    states: Dict[str, Set[str]]  #: state name -> task names
    shared_dict: Dict[Any, Any] = field(default_factory=dict)


class Checkpointer(Component):
    """Store and recall ``CheckpointContents`` by job name. Methods may be ``def`` or ``async def``."""

    @abstractmethod
    def write_checkpoint(self, name: str, content: CheckpointContents) -> Union[None, Awaitable[None]]: ...

    @abstractmethod
    def read_checkpoint(self, name: str) -> Union[CheckpointContents, Awaitable[CheckpointContents]]:
        """Return the contents, or raise ``NoCheckpointAvailableError``."""

    @abstractmethod
    def clear_checkpoint(self, name: str) -> Union[None, Awaitable[None]]: ...


checkpointer = registry.decorator("checkpointer", Checkpointer, "flowmancer.checkpointer.Checkpointer")
