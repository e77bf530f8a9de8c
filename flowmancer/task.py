"""The ``Task`` base class and the ``@task`` decorator.

A task is a pydantic model: its type-hinted class attributes are its parameters, validated from the
job YAML before anything runs. One instance lives in one OS process for one attempt.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from . import registry
from .tasklog import task_logger


@dataclass(frozen=True)
class TaskInfo:
    """Who this task is inside the job (``self.task_info``)."""

    name: str  #: instance name in the job YAML, e.g. ``final-fail-task``
    class_name: str  #: the ``@task`` class, e.g. ``FailImmediately``
    dependencies: tuple[str, ...] = ()
    attempt: int = 1
    max_attempts: int = 1
    is_restart: bool = False  #: this task had FAILED in the run being resumed with ``-r``
    job_name: str = "flowmancer"
    log_level: Optional[str] = None  #: the least severe ``logging`` records captured (``log_level:``)


class Task(ABC, BaseModel):
    """Extend this, add type-hinted parameters and implement ``run``.

    Lifecycle (each optional but ``run``): ``on_create``, ``on_restart`` (only when resuming a task
    that had failed), ``run``, then ``on_success`` or ``on_failure``, then ``on_destroy`` always;
    ``on_abort`` when the run is interrupted.
    """

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, use_enum_values=True, coerce_numbers_to_str=True
    )

    # What the runner gives a task process (``_fm_shared_dict``, ``_fm_logger``, ``_fm_info``) lives in the
    # instance's ``__dict__``, set by the worker, read by the properties below: not pydantic private
    # attributes, which made validating a task ten times slower (2 us -> 18 us: every instance initialises
    # each of them), the bulk of loading a 100,000-task job.

    #: tags every task of this class has (for ``-m``); the YAML ``tags:`` of a task add to them
    default_tags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, shared_dict: Optional[MutableMapping[Any, Any]] = None, **data: Any) -> None:
        """``MyTask(n=3)``, or ``MyTask(shared_dict={...}, n=3)`` as the original API allowed: a task built
        directly, for a plain unit test of ``run()`` (the runner validates tasks without calling this)."""
        super().__init__(**data)
        if shared_dict is not None:
            self.__dict__["_fm_shared_dict"] = shared_dict

    @property
    def shared_dict(self) -> MutableMapping[Any, Any]:
        """Values shared across tasks: a task sees every write made by tasks that finished before it
        started; each change it makes, through any mapping operation, reaches the parent at once (see the
        README)."""
        shared: Optional[MutableMapping[Any, Any]] = self.__dict__.get("_fm_shared_dict")
        if shared is None:
            shared = self.__dict__["_fm_shared_dict"] = {}
        return shared

    @shared_dict.setter
    def shared_dict(self, value: Any) -> None:
        # ``self.shared_dict |= {...}`` changes it in place, then assigns it back to itself
        if value is not self.shared_dict:
            raise AttributeError(
                "shared_dict cannot be replaced: change its keys (self.shared_dict[k] = v, .update(...), |=, "
                "del, .clear())"
            )

    @property
    def logger(self) -> logging.Logger:
        """A standard ``logging.Logger`` for this task (``flowmancer.task.<name>``): ``%``-args, ``exception()``
        and levels work; in a task process its records, and every library's, go to the task's log."""
        logger: Optional[logging.Logger] = self.__dict__.get("_fm_logger")
        if logger is None:  # not in a task process (a unit test calling run()): print to stderr
            self.__dict__["_fm_logger"] = logger = task_logger(self.task_info.name)
            if not logger.handlers and not logging.getLogger().handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(levelname)s - %(message)s"))
                logger.addHandler(handler)
                logger.setLevel(logging.DEBUG)
        return logger

    @property
    def task_info(self) -> TaskInfo:
        info: Optional[TaskInfo] = self.__dict__.get("_fm_info")
        if info is None:
            return TaskInfo(name=type(self).__name__, class_name=type(self).__name__)
        return info

    def on_create(self) -> None:
        pass

    def on_restart(self) -> None:
        pass

    @abstractmethod
    def run(self) -> None: ...

    def on_success(self) -> None:
        pass

    def on_failure(self) -> None:
        pass

    def on_destroy(self) -> None:
        pass

    def on_abort(self) -> None:
        pass


task = registry.decorator("task", Task, "flowmancer.task.Task")
