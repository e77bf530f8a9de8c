"""The base shared by ``Logger``, ``Extension`` and ``Checkpointer``: a pydantic model with async lifecycle."""

from __future__ import annotations

from abc import ABC
from pathlib import Path
from typing import Union

from pydantic import BaseModel, ConfigDict, PrivateAttr


class Component(ABC, BaseModel):
    """Parameters are typed fields validated from the YAML ``parameters:`` block.

    Lifecycle coroutines run on Flowmancer's background event loop, in order: ``on_create`` when the
    job starts (then ``on_restart`` when it resumes a checkpoint), ``on_success`` or ``on_failure`` when
    it ends (``on_abort`` first when interrupted), ``on_destroy`` last.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, coerce_numbers_to_str=True)

    _fm_root: Path = PrivateAttr(default_factory=Path.cwd)
    _fm_job_name: str = PrivateAttr(default="flowmancer")

    @property
    def job_name(self) -> str:
        """The running job's ``config.name``."""
        return self._fm_job_name

    @property
    def app_root(self) -> Path:
        """The job's app root: resolve relative paths against it."""
        return self._fm_root

    def resolve_path(self, path: Union[str, Path]) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self._fm_root / p)

    async def on_create(self) -> None:
        pass

    async def on_restart(self) -> None:
        pass

    async def on_success(self) -> None:
        pass

    async def on_failure(self) -> None:
        pass

    async def on_destroy(self) -> None:
        pass

    async def on_abort(self) -> None:
        pass
