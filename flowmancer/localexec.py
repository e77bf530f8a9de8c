"""The built-in local executor (plugin ``localexec``, formerly ``spawn``): one OS process per task attempt.

The parent hands the child plain data (the validated task instance, its ``TaskInfo``, a snapshot of
``shared_dict``) and listens on four things the scheduler can ``wait()`` on: the event pipe, the two
output pipes (the task's descriptors 1 and 2, see ``output``) and the process sentinel.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any, Optional, Union

from . import messages, output, prepared
from .executor import TaskHandle, signal_group
from .lifeline import Guardian, fork_is_safe
from .markers import hookimpl
from .pipes import ConnectionReader, PipeReader, PipeWriter
from .process import Child, MPChild, block_sigterm, fork_child, pidfds_work, start_method, unblock
from .stash import StashKey
from .worker import Attempt, child_main, module_files

if TYPE_CHECKING:
    from .config import Config
    from .forkserver import ForkServer
    from .job import Job, TaskRun


class ProcessHandle(TaskHandle):
    """One attempt in a task process of this machine (see ``process``), forked here or by the fork server."""

    def __init__(self, job: Job, task: TaskRun) -> None:
        method = start_method()
        forking = method == "fork" and pidfds_work()  # else multiprocessing's fork or spawn context
        self.conn: Union[PipeReader, ConnectionReader]
        # no copy of shared_dict per spawn: a forked child sees it as of the fork, the rest pickle it now
        args = prepared.attempt_args(job, task, task.attempt)
        ready = prepared.take(job, task, args) if forking else None
        proc: Child
        if ready is not None:
            proc, self.outputs, event_r = ready
            self.conn = PipeReader(event_r)
        else:
            proc = self._start(job, task, method, forking, args)
        self.proc: Child = proc
        if not proc.served and proc.pid is not None:  # the server does this for its children
            try:  # also set from here: no window in which a signal to the group misses the child
                os.setpgid(proc.pid, proc.pid)
            except OSError:
                pass
        self._conn_open = True
        self._reported = False  # a finished event arrived
        self._sentinel_watched = False
        self._exited = False  # the process is gone and its pipes are drained
        self.finished: Optional[messages.ExitEvent] = None

    def _start(self, job: Job, task: TaskRun, method: str, forking: bool, args: tuple[Any, ...]) -> Child:
        child_conn: Any = None
        self.outputs, (out_w, err_w) = output.pipes()
        if forking:  # the child writes with PipeWriter: a plain pipe, no Connection objects
            event_r, event_w = os.pipe()
            self.conn = PipeReader(event_r)
        else:
            import multiprocessing  # only here: a run that forks never needs it

            parent_conn, child_conn = multiprocessing.get_context(method).Pipe(duplex=False)
            self.conn = ConnectionReader(parent_conn)
        # Beside another thread (see lifeline.fork_is_safe) only the fork server forks, or a fresh interpreter runs it.
        threaded = forking and not fork_is_safe()
        proc: Optional[Child] = None
        try:
            # A fork server's child needs nothing from this process: the server blocks SIGTERM around its forks.
            if forking:
                proc = _served(job, task, args, (event_w, out_w, err_w), wait=threaded)
            if proc is None:
                sys.stdout.flush()
                sys.stderr.flush()
                blocked = block_sigterm()
                try:
                    if forking and not threaded:
                        proc = _fork_here(job, task, args, (event_w, out_w, err_w))
                    else:
                        if forking:  # the same framing as PipeWriter's: the reader cannot tell
                            from multiprocessing.connection import Connection

                            method, child_conn = "spawn", Connection(os.dup(event_w), readable=False)
                        proc = _start_mp(job, task, method, child_conn, (out_w, err_w), args)
                finally:
                    unblock(blocked)
        finally:
            if forking:
                os.close(event_w)
            if child_conn is not None:
                child_conn.close()
            os.close(out_w)
            os.close(err_w)
        assert proc is not None  # made above, whichever way
        return proc

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid

    def _lost(self) -> bool:
        """Forked by a fork server that died before telling us its pid (see ``ServedChild.lost``)."""
        return self.proc.lost

    def _answered(self) -> bool:
        """A fork server's child: has its pid arrived? (Always true for a process made here.)"""
        return self.proc.answered()

    def waiting(self) -> bool:
        """Waiting for the fork server (its answer, or the exit code of a process that has ended): what it
        sends may be read while the scheduler handles something else (one read takes everything)."""
        return self.finished is None and (self._exited or not self._answered())

    def waitables(self) -> list[Any]:
        if self.finished is not None:
            return []
        out: list[Any]
        if self._exited:  # its pipes are drained: only the fork server's exit code is missing
            return [self.proc.notifier]
        if not self._answered():  # shared with the server's other unanswered children: see release
            out = [self.proc.notifier]
        elif self._lost():
            out = []
        else:
            out = [self.proc.sentinel]
            self._sentinel_watched = True
        if self._conn_open:
            out.append(self.conn)
        out += [r for r in self.outputs if r.open]
        return out

    def release(self, waitable: Any) -> None:
        if waitable is self.proc.notifier:
            return  # the fork server's socket: it closes that at the end of the job
        if waitable is self.conn:
            self.conn.close()
        elif waitable in self.outputs:
            waitable.close()
        elif waitable == self.proc.sentinel and self.proc.owns_sentinel:
            self.proc.close()  # our pidfd (ForkedChild, ServedChild); multiprocessing closes its own

    def _read_conn(self, events: list[messages.Event]) -> None:
        if self._conn_open:
            got, eof = self.conn.read()
            events += got
            if eof:
                self._conn_open = False

    def drain(self) -> list[messages.Event]:
        """Output already in the pipes when the task reported its result (it wrote them before): all of it,
        a last line without its end included."""
        events: list[messages.Event] = []
        for r in self.outputs:
            r.read(events, partial=True)
        return events

    def read(self, ready: set[Any]) -> list[messages.Event]:
        events: list[messages.Event] = []
        notifier = self.proc.notifier
        if notifier is not None and notifier in ready:
            self.proc.take_news()  # file what it sent (the scheduler then asks for waitables again)
        self._answered()  # settles lost-or-not now if it can: a lost task's pipes may have ended in this wake-up
        lost = self._lost()
        if not self._exited:
            # Only a sentinel the scheduler watched counts: one that arrived during this wake-up may have the
            # number of a descriptor another handle closed meanwhile, which is in ``ready``.
            done = self._sentinel_watched and self.proc.sentinel in ready
            if done or self.conn in ready:
                self._read_conn(events)
            if lost and not self._conn_open:  # the end of its event pipe: the task process, if any, is done
                done = True
            logs: list[messages.Event] = []
            for r in self.outputs:
                if r.open and (done or r in ready):
                    r.read(logs, final=done)
            if logs:  # written before anything the event pipe says now (a result): first
                events[:0] = logs
            self._reported = self._reported or any(ev["event"] == "finished" for ev in events)
            if done:
                self._exited = True
                self._conn_open = False
                for r in self.outputs:
                    r.open = False
        if self._exited and self.proc.exit_known():  # a fork server reports exit codes a moment later
            self.proc.join()
            if lost and not self._reported:
                events.append(
                    messages.crash(
                        "the fork server stopped before the task reported a result (set FLOWMANCER_FORK_SERVER=0 "
                        "to fork directly)"
                    )
                )
            self.finished = messages.exited(self.proc.exitcode)
            events.append(self.finished)
        return events

    def _signal_group(self, sig: int) -> None:
        if not self._exited and self.proc.pid is not None and self.proc.exitcode is None:
            signal_group(self.proc.pid, sig)

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)


def _fork_here(job: Job, task: TaskRun, args: tuple[Any, ...], fds: tuple[int, int, int]) -> Child:
    """Fork ``task``'s process from this one (single-threaded: see ``ProcessHandle``)."""
    guardian = _guardian(job)
    event_w, out_w, err_w = fds
    files = _module_files(job)
    attempt = Attempt(PipeWriter(event_w), task.instance, args[1], args[2], args[4], files)  # built here: see Attempt
    keep = (event_w, out_w, err_w, *job.module_fds)
    forked = fork_child(attempt.run, (out_w, err_w, args[3]), keep, guardian.remove if guardian else None)
    if guardian is not None:
        guardian.add(forked.pid)
    return forked


def _start_mp(job: Job, task: TaskRun, method: str, conn: Any, out: tuple[int, int], args: tuple[Any, ...]) -> Child:
    """Start ``task``'s process with ``multiprocessing`` (``spawn``: a fresh interpreter, which pickles its
    arguments); on Linux the job's guardian watches it too."""
    import multiprocessing
    from multiprocessing.connection import Connection  # carries a descriptor to the child

    guardian = _guardian(job) if pidfds_work() else None
    out_c, err_c = Connection(os.dup(out[0]), readable=False), Connection(os.dup(out[1]), readable=False)
    ctx: Any = multiprocessing.get_context(method)
    mp = ctx.Process(target=child_main, args=(conn, out_c, err_c, *args), name=f"flowmancer:{task.name}", daemon=True)
    try:
        mp.start()
    finally:
        out_c.close()
        err_c.close()
    if guardian is not None:
        guardian.add(mp.pid)
    return MPChild(mp, guardian.remove if guardian else None)


# -- the fork server ---------------------------------------------------------------------------------

#: the job's fork server, if any, and whether that was decided for a process that must not fork itself
_SERVER = StashKey[tuple[Optional["ForkServer"], bool]]("localexec.forkserver")
_GUARDIAN = StashKey[Optional[Guardian]]("localexec.guardian")
_FILES = StashKey[tuple[Any, ...]]("localexec.module_files")
#: the early server, stopped unused, to reap when the job ends
_UNUSED = StashKey["ForkServer"]("localexec.unused_forkserver")
#: jobs with at least this many tasks get a fork server (its start-up costs about one interpreter start)
FORK_SERVER_MIN_TASKS = 300


def take_early_server() -> Optional[ForkServer]:
    """The fork server ``flowmancer`` started with the process (``forkserver.prestart``), if any."""
    forkserver = sys.modules.get("flowmancer.forkserver")  # not imported: none was started
    return None if forkserver is None else forkserver.take_early()  # type: ignore[no-any-return]


def _server(job: Job, needed: bool = False) -> Optional[ForkServer]:
    """The job's fork server: the one started with the process for any job of two tasks or more, else one
    started now when the job is big enough to pay for its start-up, or when ``needed`` (this process must not
    fork). ``FLOWMANCER_FORK_SERVER=1``: always; ``0``: never."""
    if _SERVER in job.stash:
        server, decided_needed = job.stash[_SERVER]
        if server is not None or decided_needed or not needed:
            return server
    wanted = os.environ.get("FLOWMANCER_FORK_SERVER", "")
    server = take_early_server()
    modules: dict[str, Optional[str]] = {}
    for t in job:
        module = sys.modules.get(t.cls.__module__)
        file = getattr(module, "__file__", None)
        if file and t.cls.__module__ != "__main__":
            modules[t.cls.__module__] = file
    if server is not None and (not modules or wanted == "0" or (len(job.tasks) < 2 and not needed)):
        server.stop()  # reaped when the job ends: its exit (~3 ms) is not the first task's to wait for
        job.stash[_UNUSED] = server
        server = None
    elif server is None and modules and wanted != "0":
        if wanted == "1" or needed or len(job.tasks) >= FORK_SERVER_MIN_TASKS:
            from .forkserver import ForkServer  # only now: it pulls in the socket machinery

            server = ForkServer()
    if server is not None:
        server.load(modules, tuple(job.hold_fds))
    job.stash[_SERVER] = (server, needed)
    return server


def _module_files(job: Job) -> tuple[Any, ...]:
    """The files the app's modules hold (see ``worker.module_files``), found at the job's first direct fork."""
    if _FILES not in job.stash:
        job.stash[_FILES] = module_files(str(job.config.rootdir))
    return job.stash[_FILES]


def _guardian(job: Job) -> Optional[Guardian]:
    """The job's guardian of the task processes forked here (started with the first of them; Linux)."""
    if _GUARDIAN not in job.stash:
        job.stash[_GUARDIAN] = Guardian(job.hold_fds) if pidfds_work() else None
    return job.stash[_GUARDIAN]


def _served(
    job: Job, task: TaskRun, args: tuple[Any, ...], fds: tuple[int, int, int], wait: bool = False
) -> Optional[Any]:
    """Fork ``task`` in the job's fork server (``fds``: its event pipe and output pipes); ``None``: start it
    another way. ``wait``: this process must not fork, so have a server whatever the job's size, and wait
    for it to be ready."""
    server = _server(job, wait)
    if server is None or not (server.wait_ready() if wait else server.poll()) or not server.serves(task.cls.__module__):
        return None
    payload = prepared.payload(args)
    if payload is None:  # a parameter value pickle cannot take: fork here, where no copy is needed
        return None
    from .forkserver import ServerGone

    try:
        if not server.sync_shared(job.shared_dict):
            return None
        return server.spawn(payload, fds)
    except ServerGone:
        return None


@hookimpl(trylast=True)
def flowmancer_task_spawn(job: Job, task: TaskRun) -> ProcessHandle:
    return ProcessHandle(job, task)


@hookimpl
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    server, _ = job.stash.get(_SERVER, (None, False))
    if server is not None and isinstance(task.handle, ProcessHandle):
        prepared.prepare_next(job, task, server)


@hookimpl(wrapper=True)
def flowmancer_runjob(job: Job) -> Any:
    try:
        return (yield)
    finally:
        prepared.let_go(job)
        # Let go of the modules' files: a reference held past the run (the job may live in a cycle the frozen
        # collector never frees) would keep a buffered file from being flushed when the interpreter exits.
        job.stash.pop(_FILES, None)
        server, _ = job.stash.pop(_SERVER, (None, False))
        guardian = job.stash.pop(_GUARDIAN, None)
        try:
            for s in (server, job.stash.pop(_UNUSED, None)):
                if s is not None:
                    s.close()
        finally:
            if guardian is not None:
                guardian.close()


@hookimpl(trylast=True)
def flowmancer_unconfigure(config: Config) -> None:
    """Close the fork server ``flowmancer`` started with the process if no job used it (no job ran, or
    another executor ran it). A run that ends before it has a config leaves that to the server itself: it
    exits when this process does."""
    early = take_early_server()
    if early is not None:
        early.close()
