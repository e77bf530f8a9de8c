"""The next tasks of a serial stretch, prepared while the current one runs (local executor, fork server).

In a chain each start used to wait for the fork server to wake, build the task's arguments and fork (about
1.5 ms of a 2.6 ms hop on a 2-core VM). When one task runs alone, the server is asked now for the processes
of the next tasks of its chain (each the only task waiting, and only, for the one before:
``ForkServer.prepare``): forked and set up (pipes, signals, logging), each waits before running any of its
task's code. When the scheduler starts such a task, if its arguments pickle to the same bytes as those its
process was prepared with, one write tells the process to go, with the changes to ``shared_dict`` since;
else (a hook changed the task) the process is let go (it exits without a word) and the task starts the usual
way. At most ``LOOKAHEAD`` processes wait; those the run does not take go when it turns elsewhere or ends.
Nothing runs twice: a prepared process runs only when told, once.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from typing import TYPE_CHECKING, Any, Optional

from . import output
from .stash import StashKey
from .states import ExecutionState as S

if TYPE_CHECKING:
    from .forkserver import ForkServer, ServedChild
    from .job import Job, TaskRun
    from .output import OutputReader

#: the prepared processes waiting, by task name
_WAITING = StashKey[dict[str, "Prepared"]]("prepared.waiting")
#: how many tasks ahead a chain's processes are prepared: one more than the next, so that a fork (~1 ms here)
#: is never what a short task's successor waits for
LOOKAHEAD = 4
#: prepared in batches (the server forks a batch back to back: each fork makes the server's next writes
#: copy pages, ~300 of them between two lone requests): refilled when fewer than this many wait
REFILL_BELOW = 2
_DONE_WITH = {S.COMPLETED, S.SKIPPED, S.DEFAULTED}


def attempt_args(job: Job, task: TaskRun, attempt: int) -> tuple[Any, ...]:
    """The task process's arguments for ``attempt`` of ``task``: instance, info, ``shared_dict``, workdir,
    memory limit."""
    info = task.info(job.name)
    if info.attempt != attempt:
        info = dataclasses.replace(info, attempt=attempt)
    return (task.instance, info, job.shared_dict, str(job.config.rootdir), task.settings.memory_limit_mb)


def payload(args: tuple[Any, ...]) -> Optional[bytes]:
    """What the fork server gets (it keeps its own replica of ``shared_dict``); ``None``: pickle cannot."""
    instance, info, _snapshot, workdir, memory_limit_mb = args
    try:
        return pickle.dumps((instance, info, workdir, memory_limit_mb), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a parameter value pickle cannot take
        return None


class Prepared:
    """A prepared task process and what the scheduler keeps of it."""

    def __init__(self, server: ForkServer, name: str, data: bytes) -> None:
        self.server, self.name, self.payload = server, name, data
        self.outputs, (out_w, err_w) = output.pipes()
        self.event_r, event_w = os.pipe()
        go_r, self.go_w = os.pipe()
        os.set_blocking(self.go_w, False)
        try:
            self.child, self.version = server.prepare(data, (event_w, out_w, err_w, go_r))
        except BaseException:
            self._close()
            raise
        finally:
            for fd in (event_w, out_w, err_w, go_r):
                os.close(fd)

    def go(self, job: Job) -> bool:
        try:
            server = self.server
            ok = server.alive and server.sync_shared(job.shared_dict) and server.go(self.go_w, self.version)
        except Exception:  # noqa: BLE001 - ServerGone: the task starts the usual way
            ok = False
        os.close(self.go_w)
        self.go_w = -1
        return ok

    def let_go(self) -> None:
        """Not to run: its go pipe closes (it exits), and nothing it would say is read."""
        self.server.let_go(self.child)
        self._close()

    def _close(self) -> None:
        for fd in (self.go_w, self.event_r):
            if fd >= 0:
                os.close(fd)
        self.go_w = self.event_r = -1
        for r in self.outputs:
            r.close()


def _single_next(job: Job, task: TaskRun, done: set[str]) -> Optional[TaskRun]:
    """The one task that waits for ``task`` only (the others it waits for being done, or in ``done``)."""
    nxt: Optional[TaskRun] = None
    for name in task.dependents:
        t = job.tasks[name]
        if t.definition.deferred:  # a run-time fan-out: its own tasks are not known yet
            return None
        if t.state is S.INIT and t.attempt == 0:
            if nxt is not None:
                return None  # a fan-out: the server forks those in one batch anyway
            nxt = t
    if nxt is None or any(job.tasks[d].state not in _DONE_WITH and d not in done for d in nxt.dependencies):
        return None
    return nxt


def prepare_next(job: Job, task: TaskRun, server: ForkServer) -> None:
    """``task`` started: if it runs alone, prepare the processes of the next ``LOOKAHEAD`` tasks of its
    chain (each the only task waiting, and only, for the one before)."""
    if len(job.running) != 1 or job.stopping:
        return
    chain: list[TaskRun] = []
    done = {task.name}
    t: Optional[TaskRun] = task
    while len(chain) < LOOKAHEAD and t is not None:
        t = _single_next(job, t, done)
        if t is not None:
            chain.append(t)
            done.add(t.name)
    waiting = job.stash.setdefault(_WAITING, {})
    for name in [n for n in waiting if n not in done]:  # the run went another way
        waiting.pop(name).let_go()
    if sum(t.name in waiting for t in chain) >= REFILL_BELOW or not server.poll():
        return
    from .forkserver import ServerGone

    for t in chain:
        if t.name in waiting or not server.serves(t.cls.__module__):
            continue
        data = payload(attempt_args(job, t, 1))
        if data is None:
            return
        try:
            waiting[t.name] = Prepared(server, t.name, data)
        except (ServerGone, OSError):  # out of descriptors, say: the task starts the usual way
            return


def take(job: Job, task: TaskRun, args: tuple[Any, ...]) -> Optional[tuple[ServedChild, tuple[OutputReader, ...], int]]:
    """The prepared process of ``task``, told to go, if there is one for these arguments: the child, its
    output readers and its event pipe's read end."""
    waiting = job.stash.get(_WAITING)
    ready = None if waiting is None else waiting.pop(task.name, None)
    if ready is None:
        return None
    if payload(args) == ready.payload and ready.go(job):
        return ready.child, ready.outputs, ready.event_r
    ready.let_go()
    return None


def let_go(job: Job) -> None:
    """Let the waiting processes go (the job ends)."""
    for ready in job.stash.pop(_WAITING, {}).values():
        ready.let_go()
