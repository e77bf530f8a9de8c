"""The child side: run one attempt of one task and report it over a pipe.

No plugin manager here. The child writes its output and ``logging`` records to its descriptors 1 and 2
(``output``), sends each ``shared_dict`` write at once (``taskio``), and ends with one ``finished`` event,
from its own process only.
Anything that kills it before that (``os._exit``, a signal, a segfault) is noticed by the parent from the
process sentinel.

A task process ends the way a Python program ends: its partial output lines and the files the app's modules
hold open are flushed, the ``atexit`` handlers registered while the task ran are called;
then it reports and exits with its code: 0, the ``sys.exit`` code, 1 after an exception, 143 when aborted.
"""

from __future__ import annotations

import _signal  # signal's C half: the Python wrappers convert to enums, which costs a task process page copies
import faulthandler
import io
import os
import pickle
import signal
import sys
import time
import traceback
from typing import Any, Optional

from . import messages
from .output import frame
from .task import Task, TaskInfo
from .taskio import Sender, SharedDict, text_stream
from .teardown import ExitHandlers, flush_files, module_files

__all__ = ["ABORTED_EXIT", "Attempt", "TaskAborted", "child_main", "module_files"]
from .tasklog import Capture

#: the exit code of a task process that was aborted (it handled SIGTERM): 128 + 15, as a shell reports it
ABORTED_EXIT = 143


class TaskAborted(BaseException):
    """Raised in the task's main thread when the run is interrupted (SIGTERM from the parent)."""


def _safe_str(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` raises (its failure must still be reported)."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return f"<{type(exc).__name__}: its str() raised>"


def _format_exc(exc: BaseException) -> str:
    """The traceback without flowmancer's own frames, so the user's code is what they see."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")
    except Exception:  # noqa: BLE001
        return f"{type(exc).__name__}: {_safe_str(exc)}"


def exception_names(cls: type[BaseException]) -> list[str]:
    """``ValueError``, ``builtins.ValueError``, then the same for each base class: what retry_on matches."""
    out: list[str] = []
    for c in cls.__mro__:
        if c is object:
            break
        out += [c.__name__, f"{c.__module__}.{c.__qualname__}"]
    return out


def limit_memory(megabytes: int) -> None:
    """Allow ``megabytes`` of new allocations beyond what the process has at start (Linux: RLIMIT_DATA).
    ``ValueError`` if the kernel will not: the limit would be above this process's hard limit."""
    import resource

    extra = megabytes * 1024 * 1024
    try:
        with open("/proc/self/status") as f:
            data_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmData:"))
    except (OSError, StopIteration, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (extra, extra))
        return
    limit = data_kb * 1024 + extra
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    if hard != resource.RLIM_INFINITY and limit > hard:
        raise ValueError(f"it is above this process's hard limit of {hard // (1024 * 1024)} MB (ulimit -d)")
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _exit_failed(exc: SystemExit) -> bool:
    return exc.code not in (0, None)


def _exit_status(exc: SystemExit) -> int:
    """The status Python exits with for ``sys.exit(code)``."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _leave(exc: Optional[BaseException]) -> None:
    """A process the task forked came back into this code (its ``run`` returned or raised): end it as Python
    ends a program, without reporting anything for the task (only the task's own process does)."""
    code = 0
    if isinstance(exc, SystemExit):
        code = _exit_status(exc)
    elif exc is not None and not isinstance(exc, TaskAborted):
        print(_format_exc(exc), file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


class _Lifecycle:
    def __init__(self, task: Task, send: Sender, info: TaskInfo, out: io.TextIOBase) -> None:
        self.task = task
        self.send = send
        self.info = info
        self.out = out  # the task's stdout, where its tracebacks go, in order with what it printed
        self.error: Optional[str] = None
        self.tb: Optional[str] = None
        self.aborted = False
        self._abort_done = False
        self.kind: Optional[str] = None
        self.exc_types: list[str] = []
        self.memory_limit_mb: Optional[int] = None
        self.status = 1  # the exit status of a failed attempt

    @property
    def exit_code(self) -> int:
        if self.aborted:
            return ABORTED_EXIT
        return 0 if self.error is None else self.status

    def _fail(self, stage: str, exc: BaseException) -> None:
        text = _format_exc(exc)
        if isinstance(exc, SystemExit):
            summary = f"{stage}() called sys.exit({exc.code!r})"
        else:
            summary = f"{stage}() raised {type(exc).__name__}: {_safe_str(exc)}".rstrip(": ")
            if isinstance(exc, MemoryError) and self.memory_limit_mb:
                summary += f" (memory limit of {self.memory_limit_mb} MB reached: memory_limit_mb)"
        try:
            self.out.write(frame("traceback", "ERROR", text.split("\n"), time.time()))
        except (OSError, ValueError):  # the task closed its stdout, or the runner is gone: the report still goes
            pass
        if self.error is None:
            self.error, self.tb = summary, text
            self.kind = "exit" if isinstance(exc, SystemExit) else "exception"
            self.exc_types = exception_names(type(exc))
            self.status = _exit_status(exc) if isinstance(exc, SystemExit) else 1

    def fail(self, error: str, kind: str = "exception") -> None:
        """A failure that is not an exception of the task's code."""
        if self.error is None:
            self.error, self.kind = error, kind

    def call(self, stage: str) -> bool:
        caught: Optional[BaseException] = None
        try:
            getattr(self.task, stage)()
        except BaseException as exc:  # noqa: BLE001 - the task's failure is data, not our crash
            caught = exc
        if os.getpid() != self.send.owner:  # a process the task forked, returning here: not the task
            _leave(caught)
        if caught is None or (isinstance(caught, SystemExit) and not _exit_failed(caught)):
            return True
        if isinstance(caught, TaskAborted):
            self.aborted = True
        else:
            self._fail(stage, caught)
        return False

    def run(self) -> None:
        try:  # the task process was made with SIGTERM blocked: one sent during start-up arrives here
            if hasattr(signal, "pthread_sigmask"):
                _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (_signal.SIGTERM,))
        except TaskAborted:
            self.aborted = True
        ok = (
            not self.aborted
            and self.call("on_create")
            and (not self.info.is_restart or self.call("on_restart"))
            and self.call("run")
        )
        if self.aborted:
            self._abort()
        elif ok:
            self.call("on_success")
        else:
            self.call("on_failure")
        if self.aborted and not self._abort_done:
            self._abort()
        self.call("on_destroy")

    def _abort(self) -> None:
        self._abort_done = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # on_abort itself must not be cut short by a retry
        try:
            self.task.on_abort()
        except BaseException as exc:  # noqa: BLE001
            self._fail("on_abort", exc)


def _raise_aborted(signum: int, frame: Any) -> None:
    raise TaskAborted()


_FINISHED_OK = pickle.dumps(messages.finished(True), protocol=pickle.HIGHEST_PROTOCOL)


class Attempt:
    """One attempt of one task, in two halves. ``__init__`` only builds Python objects, so whoever forks
    the task process can run it first, in its own memory; ``run`` is the task process. A forked process
    copies every page it writes to (refcounts count), at ~3-5 us a page on a VM: building these objects in
    each task process used to copy ~100 pages of code and type objects more than running the task does."""

    def __init__(
        self,
        conn: Any,
        task: Task,
        info: TaskInfo,
        shared: Any,
        memory_limit_mb: Optional[int] = None,
        files: tuple[io.IOBase, ...] = (),
    ) -> None:
        self.send = send = Sender(conn)
        self.conn = conn
        self.out = text_stream(1)
        self.err = text_stream(2)
        self.shared = shared
        self.capture = Capture(self.out.write, info.name, info.log_level)  # self.logger and the root handler
        self.life = _Lifecycle(task, send, info, self.out)
        self.life.memory_limit_mb = memory_limit_mb
        self.files = files  # see module_files
        self.at_exit = ExitHandlers()

    def run(
        self, out_fd: Optional[int], err_fd: Optional[int], workdir: Optional[str], faulthandler_on: bool = False
    ) -> int:
        """In the task process: set it up, run the lifecycle, end as a program does, report; return the exit
        code. ``out_fd``/``err_fd``: the write ends of its output pipes (``output.pipes``), which become its
        descriptors 1 and 2 (``None``: keep those it has). ``faulthandler_on``: the forking process enabled
        it on descriptor 2 already."""
        self.setup(out_fd, err_fd, workdir, faulthandler_on)
        return self.execute()

    def setup(
        self, out_fd: Optional[int], err_fd: Optional[int], workdir: Optional[str], faulthandler_on: bool = False
    ) -> None:
        """The task process's set-up, which runs none of the task's code (a prepared process does it before
        it is told to go: see ``forkserver``)."""
        self.send.owner = os.getpid()
        self.at_exit.install()  # handlers registered before the fork belong to the process that forked this one
        try:
            os.setpgid(0, 0)  # its own process group: an abort stops what the task started, too
        except OSError:
            pass
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the parent coordinates Ctrl-C
        _signal.signal(_signal.SIGTERM, _raise_aborted)  # still blocked: _Lifecycle.run unblocks it
        if out_fd is not None and err_fd is not None:  # C code and subprocesses write to the same pipes
            _redirect(out_fd, err_fd)
            if not faulthandler_on:
                # Descriptor 2 itself, not sys.__stderr__: enable() flushes a file object, and after a fork from a
                # process with other threads that object's lock may be held by a thread this process lacks.
                faulthandler.enable(file=2, all_threads=False)  # a segfault's stack goes to the log
        if workdir:
            os.chdir(workdir)
        out, err, life, shared = self.out, self.err, self.life, self.shared
        sys.stdout, sys.stderr = out, err
        self.capture.install()  # after stdout/stderr: logging's own error reports go to the task's stderr
        task = life.task
        if type(shared) is SharedDict:  # the replica of a fork server (not isinstance: an ABC's check writes pages)
            shared.send = self.send
        else:
            shared = SharedDict(shared, self.send)
        # where Task's properties read them (set directly: pydantic's __setattr__ would copy its pages here)
        task.__dict__.update(_fm_shared_dict=shared, _fm_logger=self.capture.logger, _fm_info=life.info)

    def execute(self) -> int:
        """After ``setup``: run the lifecycle, end as a program does, report; return the exit code."""
        life = self.life
        try:
            if self._limit_memory():
                life.run()
        except TaskAborted:
            life.aborted = True
        except BaseException as exc:  # noqa: BLE001 - flowmancer's own code failed here: still one report
            life.fail(f"the task process failed: {type(exc).__name__}: {_safe_str(exc)}")
            life.tb = _format_exc(exc)
        _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
        self._end_program()
        return self._report()

    def _limit_memory(self) -> bool:
        mb = self.life.memory_limit_mb
        if not mb:
            return True
        try:
            limit_memory(mb)
            return True
        except (OSError, ValueError, OverflowError) as exc:
            self.life.fail(f"memory_limit_mb: the limit of {mb} MB could not be applied: {exc}")
            return False

    def _end_program(self) -> None:
        """What Python does before a program exits: flush what is buffered, call the ``atexit`` handlers."""
        self._flush_output()
        # Not sys.__stdout__/__stderr__: forked from a process with other threads (the scheduler's event loop,
        # a host's logging), this copy of their buffer's lock may be held by a thread that no longer exists.
        if self.files:
            flush_files(self.files)
        self.at_exit.run()
        self._flush_output()

    def _flush_output(self) -> None:
        for stream in (self.out, self.err):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed by the task, or the runner is gone
                pass

    def _report(self) -> int:
        life = self.life
        if life.error is None and not life.aborted:
            self.send.pickled(_FINISHED_OK)
        else:
            self.send(messages.finished(False, life.aborted, life.error, life.tb, life.kind, life.exc_types))
        self.conn.close()
        return life.exit_code


def _redirect(out_fd: int, err_fd: int) -> None:
    """Make ``out_fd`` descriptor 1 and ``err_fd`` descriptor 2 (either may be 1 or 2 already, when the
    process that made the pipes had those closed)."""
    if err_fd == 1:
        err_fd = os.dup(err_fd)
    if out_fd != 1:
        os.dup2(out_fd, 1)
    if err_fd != 2:
        os.dup2(err_fd, 2)
    for fd in {out_fd, err_fd}:
        if fd > 2:
            os.close(fd)


def child_main(
    conn: Any,
    out: Any,
    err: Any,
    task: Task,
    info: TaskInfo,
    snapshot: dict[str, Any],
    workdir: Optional[str],
    memory_limit_mb: Optional[int] = None,
) -> int:
    """Entry point of a task process made without a fork server (``multiprocessing.Process``, Dask). ``out``
    and ``err``: the output pipes' write ends, as descriptors or objects with ``fileno()`` (a
    ``multiprocessing`` connection carries a descriptor to a spawned process)."""
    out_fd = out if out is None or isinstance(out, int) else out.fileno()
    err_fd = err if err is None or isinstance(err, int) else err.fileno()
    return Attempt(conn, task, info, snapshot, memory_limit_mb).run(out_fd, err_fd, workdir)
