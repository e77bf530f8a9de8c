"""Every hook flowmancer calls, in the order a run calls them: the plugin author's manual.

Implement a hook by decorating a function of the same name with ``@flowmancer.hookimpl`` in a plugin
module (a built-in, a ``-p`` module, an entry point of the ``flowmancer`` group or a
``flowmancerconf.py``). Arguments are passed by name; take only the ones you need.

``firstresult`` hooks stop at the first answer that is not ``None``; ``None`` means "no opinion", and a
decision hook has a value of its own for "no" (``False``). Built-in defaults of those hooks are ``trylast``
so that a user plugin wins. "Use in flowmancerconf.py" marks the hooks a project's conf file is for; the
others are called before conf files load, or are an executor's or a reporter's business.

Phases: initialisation, loading the job, running it, each task, reporting, the end.
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
    from .states import ExecutionState, LogLines, LogRecord, TaskResult

hookspec = HookspecMarker("flowmancer")


# -- Initialisation ------------------------------------------------------------------------------
@hookspec(historic=True)
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command-line options. Called once per run, before arguments are parsed.

    :param parser: the run's parser; use ``parser.add_argument_group("my plugin")`` to keep ``--help``
        readable. Read the values back with ``config.getoption(name)``.

    Not for ``flowmancerconf.py`` files below the app root: the options must exist before any is read.
    """


@hookspec
def flowmancer_parser_ready(parser: argparse.ArgumentParser, pluginmanager: Any) -> None:
    """The parser has every option (the built-ins', installed plugins', ``flowmancerconf.py``'s) and is about
    to parse the command line. The ``completion`` plugin answers the shell's <Tab> here, from the full parser,
    and exits before anything runs.

    :param parser: the run's ``argparse`` parser, complete.
    :param pluginmanager: the run's ``FlowmancerPluginManager`` (its plugin names, say).
    """


@hookspec(historic=True)
def flowmancer_configure(config: Config) -> None:
    """Arguments are parsed and plugins loaded: set up state for the run.

    :param config: the run's ``Config`` (options, app root, ``config.stash`` for state keyed by a
        ``flowmancer.stash.StashKey``).

    Historic: a plugin registered later (an extension of the job YAML with ``@hookimpl`` methods, a plugin
    registered by another) gets it at once when it is registered. Use in flowmancerconf.py.
    """


@hookspec(firstresult=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    """Do the whole run and return its exit code. The built-in loads, runs and reports one job.

    :param config: the run's ``Config``.

    Return an exit code to replace that behaviour (a ``--list`` option, say, answers without running);
    ``None`` leaves it to the next plugin.
    """


# -- Loading the job -----------------------------------------------------------------------------
@hookspec(firstresult=True)
def flowmancer_load_jobdef(config: Config) -> Optional[Job]:
    """Read the job definition, collect task modules, validate everything and return the ``Job``.

    :param config: the run's ``Config``; ``config.jobdef_path`` is the job file.

    Raise ``flowmancer.errors.JobDefinitionError`` with every problem found; nothing runs then. The
    built-in reads the YAML with ``flowmancer.jobdef.read_jobdef(config)``.
    """


@hookspec
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    """Declare ``config:`` keys of the job YAML your plugin reads, whenever a job definition is read.

    :param schema: add a key with ``schema.add("slow_after", float, 5.0, help="...")``; it is validated
        with the rest (type, unknown keys) and read back from ``job.jobdef.model.config.slow_after``.
    """


@hookspec
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> Optional[list[Problem]]:
    """The job YAML is read and task modules collected: check the parts your plugin owns and set up from them.

    :param config: the run's ``Config``.
    :param jobdef: the validated YAML (``jobdef.model``) with its line marks (``jobdef.location(path)``).
    :return: ``Problem`` s, reported with all others (nothing runs if there are any).

    The built-in ``components`` plugin builds the ``loggers:``, ``extensions:`` and ``checkpointer:``
    classes here (add your own with ``flowmancer.components.add_logger``/``add_extension``).
    """


@hookspec
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    """The job is loaded and valid: leave tasks out before anything starts. Use in flowmancerconf.py.

    :param config: the run's ``Config``.
    :param job: the ``Job``; ``job.deselect(task, reason)`` leaves a task out (SKIPPED; its dependents treat
        it as done), ``job.notes.append(line)`` adds a line to the header and to ``--dry-run``.

    Never set ``task.state`` directly: ``job.set_state`` calls ``flowmancer_task_transition``, which
    plugins rely on.
    """


# -- Running the job -----------------------------------------------------------------------------
@hookspec
def flowmancer_job_start(job: Job) -> None:
    """Tasks are about to start.

    :param job: the ``Job``; ``job.restart`` tells whether this run resumes a checkpoint.
    """


@hookspec(firstresult=True)
def flowmancer_runjob(job: Job) -> Optional[bool]:
    """Run every task of the job to a final state; return ``True`` when done.

    :param job: the ``Job``.

    The built-in is the event-driven scheduler in ``flowmancer.scheduler``. Wrap it (``wrapper=True``) to
    set something up around the run.
    """


@hookspec
def flowmancer_runjob_idle(job: Job) -> Optional[float]:
    """The scheduler handled a batch of events and is about to wait for more: hand off batched work.

    :param job: the ``Job``.
    :return: seconds after which to be called again even if nothing happens (the terminal's live status
        uses it to update elapsed times), or ``None``.

    Called once per wake-up, not per event: the place to flush buffers (the ``components`` plugin wakes
    its background event loop here). Keep it cheap.
    """


# -- Each task, in the order of one attempt ------------------------------------------------------
@hookspec(firstresult=True)
def flowmancer_task_reuse(job: Job, task: TaskRun) -> Optional[TaskResult]:
    """The task's dependencies are satisfied: may an earlier run's result stand in for running it?

    :param job: the ``Job``.
    :param task: the ready task.
    :return: a COMPLETED ``TaskResult`` to settle the task without running it (no process, no concurrency
        slot; ``flowmancer_task_finish`` reports it like any other); ``None`` to run it.

    Asked before ``flowmancer_task_can_start``. The ``incremental`` plugin answers for up-to-date tasks
    (after replaying their recorded ``shared_dict`` writes), with ``result.up_to_date`` set.
    """


@hookspec(firstresult=True)
def flowmancer_task_expand(job: Job, task: TaskRun) -> Optional[list[TaskRun]]:
    """A ready task may stand for tasks known only now (a run-time fan-out).

    :param job: the ``Job``.
    :param task: the ready task; asked once, before ``flowmancer_task_reuse``.
    :return: the tasks to run in its place, unwired (they get its dependencies and dependents; it ends
        COMPLETED), or ``None`` to run it. Raise ``flowmancer.errors.ExpandError`` to fail it. The ``matrix``
        plugin answers for a ``matrix:`` over ``$SHARED{key}``.
    """


@hookspec
def flowmancer_task_added(job: Job, task: TaskRun) -> None:
    """A task joined the running job (``flowmancer_task_expand``): settle it here to keep it from running.

    :param job: the ``Job``.
    :param task: the new task (the checkpoint restores a restarted run's completed instances here).
    """


@hookspec
def flowmancer_job_has_room(job: Job) -> Optional[bool]:
    """Gate for every ready task at once: may any start now? A limit on all tasks alike belongs here, not
    in ``task_can_start``, asked per ready task (``max_concurrency`` there made 17,000 calls for a fan of
    1,000). The built-in ``concurrency`` plugin enforces ``max_concurrency`` here.

    :param job: the ``Job``; ``job.running`` holds the tasks running now.
    :return: ``False``: none may start (asked again after the next task finishes or timer fires)."""


@hookspec
def flowmancer_task_can_start(job: Job, task: TaskRun) -> Optional[bool]:
    """Gate: the task's dependencies are satisfied; may it start now? Use in flowmancerconf.py.

    :param job: the ``Job``; ``job.running`` holds the tasks running now.
    :param task: the ready task.
    :return: ``False`` to hold it back (it is asked again after the next task finishes or timer fires).

    Every plugin is asked; one ``False`` holds it, and the pass goes on to the next ready task (the
    built-in ``pools`` plugin holds back the tasks whose resources are taken).
    """


@hookspec(firstresult=True)
def flowmancer_task_spawn(job: Job, task: TaskRun) -> Optional[TaskHandle]:
    """Start one attempt of ``task`` somewhere and return a handle the scheduler can wait on.

    :param job: the ``Job``.
    :param task: the task; ``task.attempt`` is the attempt starting (from 1).
    :return: a ``flowmancer.executor.TaskHandle``; ``None`` leaves it to the next executor.

    The built-in ``localexec`` forks one OS process per attempt. An executor plugin (Dask, say) returns
    its own handle.
    """


@hookspec(firstresult=True)
def flowmancer_task_timeout(job: Job, task: TaskRun) -> Union[float, Literal[False], None]:
    """How long may the attempt that is starting run? Use in flowmancerconf.py.

    :param job: the ``Job``.
    :param task: the task.
    :return: seconds; ``False`` for no limit, whatever the job says; ``None`` to leave the decision to the
        next plugin.

    When it runs longer it is stopped (SIGTERM: ``on_abort`` runs in the task; SIGKILL after a grace
    period), and the attempt fails with "timed out after N s". The built-in ``timeout`` plugin answers
    with the task's ``timeout`` (or ``config.task_defaults.timeout``).
    """


@hookspec
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    """An attempt of ``task`` started.

    :param job: the ``Job``.
    :param task: the task; ``task.attempt`` counts from 1, ``task.started_at`` is when.
    """


@hookspec
def flowmancer_task_transition(job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState) -> None:
    """A task changed state. Called for every change, in order, including restored and skipped tasks.

    :param job: the ``Job``.
    :param task: the task (``task.state`` is ``to_state`` already).
    :param from_state: the state it left.
    :param to_state: the state it entered.
    """


@hookspec
def flowmancer_task_output(job: Job, task: TaskRun, lines: LogLines) -> None:
    """A task wrote lines: consecutive lines of one stream with one severity and time, in the order written
    (``print``, stderr, ``self.logger`` and other ``logging`` records, C code and subprocesses, tracebacks).

    :param job: the ``Job``.
    :param task: the task.
    :param lines: the lines (``lines.messages``), their stream, severity, attempt and time;
        ``lines.records()`` gives them as ``LogRecord``.

    The hot path of a task that prints a lot: one call per run of lines (up to thousands), not per line.
    The file logger, the terminal and the report use it.
    """


@hookspec
def flowmancer_task_log(job: Job, task: TaskRun, record: LogRecord) -> None:
    """A task wrote one line: ``flowmancer_task_output`` one line at a time, for plugins that want that.

    :param job: the ``Job``.
    :param task: the task.
    :param record: the line, its stream, severity, attempt and time.

    Called only while some plugin implements it (it costs a call per line of every task).
    """


@hookspec
def flowmancer_task_shared_dict(job: Job, task: TaskRun, key: Any, value: Any, deleted: bool) -> None:
    """A running task wrote ``shared_dict[key] = value`` (or deleted ``key``).

    :param job: the ``Job``; ``job.shared_dict`` already has the change.
    :param task: the task that wrote it.
    :param key: the key.
    :param value: the value (``None`` when deleted).
    :param deleted: whether ``key`` was deleted.

    The ``checkpoint`` plugin journals it so ``-r`` restores it.
    """


@hookspec(firstresult=True)
def flowmancer_task_retry(job: Job, task: TaskRun, result: TaskResult) -> Union[float, Literal[False], None]:
    """An attempt failed: may it be retried, and after how long? Use in flowmancerconf.py.

    :param job: the ``Job``.
    :param task: the task; ``task.attempt`` is the attempt that failed.
    :param result: its result (``result.exception_types``, ``result.failure_kind``: ``exception``,
        ``exit``, ``timeout`` or ``crash``).
    :return: the delay in seconds before the next attempt; ``False`` for no retry (a rule that forbids
        one: "retry only ConnectionError"); ``None`` to leave the decision to the next plugin.

    The built-in ``retry`` plugin (``trylast``, so yours decides first) applies ``max_attempts``,
    ``retry_on``, ``no_retry_on`` and ``backoff``.
    """


# -- Reporting -----------------------------------------------------------------------------------
@hookspec
def flowmancer_report_header(config: Config, job: Job) -> Optional[list[str]]:
    """Lines the terminal reporter shows before the run starts (after ``flowmancer_collection_modifytasks``).

    :param config: the run's ``Config``.
    :param job: the ``Job``.
    :return: lines (one list per plugin). A note about this run that ``--dry-run`` should show too
        belongs in ``job.notes`` instead.
    """


@hookspec
def flowmancer_task_not_run(job: Job, task: TaskRun, result: TaskResult) -> None:
    """The final report of a task that does not run in this run at all.

    :param job: the ``Job``.
    :param task: a task deselected (``-k``, ``-m``, ``--skip``, ``job.deselect``: SKIPPED) or restored as
        COMPLETED from the checkpoint ``-r`` resumes.
    :param result: its result (``result.error`` says which).

    Called once per such task, after ``flowmancer_job_start`` and before the first task starts. With
    ``flowmancer_task_finish`` it makes exactly one final report for every task of the job.
    """


@hookspec
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    """THE report hook: an attempt ended, or a task was settled without running. Use in flowmancerconf.py.

    :param job: the ``Job``.
    :param task: the task.
    :param result: what it came to; ``result.will_retry`` tells whether another attempt follows.

    Called for every attempt; for a task settled without running (DEFAULTED, SKIPPED by its trigger
    rule); and once more with its last result and ``will_retry`` false for a task that was waiting to retry
    when ``-x`` or an abort stopped the run. Terminal, loggers, checkpoints and notifiers all consume it.
    """


@hookspec
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    """Every task reached a final state (or the run was interrupted).

    :param job: the ``Job``; ``job.results`` has the outcome, ``job.error`` what stopped the run if no
        task's failure did.
    :param exitcode: the exit code of the run (see the README's Exit codes).
    """


@hookspec
def flowmancer_terminal_summary(job: Job, write: Callable[[str], None], terminalreporter: Any, exitcode: int) -> None:
    """The terminal reporter is about to print the final summary line: add sections.

    :param job: the ``Job``.
    :param write: writes one line (``write(line)``), as ``terminalreporter.line`` does.
    :param terminalreporter: the reporter (``line(text)``, ``paint(text, colour, bold)``, ``rule(title)``,
        ``verbosity``), to write the way it does.
    :param exitcode: the exit code of the run.

    ``--durations`` lists the slowest tasks here. Not called with ``-p no:terminal``.
    """


# -- The end -------------------------------------------------------------------------------------
@hookspec
def flowmancer_unconfigure(config: Config) -> None:
    """The run is over, whatever its outcome: release what ``flowmancer_configure`` set up.

    :param config: the run's ``Config``.
    """


def all_hook_names() -> list[str]:
    """Names of every hook in this module (used by the docs check)."""
    return sorted(k for k, v in globals().items() if k.startswith("flowmancer_") and callable(v))
