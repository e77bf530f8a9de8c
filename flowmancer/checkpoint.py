"""Built-in plugin ``checkpoint``: record every state change so ``-r`` resumes from the failure.

The default is a ``FileCheckpointer`` under ``<app root>/.flowmancer``, journaled: O(1) per change,
crash-safe. A ``checkpointer:`` class from the YAML gets full ``CheckpointContents`` instead, one write
at a time on the background loop (the newest state wins), and a final write when the run ends.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Optional

from . import components
from .checkpointer.checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError
from .checkpointer.codec import Unrestorable
from .checkpointer.file import FileCheckpointer
from .config import Config
from .events import ExecutionState, TaskResult
from .job import Job, TaskRun
from .markers import hookimpl

STASH_KEY = "flowmancer.checkpoint"
S = ExecutionState
KEY = "checkpointer"


@dataclass
class _State:
    cp: Checkpointer
    journal: bool  # a FileCheckpointer: append changes as they happen
    header: list[str] = field(default_factory=list)
    writing: bool = False
    dirty: bool = False


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


# -- restart ------------------------------------------------------------------------------------------


@hookimpl
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    if not config.option.restart:
        return
    st = _state(config)
    try:
        contents: CheckpointContents = _call(config, st.cp.read_checkpoint, job.name)
    except NoCheckpointAvailableError as exc:
        st.header.append(f"-r: no checkpoint for job '{job.name}' ({exc}); starting a new run")
        return
    restore(job, contents, st.header)


def restore(job: Job, contents: CheckpointContents, notes: list[str]) -> None:
    """Apply a checkpoint: COMPLETED tasks stay done, FAILED ones rerun with ``on_restart``, all else reruns."""
    state_of = {t: s for s, names in contents.states.items() for t in names}
    done = 0
    for t in job:
        s = state_of.get(t.name)
        if s is not None:
            t.stash["checkpoint_state"] = s  # for --dry-run and --graph
        if t.state.is_final:  # deselected by --skip/--only: the selection wins
            continue
        if s == S.COMPLETED.value:
            job.set_state(t, S.COMPLETED)
            t.result = TaskResult(name=t.name, state=S.COMPLETED, error="restored from checkpoint")
            done += 1
        elif s == S.FAILED.value:
            t.is_restart = True
    new = [t.name for t in job if t.name not in state_of]
    removed = sorted(set(state_of) - set(job.tasks))
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


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> list[str]:
    return _state(config).header


# -- writing ------------------------------------------------------------------------------------------


def _open_journal(job: Job, st: _State) -> None:
    assert isinstance(st.cp, FileCheckpointer)
    st.cp.open_journal(job.name, {t.name: t.state.value for t in job}, job.shared_dict)


def _write_full(job: Job, st: _State, final: bool = False) -> None:
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
        finally:
            st.writing = False

    bridge.call(KEY, write)


@hookimpl
def flowmancer_job_start(job: Job) -> None:
    st = _state(job.config)
    if st.journal:
        _open_journal(job, st)
    else:
        _write_full(job, st)


@hookimpl
def flowmancer_task_transition(job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState) -> None:
    st = job.config.stash.get(STASH_KEY)
    if st is None:
        return
    if st.journal and isinstance(st.cp, FileCheckpointer):
        if to_state is S.PENDING:  # -r treats PENDING like INIT: not worth a write
            return
        st.cp.record_state(task.name, to_state.value)
        if st.cp.needs_compaction():
            _open_journal(job, st)
    else:
        _write_full(job, st)


@hookimpl
def flowmancer_task_shared_dict(job: Job, task: TaskRun, key: Any, value: Any, deleted: bool) -> None:
    st = job.config.stash.get(STASH_KEY)
    if st is None:
        return
    if st.journal and isinstance(st.cp, FileCheckpointer):
        st.cp.record_shared(key, value, deleted)
    else:
        _write_full(job, st)


@hookimpl
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    st: Optional[_State] = job.config.stash.get(STASH_KEY)
    if st is None:
        return
    success = exitcode == 0
    if st.journal and isinstance(st.cp, FileCheckpointer):
        if success:
            st.cp.clear_checkpoint(job.name)
        st.cp.close_journal()
        return
    bridge = components.get(job.config).bridge
    if bridge is None:
        return
    if success:
        bridge.call(KEY, st.cp.clear_checkpoint, job.name)
    else:
        _write_full(job, st, final=True)
