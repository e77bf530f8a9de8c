"""The scheduler's side of the fork server: start it, hand it spawn requests, collect answers and exit codes."""

from __future__ import annotations

import array
import os
import pickle
import select
import signal
import socket
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

from ..process import Child, pidfds_work
from .channel import EXITED, ID, PIPELINE, SPAWNED, Channel

if TYPE_CHECKING:
    pass


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
        self.chan = Channel(ours)
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
        self._sent_d: deque[bytes] = deque(maxlen=64)  # the last b"D" records, for prepared processes (see go)
        self._d_count = 0  # b"D" records sent
        self._let_go: set[int] = set()  # pids of prepared processes not used: their exits are nobody's
        self._let_go_req: set[int] = set()  # the same, not answered yet
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.set_inheritable(theirs.fileno(), True)
            code = "import sys; from flowmancer.forkserver.server import serve; serve(int(sys.argv[1]))"
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
        from ..collect import sibling_names

        init = {"path": list(sys.path), "env": dict(os.environ), "modules": list(modules), "hold": len(hold)}
        init["siblings"] = sibling_names()  # ``import helper`` in a module of a plain folder (see collect)
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
                pid, code = EXITED.unpack(body)
                if pid in self._let_go:
                    self._let_go.discard(pid)
                else:
                    self._exits[pid] = code
            elif kind == b"S":
                req, pid = SPAWNED.unpack(body)
                self._answered += 1
                if req in self._let_go_req:
                    self._let_go_req.discard(req)
                    self._let_go.add(pid)
                    os.close(self.chan.fds.popleft())
                else:
                    self._answers[req] = (pid, self.chan.fds.popleft())
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

    def wait_ready(self) -> bool:
        """Wait until it can take requests; ``False`` if it died first (a process that must not fork itself
        waits for the server rather than doing so: see ``localexec``)."""
        while not self.poll() and self._take(block=True):
            pass
        return self.ready

    def serves(self, module: str) -> bool:
        """Can it fork tasks of a class from ``module`` (after ``poll``)?"""
        return self.ready and module in self.usable

    # -- requests ----------------------------------------------------------------------------------

    def _send(self, record: bytes, fds: tuple[int, ...] = ()) -> None:
        """Send one record without ever blocking on a server that is itself waiting for us to read."""
        data = memoryview(Channel.frame(record))
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
        self._send_d(b"D" + changes)
        return True

    def replace_shared(self, shared: dict[Any, Any]) -> bool:
        """Make the server's replica of ``shared_dict`` equal ``shared`` (the Dask worker's snapshot of one
        task); ``False`` if pickle cannot take it."""
        try:
            data = pickle.dumps((True, shared, []), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001
            return False
        self._send_d(b"D" + data)
        return True

    def _send_d(self, record: bytes) -> None:
        self._send(record)
        self._sent_d.append(record)
        self._d_count += 1

    def spawn(self, payload: bytes, fds: tuple[int, int, int]) -> ServedChild:
        """Ask for a task process running ``child_main`` with the pickled ``payload`` arguments. The
        answer is read when the pid or sentinel is first needed; the caller may close ``fds`` now."""
        return self._request(b"F", payload, fds)

    def prepare(self, payload: bytes, fds: tuple[int, int, int, int]) -> tuple[ServedChild, int]:
        """Ask for a task process made ready to run ``payload`` that waits, before running any of the
        task's code, for ``go`` on the pipe whose read end is ``fds[3]``: the next task of a serial stretch,
        forked while the current one runs. Also returns the version of ``shared_dict`` it has (for ``go``)."""
        return self._request(b"P", payload, fds), self._d_count

    def _request(self, kind: bytes, payload: bytes, fds: tuple[int, ...]) -> ServedChild:
        if not self.alive:
            raise ServerGone()
        while self._seq - self._answered >= PIPELINE and self._take(block=True):
            pass
        self._seq += 1
        self._send(kind + ID.pack(self._seq) + payload, fds)
        return ServedChild(self, self._seq)

    def go(self, go_w: int, version: int) -> bool:
        """Tell a prepared process to run its task, with the changes to ``shared_dict`` since ``version``
        (``sync_shared`` first), through ``go_w`` (non-blocking; the caller closes it); ``False`` if it cannot
        be told (too far behind, more than the pipe takes, or gone): let it go."""
        missing = self._d_count - version
        if missing > len(self._sent_d):
            return False
        records = list(self._sent_d)[len(self._sent_d) - missing :] + [b"G"]
        data = b"".join(Channel.frame(r) for r in records)
        try:  # a non-blocking pipe: cut short, the process sees no b"G" and exits
            return os.write(go_w, data) == len(data)
        except OSError:
            return False

    def let_go(self, child: ServedChild) -> None:
        """A prepared process will not be told to go (its go pipe is closed, so it exits): forget it."""
        pid: Optional[int] = child._pid
        if child.req in self._answers:
            pid, pidfd = self._answers.pop(child.req)
            os.close(pidfd)
        elif child._sentinel is not None:
            child.close()
        else:
            self._let_go_req.add(child.req)
        if pid is not None and self._exits.pop(pid, None) is None:
            self._let_go.add(pid)

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

    def stop(self) -> None:
        """End the server (it exits when the socket closes) without waiting for it; ``close`` reaps it."""
        self._gone()
        self.chan.sock.close()
        if not self.loading:  # never used: do not wait for it to finish importing
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        for pidfd in (a[1] for a in self._answers.values()):
            os.close(pidfd)
        self._answers.clear()

    def close(self) -> None:
        """End the server and reap it."""
        self.stop()
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
        or os.environ.get("FLOWMANCER_FORK_SERVER") == "0"
        or "_ARGCOMPLETE" in os.environ  # the shell asks for completions: nothing will run
        or os.environ.get("FLOWMANCER_START_METHOD", "fork") != "fork"
        or len(os.sched_getaffinity(0)) < 2
        or any(a in ("-h", "--help", "--version", "--schema", "--plugins", "--watch") for a in argv)
        or not pidfds_work()
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
