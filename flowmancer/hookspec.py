"""Every hook flowmancer calls, grouped by phase: the plugin author's manual.

Implement a hook by decorating a function of the same name with ``@flowmancer.hookimpl`` in a plugin
module (a built-in, a ``-p`` module, an entry point of the ``flowmancer`` group or a
``flowmancerconf.py``). Arguments are passed by name; take only the ones you need.

``firstresult`` hooks stop at the first non-``None`` answer. Built-in defaults of those hooks are
``trylast`` so that a user plugin wins.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

from pluggy import HookspecMarker

if TYPE_CHECKING:
    from .config import Config
    from .errors import Problem
    from .executor import TaskHandle
    from .job import Job, TaskRun
    from .jobdef import ConfigSchema, LoadedJobDef
    from .states import ExecutionState, LogRecord, TaskResult

hookspec = HookspecMarker("flowmancer")

# --------------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------------


@hookspec(historic=True)
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command-line options. Called once per run, before arguments are parsed.

    Use ``parser.add_argument_group("my plugin")`` to keep ``--help`` readable.
    """


@hookspec
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    """Declare ``config:`` keys of the job YAML your plugin reads: ``schema.add("slow_after", float, 5.0,
    help="...")``. They are validated with the rest (type, unknown keys) and read back from
    ``job.jobdef.model.config.slow_after``.
    """


@hookspec(historic=True)
def flowmancer_configure(config: Config) -> None:
    """Arguments are parsed and plugins loaded: set up state for the run (store it on ``config.stash``).

    Historic: a plugin registered later (an extension of the job YAML with ``@hookimpl`` methods, a plugin
    registered by another) gets it at once when it is registered."""


@hookspec
def flowmancer_unconfigure(config: Config) -> None:
    """The run is over, whatever its outcome: release what ``flowmancer_configure`` set up."""


@hookspec(firstresult=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    """Do the whole run and return its exit code. The built-in loads, runs and reports one job.

    Return an exit code to replace that behaviour (a ``--list`` option, say, answers without running).
    """


# --------------------------------------------------------------------------------------------------
# Job
# --------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def flowmancer_load_jobdef(config: Config) -> Optional[Job]:
    """Read the job definition, collect task modules, validate everything and return the ``Job``.

    Raise ``flowmancer.errors.JobDefinitionError`` with every problem found; nothing runs then.
    """


@hookspec
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> Optional[list[Problem]]:
    """The job YAML is read and task modules collected: check the parts your plugin owns (its ``config:``
    keys, a YAML block) and set up from them. Return ``Problem``s; they are reported with all others.

    The built-in ``components`` plugin builds the ``loggers:``, ``extensions:`` and ``checkpointer:``
    classes here.
    """


@hookspec
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    """The job is loaded and valid: deselect tasks before anything starts.

    ``job.deselect(task, reason)`` leaves a task out (SKIPPED; its dependents treat it as done). Never set
    ``task.state`` directly: ``job.set_state`` calls ``flowmancer_task_transition``, which plugins rely on.
    """


@hookspec
def flowmancer_report_header(config: Config, job: Job) -> Optional[list[str]]:
    """Lines the terminal reporter shows before the run starts (one list per plugin)."""


@hookspec
def flowmancer_job_start(job: Job) -> None:
    """Tasks are about to start. ``job.restart`` tells whether this run resumes a checkpoint."""


@hookspec(firstresult=True)
def flowmancer_runjob(job: Job) -> Optional[bool]:
    """Run every task of the job to a final state; return ``True`` when done.

    The built-in is the event-driven scheduler in ``flowmancer.scheduler``.
    """


@hookspec
def flowmancer_terminal_summary(job: Job, write: Callable[[str], None]) -> None:
    """The terminal reporter is about to print the final summary line: add sections with ``write(line)``
    (``--durations`` lists the slowest tasks here). Not called with ``-p no:terminal``."""


@hookspec
def flowmancer_runjob_idle(job: Job) -> Optional[float]:
    """The scheduler handled a batch of events and is about to wait for more: hand off batched work.

    Called once per wake-up, not per event: the place to flush buffers (the ``components`` plugin wakes
    its background event loop here). Return a number of seconds to be called again after at most that
    long even if nothing happens (the terminal's live status uses it to update elapsed times); ``None``
    otherwise. Keep it cheap.
    """


@hookspec
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    """Every task reached a final state (or the run was interrupted). ``job.results`` has the outcome."""


# --------------------------------------------------------------------------------------------------
# Task
# --------------------------------------------------------------------------------------------------


@hookspec
def flowmancer_task_can_start(job: Job, task: TaskRun) -> Optional[bool]:
    """Gate: the task's dependencies are satisfied; may it start now?

    Return ``False`` to hold it back; it is asked again after the next task finishes or timer fires.
    The built-in ``concurrency`` plugin enforces ``max_concurrency`` here.
    """


@hookspec(firstresult=True)
def flowmancer_task_spawn(job: Job, task: TaskRun) -> Optional[TaskHandle]:
    """Start one attempt of ``task`` somewhere and return a handle the scheduler can wait on.

    The built-in forks one OS process per attempt (``flowmancer.localexec``). An executor plugin
    (Dask, say) returns its own ``TaskHandle``.
    """


@hookspec(firstresult=True)
def flowmancer_task_timeout(job: Job, task: TaskRun) -> Union[float, Literal[False], None]:
    """Seconds the attempt of ``task`` that is starting may run; ``False`` for no limit whatever the job
    says, ``None`` to leave the decision to the next plugin.

    When it runs longer it is stopped (SIGTERM: ``on_abort`` runs in the task; SIGKILL after a grace
    period), and the attempt fails with "timed out after N s". The built-in ``timeout`` plugin answers
    with the task's ``timeout`` (or ``config.task_defaults.timeout``).
    """


@hookspec
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    """An attempt of ``task`` started (``task.attempt`` counts from 1)."""


@hookspec
def flowmancer_task_transition(job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState) -> None:
    """A task changed state. Called for every change, in order, including restored and skipped tasks."""


@hookspec
def flowmancer_task_log(job: Job, task: TaskRun, record: LogRecord) -> None:
    """A task wrote one line (``print``, stderr, ``self.logger`` or a traceback). Keep it cheap: hot path."""


@hookspec
def flowmancer_task_shared_dict(job: Job, task: TaskRun, key: Any, value: Any, deleted: bool) -> None:
    """A running task wrote ``shared_dict[key] = value`` (or deleted ``key``); ``job.shared_dict`` already
    has it. The ``checkpoint`` plugin journals it so ``-r`` restores it."""


@hookspec(firstresult=True)
def flowmancer_task_retry(job: Job, task: TaskRun, result: TaskResult) -> Union[float, Literal[False], None]:
    """An attempt failed: may it be retried, and after how long?

    Return the delay in seconds before the next attempt, ``False`` for no retry (a rule that forbids one:
    "retry only ConnectionError"), or ``None`` to leave the decision to the next plugin. The built-in
    ``retry`` plugin (``trylast``, so yours decides first) applies ``max_attempts``, ``retry_on``,
    ``no_retry_on`` and ``backoff``.
    """


@hookspec
def flowmancer_task_not_run(job: Job, task: TaskRun, result: TaskResult) -> None:
    """The final report of a task that does not run in this run at all: deselected (``-k``, ``-m``,
    ``--skip``, ``job.deselect``) or restored as COMPLETED from the checkpoint ``-r`` resumes.

    Called once per such task, after ``flowmancer_job_start`` and before the first task starts. With
    ``flowmancer_task_finish`` it makes exactly one final report for every task of the job.
    """


@hookspec
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    """THE report hook: an attempt ended, or a task was settled without running (DEFAULTED).

    ``result.will_retry`` tells whether another attempt follows. Terminal, loggers, checkpoints and
    notifiers all consume this.
    """


def all_hook_names() -> list[str]:
    """Names of every hook in this module (used by the docs check)."""
    return sorted(k for k, v in globals().items() if k.startswith("flowmancer_") and callable(v))
