"""A lean process that forks the task processes (used by the ``spawn`` plugin on Linux for bigger jobs).

Why: ``fork()`` costs in proportion to what the forking process has mapped, and every child then pays
copy-on-write faults on it. The scheduler carries pluggy, PyYAML, the job model, the plugins and a
``TaskRun`` per task; a fresh interpreter that has imported only the task modules forks about twice as
fast, and its children copy less. The scheduler starts it at the first spawn, forks tasks itself until
it is ready, and falls back to forking itself for anything it cannot hand over (a task class it could not
import, parameters pickle cannot take) or when it dies.

Protocol: length-prefixed records over a Unix stream socket pair (a datagram socket's queue holds only
``net.unix.max_dgram_qlen`` messages, often 10, which would serialise the two processes). File
descriptors ride with the record that needs them and, arriving in order, are taken in order.

- scheduler -> server: ``b"I"`` + pickled init (``sys.path``, the modules to import), then spawn requests
  ``b"F" + id + pickled arguments`` carrying two file descriptors (the task's event and raw-output
  pipes, write ends), each preceded when needed by ``b"D"`` + the changes to ``shared_dict`` since the
  last request (the server keeps a replica, which children see by fork: no copy of it per task).
  Requests are pipelined: the scheduler keeps working while the server forks.
- server -> scheduler: ``b"R" + pickled {module: file}`` once ready; ``b"S" + id + pid`` carrying the
  child's pidfd (the scheduler's sentinel, opened by the server before the child can be reaped);
  ``b"X" + pid + exit code`` after reaping it.
"""

from __future__ import annotations

import _signal  # see worker: the C functions, without the enum conversions that copy pages in a child
import array
import gc
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

from .lifeline import close_ranges, closing_ranges, kill_and_wait, kill_group, open_fds, opened_since
from .process import Child

if TYPE_CHECKING:
    from .taskio import SharedDict
    from .worker import Attempt

_LEN = struct.Struct("=I")
_SPAWNED = struct.Struct("=Qi")  # request id, pid
_EXITED = struct.Struct("=ii")  # pid, exit code (negative: killed by that signal)
_ID = struct.Struct("=Q")
_MAX_FDS = 16  # room in one read's control buffer: a read never spans two records that carry fds
#: requests sent but not answered yet: enough to overlap the two processes, few enough to stay in the buffers
PIPELINE = 32


class _Channel:
    """Records over a stream socket, with the file descriptors sent along with them, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.fds: deque[int] = deque()

    def fill(self, flags: int = 0) -> bool:
        """Read what is there (``BlockingIOError`` if nothing and non-blocking); ``False`` at EOF."""
        fds = array.array("i")
        msg, ancdata, _, _ = self.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize), flags | socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        self.fds.extend(fds)
        self.buf += msg
        return bool(msg)

    def records(self) -> list[bytes]:
        """The complete records received so far (taken out of the buffer)."""
        out = []
        pos = 0
        buf = self.buf
        while len(buf) - pos >= _LEN.size:
            (size,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - _LEN.size < size:
                break
            out.append(bytes(buf[pos + _LEN.size : pos + _LEN.size + size]))
            pos += _LEN.size + size
        del buf[:pos]
        return out

    @staticmethod
    def frame(record: bytes) -> bytes:
        return _LEN.pack(len(record)) + record


class ServerGone(Exception):
    """The fork server is not there (any more): fork in the scheduler instead."""


class ServedChild(Child):
    """A task process forked by the server (a ``process.Child``). Its pid
    and pidfd arrive with the server's answer, read when first needed, so requests overlap."""

    served = True
    owns_sentinel = True  # the pidfd the server sent is ours to close

    def __init__(self, server: ForkServer, req: int) -> None:
        self.server = server
        self.req = req
        self._pid: Optional[int] = None
        self._sentinel: Optional[int] = None
        self.exitcode: Optional[int] = None
        self._reaped = False
        #: the server died before answering. It may have forked the task (which may even have killed it):
        #: ``ProcessHandle`` then waits for the end of the task's event pipe instead of a pidfd.
        self.lost = False

    def _resolve(self) -> None:
        if self._sentinel is None:
            try:
                self._pid, self._sentinel = self.server.answer(self.req)
            except ServerGone:
                self._sentinel, self._reaped, self.lost = -1, True, True

    def answered(self) -> bool:
        """Has the answer been read (or the server died)? Never reads nor waits: ``ProcessHandle`` watches
        ``notifier`` meanwhile, so the scheduler goes on while the server forks, and reads when it fires."""
        if self._sentinel is None and (self.req in self.server._answers or not self.server.alive):
            self._resolve()
        return self._sentinel is not None

    def take_news(self) -> None:
        self.server.poll()

    @property
    def notifier(self) -> socket.socket:
        """Readable when the server has sent something (the answer, perhaps); shared by all its children."""
        return self.server.chan.sock

    @property
    def pid(self) -> Optional[int]:
        self._resolve()
        return self._pid

    @property
    def sentinel(self) -> int:
        """The pidfd; -1 if ``lost``."""
        self._resolve()
        assert self._sentinel is not None
        return self._sentinel

    def exit_known(self) -> bool:
        """Has the server reported the exit code (or died)? ``join`` then returns at once."""
        return self._reaped or self._pid is None or self._pid in self.server._exits or not self.server.alive

    def join(self) -> Optional[int]:
        """The exit code the server reported (``None`` if the server died before reaping it)."""
        self._resolve()
        if not self._reaped and self._pid is not None:
            self._reaped = True
            self.exitcode = self.server.exitcode(self._pid)
        return self.exitcode

    def close(self) -> None:
        if self._sentinel is not None and self._sentinel >= 0:
            os.close(self._sentinel)
            self._sentinel = -1


class ForkServer:
    """The scheduler's side: start the server, hand it spawn requests, collect answers and exit codes."""

    def __init__(self) -> None:
        """Start the server process; it imports the worker side (pydantic) at once, the task modules when
        ``load`` names them."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.chan = _Channel(ours)
        self.expected: dict[str, Optional[str]] = {}
        self.loading = False
        self.usable: set[str] = set()  # modules the server imported from the same file, once ready
        self.ready = False
        self.alive = True
        self._exits: dict[int, int] = {}
        self._answers: dict[int, tuple[int, int]] = {}
        self._seq = 0  # requests sent
        self._answered = 0
        self._shared_ok = True
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.set_inheritable(theirs.fileno(), True)
            code = "import sys; from flowmancer.forkserver import serve; serve(int(sys.argv[1]))"
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-c", code, str(theirs.fileno())],
                os.environ,
                # its output must not show: a task module printing at import would print twice
                file_actions=[(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)],
                setpgroup=0,  # its own group: a signal to the runner's (kill -9 -PGID) leaves it to clean up
            )
        finally:
            theirs.close()
            os.close(devnull)
        ours.setblocking(False)

    def load(self, modules: dict[str, Optional[str]], hold: tuple[int, ...] = ()) -> None:
        """Have it import ``modules`` (each with the file it was loaded from here), with this process's
        ``sys.path`` and environment as they are now; it is ready for requests after that. It keeps ``hold``
        open until every task process it forked is gone (the run's lock: see ``lifeline``)."""
        self.expected, self.loading = modules, True
        init = {"path": list(sys.path), "env": dict(os.environ), "modules": list(modules), "hold": len(hold)}
        self._send(b"I" + pickle.dumps(init), hold)

    # -- receiving ---------------------------------------------------------------------------------

    def _take(self, block: bool) -> bool:
        """Read and file what has arrived; ``False`` if nothing did (non-blocking) or the server is gone."""
        if not self.alive:
            return False
        if block:
            select.select([self.chan.sock], [], [])
        try:
            if not self.chan.fill():
                self._gone()
                return False
        except BlockingIOError:
            return False
        except OSError:
            self._gone()
            return False
        for rec in self.chan.records():
            kind, body = rec[:1], rec[1:]
            if kind == b"X":
                pid, code = _EXITED.unpack(body)
                self._exits[pid] = code
            elif kind == b"S":
                req, pid = _SPAWNED.unpack(body)
                self._answers[req] = (pid, self.chan.fds.popleft())
                self._answered += 1
            elif kind == b"R":
                loaded = pickle.loads(body)
                self.usable = {m for m, file in self.expected.items() if m in loaded and loaded[m] == file}
                self.ready = True
        return True

    def _gone(self) -> None:
        """The server is gone. Its socket stays open until ``close``: the scheduler may still be watching it
        (for handles whose answers it waits for; they stop doing so now)."""
        self.alive = self.ready = False

    def poll(self) -> bool:
        """Read what has arrived without waiting; ``True`` once the server can take requests."""
        while self._take(block=False):
            pass
        return self.ready

    def serves(self, module: str) -> bool:
        """Can it fork tasks of a class from ``module`` (after ``poll``)?"""
        return self.ready and module in self.usable

    # -- requests ----------------------------------------------------------------------------------

    def _send(self, record: bytes, fds: tuple[int, ...] = ()) -> None:
        """Send one record without ever blocking on a server that is itself waiting for us to read."""
        data = memoryview(_Channel.frame(record))
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        while data:
            try:
                sent = self.chan.sock.sendmsg([data], anc)
            except BlockingIOError:
                readable, _, _ = select.select([self.chan.sock], [self.chan.sock], [])
                if readable:
                    self._take(block=False)
                continue
            except OSError as exc:
                self._gone()
                raise ServerGone() from exc
            data, anc = data[sent:], []

    def sync_shared(self, shared: dict[Any, Any]) -> bool:
        """Send what changed in ``shared`` (a ``job.ChangeLog``) to the server's replica; ``False`` once that
        is impossible (a value pickle cannot take): from then on the scheduler forks the tasks itself."""
        take = getattr(shared, "take_changes", None)
        if not self._shared_ok or take is None:
            return False
        cleared, keys = take()
        if not cleared and not keys:
            return True
        try:
            changes = pickle.dumps(
                (cleared, {k: shared[k] for k in keys if k in shared}, [k for k in keys if k not in shared]),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except Exception:  # noqa: BLE001
            self._shared_ok = False
            return False
        self._send(b"D" + changes)
        return True

    def spawn(self, payload: bytes, fds: tuple[int, int]) -> ServedChild:
        """Ask for a task process running ``child_main`` with the pickled ``payload`` arguments. The
        answer is read when the pid or sentinel is first needed; the caller may close ``fds`` now."""
        if not self.alive:
            raise ServerGone()
        while self._seq - self._answered >= PIPELINE and self._take(block=True):
            pass
        self._seq += 1
        self._send(b"F" + _ID.pack(self._seq) + payload, fds)
        return ServedChild(self, self._seq)

    def answer(self, req: int) -> tuple[int, int]:
        """The pid and pidfd of request ``req``."""
        while req not in self._answers:
            if not self._take(block=True):
                raise ServerGone()
        return self._answers.pop(req)

    def exitcode(self, pid: int) -> Optional[int]:
        """Called once the child's pidfd is readable: the server reaps it at once and reports."""
        while pid not in self._exits:
            if not self._take(block=True):
                return None
        return self._exits.pop(pid)

    def close(self) -> None:
        """End the server (it exits when the socket closes) and reap it."""
        self._gone()
        self.chan.sock.close()
        if not self.loading:  # never used: do not wait for it to finish importing
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        for pidfd in (a[1] for a in self._answers.values()):
            os.close(pidfd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


# -- started early -----------------------------------------------------------------------------------

_early: Optional[ForkServer] = None


def prestart(argv: list[str]) -> None:
    """Start a server at the very beginning of ``flowmancer`` (before the scheduler's own imports): its
    start-up then runs on another core while the scheduler starts, and it is ready for the first tasks.
    Not with one core (it would delay the scheduler), nor where the ``spawn`` plugin would not use it."""
    global _early
    if (
        _early is not None
        or not sys.platform.startswith("linux")
        or not hasattr(os, "pidfd_open")
        or os.environ.get("FLOWMANCER_FORK_SERVER") == "0"
        or os.environ.get("FLOWMANCER_START_METHOD", "fork") != "fork"
        or len(os.sched_getaffinity(0)) < 2
        or any(a in ("-h", "--help", "--version", "--schema", "--plugins") for a in argv)
    ):
        return
    try:
        _early = ForkServer()
    except OSError:
        pass


def take_early() -> Optional[ForkServer]:
    """The server ``prestart`` started, for its caller to use or close; ``None`` if there is none."""
    global _early
    server, _early = _early, None
    return server


# -- the server process ----------------------------------------------------------------------------


def serve(fd: int) -> None:
    """Main loop of the server process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler coordinates Ctrl-C and SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (children get SIGTERM blocked, not ignored: see _fork)
    chan = _Channel(socket.socket(fileno=fd))
    import faulthandler
    from importlib import import_module

    from .taskio import SharedDict
    from .worker import Attempt  # noqa: F401 - pydantic and the task machinery: the bulk of the start-up, done now

    faulthandler.enable(file=sys.__stderr__ or 2, all_threads=False)  # fd 2: each child's raw pipe, once it is forked
    init = _first(chan)
    if init is None:
        return
    for _ in range(init["hold"]):  # the run's lock: left open (never closed) until this process exits
        chan.fds.popleft()
    sys.path[:] = init["path"]
    os.environ.clear()  # the scheduler's environment when its first task started, as a fork of it would have
    os.environ.update(init["env"])

    loaded: dict[str, Optional[str]] = {}
    before = open_fds()
    for name in init["modules"]:
        try:
            loaded[name] = getattr(import_module(name), "__file__", None)
        except BaseException:  # noqa: BLE001 - the scheduler forks that module's tasks itself
            pass
    module_fds = opened_since(before)  # files the task modules opened: their task processes keep them
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock = chan.sock
    gc.freeze()  # children never scan (and so never copy-on-write) what the server imported
    _reply(sock, b"R" + pickle.dumps(loaded))
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    shared = SharedDict({}, None)  # the replica of job.shared_dict (changed through .data: see SharedDict)
    children: set[int] = set()
    files: dict[Optional[str], tuple[Any, ...]] = {}  # app root -> its modules' files (worker.module_files)
    try:
        while _serve_once(chan, sel, wake_r, shared, module_fds, children, files):
            pass
    except _SchedulerGone:
        pass
    _kill_children(children)  # the scheduler is done, or died: no task of its run may live on


def _serve_once(
    chan: _Channel,
    sel: selectors.BaseSelector,
    wake_r: int,
    shared: SharedDict,
    module_fds: tuple[int, ...],
    children: set[int],
    files: dict[Optional[str], tuple[Any, ...]],
) -> bool:
    """Handle one wake-up: requests from the scheduler, children that ended. ``False`` once it is gone."""
    sock = chan.sock
    for key, _ in sel.select():
        if key.fd == wake_r:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            continue
        if not _fill(chan):
            return False
        try:  # a read stops after a message carrying fds (each request): take all that is there
            while len(chan.fds) < 2 * PIPELINE and chan.fill(socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass
        batch: list[_Request] = []
        for rec in chan.records():
            if rec[:1] == b"D":
                _fork(sock, batch, module_fds, children)  # those children see shared_dict as it was before
                cleared, changed, deleted = pickle.loads(rec[1:])
                if cleared:
                    shared.data.clear()
                shared.data.update(changed)
                for k in deleted:
                    shared.data.pop(k, None)
                continue
            batch.append(_Request(rec, chan.fds.popleft(), chan.fds.popleft(), shared, files))
        _fork(sock, batch, module_fds, children)
    _reap(sock, children)
    return True


class _SchedulerGone(Exception):
    """Writing to the scheduler failed: it is gone."""


def _fill(chan: _Channel) -> bool:
    """Read what the scheduler sent; ``False`` once it is gone (its end of the socket closed, or broken)."""
    try:
        return chan.fill()
    except OSError:
        return False


def _kill_children(children: set[int]) -> None:
    """The scheduler is gone: kill every task process still here, with its group, and reap them."""
    pidfds = {}
    for pid in children:
        try:
            pidfds[pid] = os.pidfd_open(pid)
        except OSError:
            pass
    kill_and_wait(pidfds)
    for pid in children:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _first(chan: _Channel) -> Optional[dict[str, Any]]:
    """The init record (the scheduler sends nothing else before the server is ready)."""
    while True:
        records = chan.records()
        if records:
            return pickle.loads(records[0][1:])  # type: ignore[no-any-return]
        if not chan.fill():
            return None


def _reply(sock: socket.socket, record: bytes, fds: tuple[int, ...] = ()) -> None:
    _reply_framed(sock, _Channel.frame(record), fds)


def _reply_framed(sock: socket.socket, data: bytes, fds: tuple[int, ...] = ()) -> None:
    """Send framed records; ``fds`` ride with the first byte, so the reader files them with the first record."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        sent = sock.sendmsg([data], anc)  # a signal can cut a stream write short: send the rest
        if sent < len(data):
            sock.sendall(data[sent:])
    except OSError as exc:
        raise _SchedulerGone() from exc


class _Request:
    """One spawn request, made ready to fork: its ``Attempt`` is built here, not in the child (see ``Attempt``)."""

    def __init__(
        self,
        rec: bytes,
        event_w: int,
        raw_w: int,
        shared: SharedDict,
        files: dict[Optional[str], tuple[Any, ...]],
    ) -> None:
        from .pipes import PipeWriter
        from .worker import Attempt, module_files

        (self.req,) = _ID.unpack_from(rec, 1)
        self.fds = (event_w, raw_w)
        self.attempt: Optional[Attempt] = None
        self.workdir: Optional[str] = None
        try:
            instance, info, self.workdir, memory_limit_mb = pickle.loads(rec[1 + _ID.size :])
            if self.workdir not in files:
                files[self.workdir] = module_files(self.workdir) if self.workdir else ()
            held = files[self.workdir]
            self.attempt = Attempt(PipeWriter(event_w), instance, info, shared, memory_limit_mb, held)
        except BaseException:  # noqa: BLE001 - the child exits without a result: the scheduler reports a crash
            pass


def _fork(sock: socket.socket, batch: list[_Request], module_fds: tuple[int, ...], children: set[int]) -> None:
    """Fork every request of ``batch`` back to back, then answer them all. A child keeps its own pipes and
    ``module_fds`` (what the task modules opened), none of the server's descriptors nor other requests' pipes.

    Why in batches: after a fork, the server's own pages are shared with the child, so each page the server
    writes next is copied (~200 pages per request when it prepared and answered one request between two
    forks). Preparing a batch first and forking it in a tight loop copies those pages once per batch."""
    if not batch:
        return
    pids: list[int] = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # see spawn.block_sigterm
    try:
        keep = [closing_ranges(r.fds + module_fds) for r in batch]  # made now: a child allocates nothing for it
        for r, ranges in zip(batch, keep):
            pid = os.fork()
            if pid == 0:
                _child(r.attempt, r.fds[1], r.workdir, ranges)
            pids.append(pid)
            children.add(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    answers: list[tuple[bytes, int]] = []
    try:
        for r, pid in zip(batch, pids):
            try:
                os.setpgid(pid, pid)  # as the child does: no window in which a group signal misses it
            except OSError:
                pass
            answers.append((_Channel.frame(b"S" + _SPAWNED.pack(r.req, pid)), os.pidfd_open(pid)))  # before any reaping
            for f in r.fds:
                os.close(f)
        for i in range(0, len(answers), _MAX_FDS):  # the scheduler takes at most _MAX_FDS per read
            chunk = answers[i : i + _MAX_FDS]
            _reply_framed(sock, b"".join(a[0] for a in chunk), tuple(a[1] for a in chunk))
    finally:
        for _, pidfd in answers:
            os.close(pidfd)
    batch.clear()
    _reap(sock, children)


def _reap(sock: socket.socket, children: set[int]) -> None:
    """Reap the task processes that ended, each after killing what it left in its group (see ``lifeline``)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or not info.si_pid:
            return
        pid = info.si_pid
        kill_group(pid)  # a zombie still holds its group's id: the signal cannot reach a recycled group
        _, status = os.waitpid(pid, 0)
        children.discard(pid)
        _reply(sock, b"X" + _EXITED.pack(pid, os.waitstatus_to_exitcode(status)))


def _child(attempt: Optional[Attempt], raw_w: int, workdir: Optional[str], ranges: tuple[tuple[int, int], ...]) -> None:
    code = 1
    try:
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # the task's own subprocesses need the default
        close_ranges(ranges)
        if attempt is not None:
            code = attempt.run(raw_w, workdir, faulthandler_on=True)
    finally:
        os._exit(code)
