"""Built-in plugin ``incremental``: ``--incremental`` runs only the tasks whose inputs changed, and says why.

A task is decided when it becomes ready (its dependencies settled): up to date when its own fingerprint
(class, parameters, code, libraries, input files, output files) matches its record and every dependency's
result (the values it wrote, its outputs) is the one the recorded run saw. An up-to-date task does not run:
its recorded ``shared_dict`` writes are replayed and it settles as COMPLETED (``result.up_to_date``).
Deciding at that moment is what gives early cutoff: a dependency that reran and wrote the same values
leaves its dependents up to date.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..checkpointer.codec import encode, encode_value
from ..checkpointer.file import FileCheckpointer
from ..config import Config
from ..errors import UsageError, closest
from ..files import file_name
from ..job import Job, TaskRun
from ..jobdef.models import ConfigSchema
from ..markers import hookimpl
from ..plan import PLAN_REASON
from ..stash import StashKey
from ..states import ExecutionState, TaskResult

if TYPE_CHECKING:
    from .state import Incremental

S = ExecutionState
STATE = StashKey["Incremental"]("incremental")
#: why a task of an incremental run runs (empty: it is up to date)
WHY = StashKey[list[str]]("incremental.why")


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("incremental runs")
    g.add_argument(
        "--incremental",
        action="store_true",
        help="run only the tasks whose parameters, code, inputs or dependencies' results changed since they last "
        "completed (config.incremental: true makes it the default)",
    )
    g.add_argument("--no-incremental", action="store_true", help="run every task, whatever config.incremental says")
    g.add_argument(
        "--explain", action="store_true", help="print for every task why it would run or is up to date; run nothing"
    )
    g.add_argument(
        "--force",
        nargs="+",
        action="extend",
        default=[],
        metavar="TASK",
        help="with --incremental: run these tasks even if up to date (their dependents follow the usual rule)",
    )
    g.add_argument(
        "--cache-clear", action="store_true", help="forget what incremental runs recorded for this job first"
    )


@hookimpl
def flowmancer_configure(config: Config) -> None:
    if config.getoption("explain"):  # --explain is -n with this plugin's reasons
        config.option.dry_run = True


@hookimpl
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    schema.add("incremental", bool, False, help="run incrementally by default (--no-incremental overrides)")


def active(config: Config, job: Optional[Job] = None) -> bool:
    if config.getoption("explain"):
        return True
    if config.getoption("no_incremental"):
        return False
    if config.getoption("incremental"):
        return True
    return bool(job is not None and getattr(job.jobdef.model.config, "incremental", False))


def record_path(config: Config, job: Job) -> Path:
    """Beside the checkpoint: the default checkpointer's folder (a custom checkpointer's runs use it too)."""
    helper = FileCheckpointer()
    helper._fm_root = config.rootdir
    return helper.folder() / file_name(job.name, ".incremental.jsonl")


def _state(config: Config) -> Optional[Incremental]:
    return config.stash.get(STATE)


def _looking_only(config: Config) -> bool:
    return any(config.getoption(o) for o in ("dry_run", "list", "graph", "explain"))


@hookimpl(trylast=True)
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    forced = config.getoption("force") or []
    if not active(config, job):
        if forced:
            raise UsageError("--force works on incremental runs: add --incremental (or config.incremental: true)")
        return
    for name in forced:
        if name not in job.tasks:
            near = closest(name, list(job.tasks))
            raise UsageError(f"--force {name}: no task of that name" + (f" (did you mean '{near}'?)" if near else ""))
    from .record import Record
    from .state import Incremental  # only now: see the state module's docstring

    record = Record(record_path(config, job))
    if config.getoption("cache_clear"):
        if not _looking_only(config) and record.clear():
            job.notes.append(f"--cache-clear: forgot what earlier incremental runs recorded ({record.path})")
    else:
        record.load()
        if record.outdated is not None:
            job.notes.append(
                f"the incremental record {record.path} was written by an older flowmancer (format "
                f"{record.outdated}): every task runs once, then is recorded anew"
            )
    state = config.stash[STATE] = Incremental(config, job, record)
    if _looking_only(config):
        for name, decision in state.plan().items():
            job.tasks[name].stash[PLAN_REASON] = decision
        return
    changes = os.environ.get("WATCHFILES_CHANGES")
    if changes is not None and sys.stdout is not None:  # a rerun of --watch: which tasks the change affects
        _separator(state, changes)


def _separator(state: Incremental, changes: str) -> None:
    try:
        paths = sorted({os.path.relpath(p, state.root) for _, p in json.loads(changes)})
    except (ValueError, TypeError):
        paths = []
    if not paths:
        return
    plan = state.plan()
    affected = [n for n, (runs, why) in plan.items() if runs and not why.startswith("runs only if")]
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    tasks = ", ".join(affected[:8]) + (f" and {len(affected) - 8} more" if len(affected) > 8 else "")
    print(f"\n{'─' * 20} {time.strftime('%H:%M:%S')} changed: {shown} -> {tasks or 'nothing to rerun'} {'─' * 20}")


@hookimpl
def flowmancer_task_reuse(job: Job, task: TaskRun) -> Optional[TaskResult]:
    state = _state(job.config)
    if state is None:
        return None
    why = task.stash[WHY] = state.reasons(task)
    rec = state.record.tasks.get(task.name)
    if why or rec is None:
        state.seen[task.name] = {d: state.results.get(d) for d in task.dependencies}
        return None
    state.restore(task, rec)
    state.settled(task.name, rec)
    return TaskResult(name=task.name, state=S.COMPLETED, up_to_date=rec.get("ran"))


@hookimpl
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    state = _state(job.config)
    if state is None:
        return
    if task.attempt == 1:
        state.writes[task.name] = {}
        state.record.started(task.name, time.time())
    terminal = job.config.pluginmanager.get_plugin("terminalreporter")
    why = task.stash.get(WHY)
    if why and terminal is not None and getattr(terminal, "verbosity", 0) > 0:
        terminal.line(f"  {'why':<10} {task.name}  {'; '.join(why)}")


@hookimpl
def flowmancer_task_shared_dict(job: Job, task: TaskRun, key: Any, value: Any, deleted: bool) -> None:
    state = _state(job.config)
    if state is None or task.name not in state.writes:
        return
    k = encode(key)
    state.writes[task.name][json.dumps(k, sort_keys=True)] = [k, None if deleted else encode_value(value)]


@hookimpl
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    state = _state(job.config)
    if state is None or result.up_to_date is not None or result.will_retry:
        return
    if result.state is S.COMPLETED and result.start is not None:
        rec = state.new_record(task, result)
        state.record.put(task.name, rec)
        state.settled(task.name, rec)
    else:
        state.settled(task.name, None)


@hookimpl
def flowmancer_task_not_run(job: Job, task: TaskRun, result: TaskResult) -> None:
    """Restored by ``-r`` or deselected: dependents compare what its last completed run wrote."""
    state = _state(job.config)
    if state is not None:
        state.settled(task.name, state.record.tasks.get(task.name))


@hookimpl
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    state = _state(job.config)
    if state is not None:
        try:
            state.record.compact(set(job.tasks))
        finally:
            state.record.close()


@hookimpl
def flowmancer_unconfigure(config: Config) -> None:
    state = _state(config)
    if state is not None:
        state.record.close()
