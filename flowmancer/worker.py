"""The child side: run one attempt of one task and report it over a pipe.

No plugin manager here. The child turns ``print``/stderr/``self.logger`` into line events, sends
each ``shared_dict`` write at once, and ends with one ``finished`` event. Anything that kills it
before that (``os._exit``, a signal, a segfault) is noticed by the parent from the process sentinel.
"""

from __future__ import annotations

import _signal  # signal's C half: the Python wrappers convert to enums, which costs a task process page copies
import faulthandler
import io
import os
import pickle
import signal
import struct
import sys
import time
import traceback
from typing import Any, Optional

from .events import Severity
from .task import Task, TaskInfo, TaskLogger


class TaskAborted(BaseException):
    """Raised in the task's main thread when the run is interrupted (SIGTERM from the parent)."""


class PipeWriter:
    """The writing end of a ``multiprocessing.connection.Connection`` without its machinery: the same
    framing (a 4-byte big-endian length, then a pickle), so the parent reads it with ``Connection.recv``,
    but a freshly forked child touches (and so copies) far fewer pages to send its first event."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, obj: Any) -> None:
        self.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        os.close(self.fd)


_HEADER = struct.Struct("!i")  # Connection's header for messages under 2 GiB
_READ_CHUNK = 1 << 16


class PipeReader:
    """The scheduler's end of a ``PipeWriter``: a plain pipe read without blocking. ``Connection.poll`` and
    ``recv`` cost four system calls per event and ``recv`` waits for the rest of a message, so a task
    stopped half-way through writing a large event would stall the scheduler; this reads what is there."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._buf = bytearray()

    def fileno(self) -> int:
        return self.fd

    def read(self) -> tuple[list[Any], bool]:
        """The messages complete so far, and whether every writer has closed its end."""
        eof = False
        while True:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self._buf += chunk
            if len(chunk) < _READ_CHUNK:  # a pipe gives all it holds: what comes next wakes the scheduler
                break
        buf, pos, out = self._buf, 0, []
        while len(buf) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, pos)
            end = pos + _HEADER.size + size
            if len(buf) < end:
                break
            out.append(pickle.loads(buf[pos + _HEADER.size : end]))
            pos = end
        del buf[:pos]
        return out, eof

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ConnectionReader:
    """``PipeReader``'s interface over a ``multiprocessing`` connection (the spawn start method, where the
    child is handed a ``Connection``)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def read(self) -> tuple[list[Any], bool]:
        out: list[Any] = []
        try:
            while self.conn.poll():
                out.append(self.conn.recv())
        except (EOFError, OSError):
            return out, True
        return out, False

    def close(self) -> None:
        self.conn.close()


class _Sender:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __call__(self, event: dict[str, Any]) -> None:
        self.conn.send(event)

    def pickled(self, data: bytes) -> None:
        """Send an event pickled in advance."""
        self.conn.send_bytes(data)


class LineWriter(io.TextIOBase):
    """A text stream that sends complete lines; a partial line waits for its newline (or ``close``)."""

    def __init__(self, send: _Sender, stream: str, severity: Severity) -> None:
        self._send = send
        self._stream = stream
        self._severity = severity.value
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if "\n" not in s:
            self._buf += s
            return len(s)
        data = self._buf + s
        *lines, self._buf = data.split("\n")
        self._send(
            {"event": "log", "stream": self._stream, "severity": self._severity, "lines": lines, "ts": time.time()}
        )
        return len(s)

    def flush(self) -> None:  # complete lines are already sent; a partial line must not be split
        pass

    def finish(self) -> None:
        if self._buf:
            rest, self._buf = self._buf, ""
            self._send(
                {"event": "log", "stream": self._stream, "severity": self._severity, "lines": [rest], "ts": time.time()}
            )

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        return False


class SharedDict(dict):  # type: ignore[type-arg]
    """The child's view of ``shared_dict``: a snapshot whose key writes are forwarded to the parent.

    The fork server keeps its replica in one of these (updated with ``dict``'s own methods, so nothing is
    forwarded); each task process it forks points ``_send`` at its own pipe and uses it without a copy."""

    def __init__(self, snapshot: dict[str, Any], send: Optional[_Sender]) -> None:
        super().__init__(snapshot)
        self._send: Any = send

    def __setitem__(self, key: Any, value: Any) -> None:
        self._send({"event": "shared", "op": "set", "key": key, "value": value})
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._send({"event": "shared", "op": "del", "key": key})

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]


def _format_exc(exc: BaseException) -> str:
    """The traceback without flowmancer's own frames, so the user's code is what they see."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def exception_names(cls: type[BaseException]) -> list[str]:
    """``ValueError``, ``builtins.ValueError``, then the same for each base class: what retry_on matches."""
    out: list[str] = []
    for c in cls.__mro__:
        if c is object:
            break
        out += [c.__name__, f"{c.__module__}.{c.__qualname__}"]
    return out


def limit_memory(megabytes: int) -> None:
    """Allow ``megabytes`` of new allocations beyond what the process has at start (Linux: RLIMIT_DATA)."""
    import resource

    extra = megabytes * 1024 * 1024
    try:
        with open("/proc/self/status") as f:
            data_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmData:"))
        resource.setrlimit(resource.RLIMIT_DATA, (data_kb * 1024 + extra, data_kb * 1024 + extra))
    except (OSError, StopIteration, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (extra, extra))


def _exit_failed(exc: SystemExit) -> bool:
    return exc.code not in (0, None)


class _Lifecycle:
    def __init__(self, task: Task, send: _Sender, info: TaskInfo) -> None:
        self.task = task
        self.send = send
        self.info = info
        self.error: Optional[str] = None
        self.tb: Optional[str] = None
        self.aborted = False
        self._abort_done = False
        self.kind: Optional[str] = None
        self.exc_types: list[str] = []
        self.memory_limit_mb: Optional[int] = None

    def _fail(self, stage: str, exc: BaseException) -> None:
        text = _format_exc(exc)
        if isinstance(exc, SystemExit):
            summary = f"{stage}() called sys.exit({exc.code!r})"
        else:
            summary = f"{stage}() raised {type(exc).__name__}: {exc}".rstrip(": ")
            if isinstance(exc, MemoryError) and self.memory_limit_mb:
                summary += f" (memory limit of {self.memory_limit_mb} MB reached: memory_limit_mb)"
        self.send({"event": "log", "stream": "traceback", "severity": "ERROR", "lines": [text], "ts": time.time()})
        if self.error is None:
            self.error, self.tb = summary, text
            self.kind = "exit" if isinstance(exc, SystemExit) else "exception"
            self.exc_types = exception_names(type(exc))

    def call(self, stage: str) -> bool:
        try:
            getattr(self.task, stage)()
        except TaskAborted:
            self.aborted = True
            return False
        except SystemExit as exc:
            if _exit_failed(exc):
                self._fail(stage, exc)
                return False
        except BaseException as exc:  # noqa: BLE001 - the task's failure is data, not our crash
            self._fail(stage, exc)
            return False
        return True

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


_FINISHED_OK = pickle.dumps(
    {
        "event": "finished",
        "ok": True,
        "aborted": False,
        "error": None,
        "traceback": None,
        "kind": None,
        "exc_types": [],
    },
    protocol=pickle.HIGHEST_PROTOCOL,
)


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
        shared: dict[str, Any],
        memory_limit_mb: Optional[int] = None,
    ) -> None:
        self.send = send = _Sender(conn)
        self.conn = conn
        self.out = LineWriter(send, "stdout", Severity.INFO)
        self.err = LineWriter(send, "stderr", Severity.ERROR)
        self.shared = shared
        self.logger = TaskLogger(self._emit)
        self.life = _Lifecycle(task, send, info)
        self.life.memory_limit_mb = memory_limit_mb

    def _emit(self, severity: Severity, msg: str) -> None:
        self.send(
            {
                "event": "log",
                "stream": "logger",
                "severity": severity.value,
                "lines": msg.split("\n"),
                "ts": time.time(),
            }
        )

    def run(self, raw_fd: Optional[int], workdir: Optional[str], faulthandler_on: bool = False) -> None:
        """In the task process: set it up, run the lifecycle, report. ``faulthandler_on``: the forking
        process enabled it on file descriptor 2 already (which becomes the raw pipe here)."""
        try:
            os.setpgid(0, 0)  # its own process group: an abort stops what the task started, too
        except OSError:
            pass
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the parent coordinates Ctrl-C
        _signal.signal(_signal.SIGTERM, _raise_aborted)  # still blocked: _Lifecycle.run unblocks it
        if raw_fd is not None:  # output written below Python (C code, subprocesses) reaches the parent too
            os.dup2(raw_fd, 1)
            os.dup2(raw_fd, 2)
            os.close(raw_fd)
            if not faulthandler_on:
                faulthandler.enable(file=sys.__stderr__ or 2, all_threads=False)  # a segfault's stack goes to the log
        if workdir:
            os.chdir(workdir)
        out, err, life, shared = self.out, self.err, self.life, self.shared
        sys.stdout, sys.stderr = out, err
        task = life.task
        if isinstance(shared, SharedDict):  # the fork server's replica: from now on this process's own copy
            shared._send = self.send
        else:
            shared = SharedDict(shared, self.send)
        values = {
            "_fm_shared_dict": shared,
            "_fm_logger": self.logger,
            "_fm_info": life.info,
        }
        private = task.__pydantic_private__
        if private is not None:  # set directly: pydantic's __setattr__ would copy its pages into this process
            private.update(values)
        else:
            for k, v in values.items():
                setattr(task, k, v)
        if life.memory_limit_mb:
            limit_memory(life.memory_limit_mb)
        try:
            life.run()
        except TaskAborted:
            life.aborted = True
        finally:
            _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
            out.finish()
            err.finish()
            if life.error is None and not life.aborted:
                self.send.pickled(_FINISHED_OK)
            else:
                self.send(
                    {
                        "event": "finished",
                        "ok": False,
                        "aborted": life.aborted,
                        "error": life.error,
                        "traceback": life.tb,
                        "kind": life.kind,
                        "exc_types": life.exc_types,
                    }
                )
            self.conn.close()


def child_main(
    conn: Any,
    raw_fd: Optional[int],
    task: Task,
    info: TaskInfo,
    snapshot: dict[str, Any],
    workdir: Optional[str],
    memory_limit_mb: Optional[int] = None,
) -> None:
    """Entry point of a task process made without a fork server (``multiprocessing.Process``, Dask)."""
    Attempt(conn, task, info, snapshot, memory_limit_mb).run(raw_fd, workdir)
