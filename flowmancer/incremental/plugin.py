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
from typing import Any, Optional

from ..checkpointer.codec import _lossy, decode, encode, encode_value
from ..checkpointer.file import FileCheckpointer
from ..config import Config
from ..errors import UsageError, closest
from ..files import file_name
from ..job import Job, TaskRun
from ..jobdef.models import ConfigSchema
from ..markers import hookimpl
from ..plan import PLAN_REASON, ordered
from ..stash import StashKey
from ..states import ExecutionState, TaskResult
from . import fingerprint as fpr
from .decide import Fingerprint, dep_reasons, own_reasons, summary, when
from .record import Record

S = ExecutionState
STATE = StashKey["Incremental"]("incremental")
#: why a task of an incremental run runs (empty: it is up to date)
WHY = StashKey[list[str]]("incremental.why")
#: a task's recorded shared_dict writes larger than this (as JSON) are not recorded: it always reruns
MAX_WRITES = 1 << 20


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


class Incremental:
    """The state of one incremental run."""

    def __init__(self, config: Config, job: Job, record: Record) -> None:
        self.job = job
        self.root = config.rootdir
        self.code = fpr.CodeIndex(config.rootdir)
        self.record = record
        self.forced = set(config.getoption("force") or ())
        self.results: dict[str, Optional[dict[str, Any]]] = {}  # task -> what its dependents compare
        self.fps: dict[str, Fingerprint] = {}
        self.seen: dict[str, dict[str, Any]] = {}  # task -> its dependencies' results when it started
        self.writes: dict[str, dict[str, list[Any]]] = {}  # task -> key -> [key, value] as JSON (None: deleted)

    def fingerprint(self, task: TaskRun) -> Fingerprint:
        module = task.cls.__module__
        d = task.definition
        rec = self.record.tasks.get(task.name) or {}
        fp = Fingerprint(
            cls=f"{module}:{task.cls.__qualname__}",
            params=fpr.parameters(task.instance),
            code=self.code.closure(module),
            libs=self.code.libraries(module),
            inputs=fpr.files(self.root, d.inputs, rec.get("inputs")),
            outputs=list(d.outputs),
        )
        self.fps[task.name] = fp
        return fp

    def own(self, task: TaskRun) -> list[str]:
        if not task.definition.cache:
            return ["cache: false"]
        if task.name in self.forced:
            return ["forced (--force)"]
        return own_reasons(self.fingerprint(task), self.record.tasks.get(task.name), self.root)

    def reasons(self, task: TaskRun) -> list[str]:
        """Why ``task`` must run now that its dependencies settled (empty: up to date)."""
        why = self.own(task)
        rec = self.record.tasks.get(task.name)
        if summary(rec) is not None:  # a completed run is recorded: every reason, not only the first kind
            why += dep_reasons(task.dependencies, rec.get("deps") or {}, self.results)  # type: ignore[union-attr]
        return why

    def plan(self) -> dict[str, tuple[bool, str]]:
        """Before anything runs: each task's decision as far as it is known (``--explain``, ``-n``)."""
        out: dict[str, tuple[bool, str]] = {}
        runs: dict[str, Optional[bool]] = {}  # True: runs; None: runs only if a dependency's result changes
        now: dict[str, Optional[dict[str, Any]]] = {}
        for t in ordered(self.job):
            if t.state.is_final:  # deselected, or restored by -r
                rec = self.record.tasks.get(t.name)
                now[t.name], runs[t.name] = summary(rec), False
                continue
            why = self.own(t)
            rec = self.record.tasks.get(t.name)
            waiting = [d for d in t.dependencies if runs.get(d) is not False]  # their results are not known yet
            if summary(rec) is not None:
                seen = {k: v for k, v in (rec.get("deps") or {}).items() if k not in waiting}  # type: ignore[union-attr]
                why += dep_reasons([d for d in t.dependencies if d not in waiting], seen, now)
            if why:
                runs[t.name], now[t.name] = True, None
                out[t.name] = (True, "; ".join(why))
            elif waiting:
                runs[t.name], now[t.name] = None, summary(rec)
                names = ", ".join(waiting)
                out[t.name] = (
                    True,
                    f"runs only if {names} write{'s' if len(waiting) == 1 else ''} new values or "
                    f"outputs; up to date otherwise (ran {when((rec or {}).get('ran'))})",
                )
            else:
                runs[t.name], now[t.name] = False, summary(rec)
                out[t.name] = (False, f"up to date (ran {when((rec or {}).get('ran'))})")
        return out

    def restore(self, task: TaskRun, rec: dict[str, Any]) -> None:
        """Replay the recorded ``shared_dict`` writes of an up-to-date task, as if it had run."""
        job = self.job
        for k_enc, v_enc in rec.get("writes") or []:
            key = decode(k_enc)
            if v_enc is None:
                job.shared_dict.pop(key, None)
                value = None
            else:
                value = job.shared_dict[key] = decode(v_enc)
            job.hook.flowmancer_task_shared_dict(job=job, task=task, key=key, value=value, deleted=v_enc is None)

    def new_record(self, task: TaskRun, result: TaskResult) -> dict[str, Any]:
        fp = self.fps.get(task.name) or self.fingerprint(task)
        writes = list(self.writes.pop(task.name, {}).values())
        outputs = fpr.files(self.root, task.definition.outputs)
        rec: dict[str, Any] = {
            "ran": result.end or time.time(),
            "cls": fp.cls,
            "params": fp.params,
            "code": fp.code,
            "libs": fp.libs,
            "inputs": fp.inputs,
            "outputs": outputs,
            "deps": self.seen.pop(task.name, {}),
            "writes": writes,
            "keys": {_shown_key(k): fpr.digest(json.dumps(v, sort_keys=True).encode()) for k, v in writes},
            "outdigest": fpr.digest(
                json.dumps({p: {f: d[0] for f, d in fs.items()} for p, fs in outputs.items()}, sort_keys=True).encode()
            ),
        }
        lost = next((x for x in (_lossy(v) for _, v in writes if v is not None) if x), "")
        size = len(json.dumps(writes))
        if lost:
            rec["uncacheable"] = f"its shared_dict writes cannot be recorded ({lost})"
        elif size > MAX_WRITES:
            rec["uncacheable"] = f"its shared_dict writes are too large to record ({size:,} bytes)"
        if rec.get("uncacheable"):
            rec["writes"] = []
        return rec


def _shown_key(k_enc: Any) -> str:
    key = decode(k_enc)
    return key if isinstance(key, str) else repr(key)


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
    state.results[task.name] = summary(rec)
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
        state.results[task.name] = summary(rec)
    else:
        state.results[task.name] = None


@hookimpl
def flowmancer_task_not_run(job: Job, task: TaskRun, result: TaskResult) -> None:
    """Restored by ``-r`` or deselected: dependents compare what its last completed run wrote."""
    state = _state(job.config)
    if state is not None:
        state.results[task.name] = summary(state.record.tasks.get(task.name))


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
