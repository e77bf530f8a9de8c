"""Built-in plugin ``checkpoint``: record every state change so ``-r`` resumes from the failure.

The default is a ``FileCheckpointer`` under ``<app root>/.flowmancer``, journaled: O(1) per change,
crash-safe. A ``checkpointer:`` class from the YAML gets full ``CheckpointContents`` instead, one write
at a time on the background loop (the newest state wins), and a final write when the run ends.

A run owns its checkpoint: it locks it (``checkpointer.lock``) before reading it and until it ends. A
checkpoint that cannot be read is an error for ``-r`` (never a silent fresh start); one that cannot be
written stops the run before any task starts or, mid-run, cleanly, keeping what was recorded.
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from typing import Any, Optional

from .. import components
from ..config import Config
from ..errors import CheckpointError, UsageError, closest
from ..files import file_name
from ..job import Job, TaskRun
from ..markers import hookimpl
from ..stash import StashKey
from ..states import ExecutionState, TaskResult
from .checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError
from .codec import Unrestorable
from .file import START_OVER, FileCheckpointer, write_error
from .lock import RunLock

STASH_KEY = StashKey["_State"]("flowmancer.checkpoint")
#: a restart's checkpointed states, for the tasks a run-time fan-out makes again (``flowmancer_task_added``)
RESTORED = StashKey[dict[str, str]]("flowmancer.checkpoint.restored")
S = ExecutionState
KEY = "checkpointer"
#: while a custom checkpointer's write is under way and the state changed meanwhile, look again this soon
REWRITE_CHECK_SECONDS = 0.05


@dataclass
class _State:
    cp: Checkpointer
    journal: bool  # a FileCheckpointer: append changes as they happen
    writing: bool = False
    dirty: bool = False
    failed: Optional[BaseException] = None  # a custom checkpointer's write failed (set on the loop thread)
    lock: Optional[RunLock] = None


def _state(config: Config) -> _State:
    st = config.stash.get(STASH_KEY)
    if st is None:
        custom = components.get(config).checkpointer
        if custom is None:
            cp = FileCheckpointer()
            cp._fm_root = config.rootdir
            st = _State(cp, journal=True)
        else:
            st = _State(custom, journal=isinstance(custom, FileCheckpointer))
        config.stash[STASH_KEY] = st
    return st


def _call(config: Config, fn: Any, *args: Any) -> Any:
    """Call a checkpointer method, sync or async, and wait for it (reads happen before the run)."""
    bridge = components.get(config).bridge
    if bridge is not None and not isinstance(fn.__self__, FileCheckpointer):
        return bridge.run_now(fn, *args)
    r = fn(*args)
    if inspect.isawaitable(r):
        import asyncio  # only for a checkpointer that is async and runs without the event loop

        async def wait() -> Any:
            return await r

        return asyncio.run(wait())
    return r


def contents_of(job: Job) -> CheckpointContents:
    states: dict[str, set[str]] = {}
    for t in job:
        states.setdefault(t.state.value, set()).add(t.name)
    return CheckpointContents(name=job.name, states=states, shared_dict=dict(job.shared_dict))


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start over: ignore this job's checkpoint, even with -r (from addopts, say), and replace it",
    )
    parser.add_argument(
        "--mark-done",
        nargs="+",
        action="extend",
        default=[],
        metavar="TASK",
        help="with -r: treat these failed or not-run tasks as completed (they write no shared_dict values)",
    )


# -- the lock, and restart ----------------------------------------------------------------------------


def _looking_only(config: Config) -> bool:
    """``--dry-run``, ``--list``, ``--graph``: the checkpoint is only read, no lock is taken."""
    return any(config.getoption(o) for o in ("dry_run", "list", "graph"))


def lock_path(config: Config, st: _State, name: str) -> Any:
    if isinstance(st.cp, FileCheckpointer):
        return st.cp.prepare() / file_name(name, ".lock")
    helper = FileCheckpointer()  # a custom checkpointer's runs lock the default folder
    helper._fm_root = config.rootdir
    return helper.prepare() / file_name(name, ".lock")


@hookimpl(tryfirst=True)
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    st = _state(config)
    if not _looking_only(config):
        st.lock = RunLock(lock_path(config, st, job.name), job.name, config.jobdef_path)
        st.lock.acquire()  # before reading: a run reads the state no other run is writing
        if st.lock.fd is not None:
            job.hold_fds.append(st.lock.fd)
        if st.lock.warning:
            job.notes.append(st.lock.warning)
    marked = config.getoption("mark_done") or []
    if marked and not config.option.restart:
        raise UsageError("--mark-done works on a restart: add -r")
    for name in marked:
        if name not in job.tasks:
            near = closest(name, list(job.tasks))
            raise UsageError(
                f"--mark-done {name}: no task of that name" + (f" (did you mean '{near}'?)" if near else "")
            )
    if not config.option.restart:
        return
    if config.getoption("fresh"):
        job.notes.append("--fresh: starting over; the checkpoint of the last run is replaced")
        return
    try:
        contents = _read(config, st.cp, job.name)
    except NoCheckpointAvailableError as exc:
        job.notes.append(f"-r: no checkpoint for job '{job.name}' ({exc}); starting a new run")
        legacy = config.rootdir / ".flowmancer" / "flowmancer.jsonl"
        if "name" not in job.jobdef.model.config.model_fields_set and legacy.exists():
            job.notes.append(
                f"-r: {legacy} is the checkpoint of a job without config.name written by an earlier flowmancer "
                "(unnamed jobs now have one each): set `config: {name: flowmancer}` once to resume it"
            )
        mark_done(job, marked)
        return
    restore(job, contents, job.notes)
    mark_done(job, marked)


def mark_done(job: Job, names: list[str]) -> None:
    """``-r --mark-done``: the named tasks count as completed on this restart, without running."""
    done = []
    for name in names:
        t = job.tasks[name]
        if t.state is S.COMPLETED:
            job.notes.append(f"--mark-done {name}: completed in the checkpoint already")
            continue
        if t.state.is_final:  # deselected by the selection: it does not run either way
            continue
        t.is_restart = False
        job.set_state(t, S.COMPLETED)
        t.result = TaskResult(name=t.name, state=S.COMPLETED, error="marked done (--mark-done)")
        done.append(name)
    if done:
        job.notes.append(
            f"--mark-done: {', '.join(done)} treated as completed without running (no shared_dict values from "
            f"{'them' if len(done) > 1 else 'it'})"
        )


def _read(config: Config, cp: Checkpointer, name: str) -> CheckpointContents:
    """``read_checkpoint``, with what a custom one returns or raises made into a clear error."""
    cls = type(cp).__name__
    try:
        contents = _call(config, cp.read_checkpoint, name)
    except (NoCheckpointAvailableError, CheckpointError):
        raise
    except Exception as exc:  # noqa: BLE001 - a checkpointer's failure, explained
        raise CheckpointError(
            f"{cls}.read_checkpoint({name!r}) failed: {type(exc).__name__}: {exc}",
            f"fix what it reads from; {START_OVER}",
        ) from None
    if not isinstance(contents, CheckpointContents):
        raise CheckpointError(
            f"{cls}.read_checkpoint({name!r}) returned {type(contents).__name__}, not CheckpointContents",
            "return CheckpointContents(name, states, shared_dict), or raise NoCheckpointAvailableError when "
            "there is no checkpoint",
        )
    if not isinstance(contents.states, dict) or not isinstance(contents.shared_dict, dict):
        raise CheckpointError(
            f"{cls}.read_checkpoint({name!r}) returned contents whose states or shared_dict is not a dict",
            "states maps a state name to a set of task names; shared_dict is a dict",
        )
    return contents


def restore(job: Job, contents: CheckpointContents, notes: list[str]) -> None:
    """Apply a checkpoint: COMPLETED tasks stay done, FAILED ones rerun with ``on_restart``, all else reruns."""
    state_of = {t: str(s) for s, names in contents.states.items() for t in names}
    job.stash[RESTORED] = state_of
    done = 0
    fanouts = [t.name + "[" for t in job if t.definition.deferred]
    for t in job:
        s = state_of.get(t.name)
        if s is not None:
            t.checkpoint_state = s
        if t.state.is_final:  # deselected by --skip/--only: the selection wins
            continue
        if t.definition.deferred:  # expands again (from the restored shared_dict): its instances are restored then
            continue
        done += _restore(job, t, s)
    new = [t.name for t in job if t.name not in state_of]
    removed = sorted(n for n in set(state_of) - set(job.tasks) if not n.startswith(tuple(fanouts)))
    dropped = []
    for k, v in contents.shared_dict.items():
        if isinstance(v, Unrestorable):
            dropped.append(f"{k!r} ({v.type_name})")
        else:
            job.shared_dict[k] = v
    job.restart = True
    notes.append(f"resuming from checkpoint: {done} completed task{'s' if done != 1 else ''} will not rerun")
    if new:
        notes.append(f"WARNING: tasks not in the checkpoint (new in the job), will run: {', '.join(new)}")
    if removed:
        notes.append(f"WARNING: tasks in the checkpoint but no longer in the job, dropped: {', '.join(removed)}")
    if dropped:
        notes.append(f"WARNING: shared_dict values that could not be checkpointed, not restored: {', '.join(dropped)}")


def _restore(job: Job, t: TaskRun, state: Optional[str]) -> int:
    """A task's checkpointed state on a restart: COMPLETED stays done (1), FAILED reruns with ``on_restart``."""
    if state == S.COMPLETED.value:
        job.set_state(t, S.COMPLETED)
        t.result = TaskResult(name=t.name, state=S.COMPLETED, error="restored from checkpoint")
        return 1
    if state == S.FAILED.value:
        t.is_restart = True
    return 0


@hookimpl
def flowmancer_task_added(job: Job, task: TaskRun) -> None:
    state_of = job.stash.get(RESTORED)
    if state_of and task.name in state_of:
        task.checkpoint_state = state_of[task.name]
        _restore(job, task, state_of[task.name])


# -- writing ------------------------------------------------------------------------------------------


def _open_journal(job: Job, st: _State) -> None:
    assert isinstance(st.cp, FileCheckpointer)
    st.cp.open_journal(job.name, {t.name: t.state.value for t in job}, job.shared_dict)


def _failed_midrun(job: Job, st: _State, exc: BaseException) -> None:
    """The checkpoint cannot be written any more: stop the run cleanly (what was recorded stays readable)."""
    if isinstance(st.cp, FileCheckpointer):
        st.cp.close_journal()
    if job.error is not None:
        return
    error = exc if isinstance(exc, CheckpointError) else CheckpointError(f"{type(st.cp).__name__}: {exc}", "")
    job.error = CheckpointError(
        f"{error.message}; the run was stopped (running tasks aborted) since what it does could not be recorded",
        f"{error.hint + '; then ' if error.hint else ''}run again with -r to resume from what was recorded",
    )
    job.stop(abort=True, reason="the checkpoint could not be written")


def _write_full(job: Job, st: _State, final: bool = False) -> None:
    """A custom checkpointer's write of the full contents, queued on the background loop."""
    st.dirty = True
    bridge = components.get(job.config).bridge
    if bridge is None or (st.writing and not final):
        return
    st.writing, st.dirty = True, False
    contents = contents_of(job)

    async def write() -> None:
        try:
            r = st.cp.write_checkpoint(job.name, contents)
            if inspect.isawaitable(r):
                await r
        except Exception as exc:  # noqa: BLE001 - taken up on the scheduler thread (runjob_idle)
            st.failed = exc
            if final:  # the run is over: nothing left to stop, say it
                components.report_error(f"checkpointer ({type(st.cp).__name__})", "write_checkpoint", exc)
        finally:
            st.writing = False

    bridge.call(KEY, write)


@hookimpl
def flowmancer_job_start(job: Job) -> None:
    """The first write happens before any task starts, so a checkpoint that cannot be written stops the run
    here (``CheckpointError``), not half-way."""
    st = _state(job.config)
    if st.journal:
        _open_journal(job, st)
        return
    try:
        _call(job.config, st.cp.write_checkpoint, job.name, contents_of(job))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{type(st.cp).__name__}.write_checkpoint({job.name!r}) failed before any task started: "
            f"{type(exc).__name__}: {exc}",
            "fix what it writes to (or use the default FileCheckpointer); nothing ran",
        ) from None


@hookimpl
def flowmancer_task_transition(job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState) -> None:
    st = job.config.stash.get(STASH_KEY)
    if st is None or job.error is not None:
        return
    if st.journal and isinstance(st.cp, FileCheckpointer):
        if to_state is S.PENDING:  # -r treats PENDING like INIT: not worth a write
            return
        try:
            st.cp.record_state(task.name, to_state.value)
            if st.cp.needs_compaction():
                _open_journal(job, st)
        except (OSError, CheckpointError) as exc:
            _failed_midrun(job, st, _as_error(job, st, exc))
    else:
        _write_full(job, st)


@hookimpl
def flowmancer_task_shared_dict(job: Job, task: TaskRun, key: Any, value: Any, deleted: bool) -> None:
    st = job.config.stash.get(STASH_KEY)
    if st is None or job.error is not None:
        return
    if st.journal and isinstance(st.cp, FileCheckpointer):
        try:
            st.cp.record_shared(key, value, deleted)
        except OSError as exc:
            _failed_midrun(job, st, _as_error(job, st, exc))
    else:
        _write_full(job, st)


def _as_error(job: Job, st: _State, exc: BaseException) -> BaseException:
    if isinstance(exc, OSError) and isinstance(st.cp, FileCheckpointer):
        return write_error(st.cp.path_for(job.name), exc)
    return exc


@hookimpl
def flowmancer_runjob_idle(job: Job) -> Optional[float]:
    st = job.config.stash.get(STASH_KEY)
    if st is None or st.journal:
        return None
    if st.failed is not None:
        _failed_midrun(job, st, st.failed)
        return None
    if st.dirty and job.error is None:
        _write_full(job, st)  # changes made while the last write was under way: the newest state wins
    return REWRITE_CHECK_SECONDS if st.dirty else None


@hookimpl
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    st = job.config.stash.get(STASH_KEY)
    if st is None:
        return
    success = exitcode == 0
    if isinstance(st.cp, FileCheckpointer) and st.journal:
        if success:
            st.cp.clear_checkpoint(job.name)
        st.cp.close_journal()
        return
    bridge = components.get(job.config).bridge
    if bridge is None or job.error is not None:
        return
    _write_full(job, st, final=True)  # the final states, kept in a checkpointer's history
    if success:
        bridge.call(KEY, st.cp.clear_checkpoint, job.name)


@hookimpl
def flowmancer_unconfigure(config: Config) -> None:
    st = config.stash.get(STASH_KEY)
    if st is not None and st.lock is not None:
        st.lock.release()
