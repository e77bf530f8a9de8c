"""Task processes live and die with the run that started them.

A task process runs in its own process group, so stopping it stops what it started. This module keeps
that promise when the runner itself goes away, whatever kills it (``kill -9``, the OOM killer, a crash):

- a task process keeps only its own pipes, stdio and the files its own modules opened at import
  (``closing_ranges``): no copy of the runner's checkpoint journal, lock, epoll set or fork-server socket,
  so nothing of the runner stays open in a process the runner no longer watches;
- when a task ends, what it left in its process group is killed before the process is reaped
  (``kill_group``; the zombie still holds the group's id, so the signal cannot reach a recycled one);
- a ``Guardian`` outlives the runner by design: it learns the pid of every task process the runner forks
  itself and, when the runner's pipe to it ends (the run is over, or the runner died), kills their groups,
  waits for them and exits. It holds the run's lock while it does, so the next run of the job cannot start
  before the last one's tasks are gone. The fork server does the same for the processes it forks.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:
    import subprocess

_REC = struct.Struct("=ci")  # b"+" or b"-", pid
#: how long a guardian waits for killed task processes to go before it gives up on them
KILL_WAIT_SECONDS = 10.0


def fork_is_safe() -> bool:
    """Is this process single-threaded? ``fork()`` copies only the calling thread, so a lock another thread
    held at that moment stays locked in the child forever (Python 3.12+ warns). Beside another thread (a
    component's event loop), the runner does not fork: see ``localexec`` and ``Guardian``."""
    return threading.active_count() == 1


def frozen_fork() -> int:
    """``os.fork()`` with the garbage collector frozen across it: the child never collects what it inherited.

    A finalizer of the parent's garbage (an unclosed ``sqlite3`` connection's, which only the cyclic collector
    frees) could otherwise run in the child and wait forever for a lock that another thread of the parent (the
    components' event loop, inside SQLite) held at the fork. It also spares the child's collections the
    parent's objects (fewer pages copied). The parent unfreezes them at once (both are O(1))."""
    gc.freeze()
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        raise
    if pid != 0:
        gc.unfreeze()
    return pid


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group ``pid`` leads (a task's), if there is one."""
    if pid > 0:  # never our own group (0) or every process (-1)
        try:
            os.killpg(pid, sig)
        except OSError:
            pass


def open_fds() -> dict[int, tuple[int, int]]:
    """The descriptors open in this process now, each with what it refers to (device, inode); Linux."""
    try:
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return {}
    out = {}
    for fd in listed:  # one of them was the listing's own, closed by now
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        out[fd] = (st.st_dev, st.st_ino)
    return out


def opened_since(before: dict[int, tuple[int, int]]) -> tuple[int, ...]:
    """The descriptors opened since ``before`` was taken, a number closed and opened again included (what
    a module opened while a file object of an earlier import was collected, say)."""
    return tuple(sorted(fd for fd, what in open_fds().items() if before.get(fd) != what))


def closing_ranges(keep: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """The ``os.closerange`` calls that close every descriptor from 3 up but ``keep``. Worked out before a
    fork, so the child allocates nothing to do it (each new object could copy a page)."""
    out = []
    lo = 3
    for fd in sorted({k for k in keep if k >= 3}):
        if fd > lo:
            out.append((lo, fd))
        lo = fd + 1
    try:
        hi = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        hi = 65536
    out.append((lo, max(lo, hi)))
    return tuple(out)


def close_ranges(ranges: tuple[tuple[int, int], ...]) -> None:
    """In a freshly forked process: close what ``closing_ranges`` said (one ``close_range(2)`` system call
    each on Linux 5.9+, whatever the range)."""
    for lo, hi in ranges:
        os.closerange(lo, hi)


class Guardian:
    """The runner's side: fork the guardian, tell it each task process forked here and each one reaped."""

    def __init__(self, hold: Iterable[int] = ()) -> None:
        """``hold``: descriptors the guardian keeps open until the task processes are gone (the run's lock)."""
        hold = tuple(hold)
        r, w = os.pipe()
        self._spawned: Optional[subprocess.Popen[bytes]] = None
        if not fork_is_safe():  # exec a fresh interpreter instead
            self._spawned = _spawn_guardian(r, hold)
            self.pid = self._spawned.pid
        else:
            ranges = closing_ranges((r, *hold))
            pid = frozen_fork()
            if pid == 0:  # never returns into the caller's code
                code = 1
                try:
                    _quiet()
                    _guard(r, ranges)
                    code = 0
                finally:
                    os._exit(code)
            self.pid = pid
        os.close(r)
        self._w: Optional[int] = w

    def _send(self, kind: bytes, pid: int) -> None:
        if self._w is None:
            return
        try:
            os.write(self._w, _REC.pack(kind, pid))  # under PIPE_BUF: one atomic write
        except OSError:  # the guardian is gone: nothing left to tell
            os.close(self._w)
            self._w = None

    def add(self, pid: int) -> None:
        self._send(b"+", pid)

    def remove(self, pid: int) -> None:
        self._send(b"-", pid)

    def close(self) -> None:
        """The run is over: the guardian kills whatever task process is left and exits; wait for it."""
        if self._w is not None:
            os.close(self._w)
            self._w = None
        if self._spawned is not None:
            self._spawned.wait()
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _spawn_guardian(r: int, hold: tuple[int, ...]) -> subprocess.Popen[bytes]:
    """A guardian in a fresh interpreter (``subprocess`` forks and execs in C, safe beside other threads). It
    gets only the pipe and ``hold``, in its own process group, with stdio on ``/dev/null``."""
    import subprocess  # only here: most runs fork their guardian

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where ``flowmancer`` is importable
    code = "import sys; sys.path.insert(0, sys.argv[1]); from flowmancer.lifeline import _guard_main; _guard_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, root, str(r), *map(str, hold)],
        pass_fds=(r, *hold),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )


def _guard_main() -> None:
    """Entry point of a spawned guardian (``_spawn_guardian``): ``argv[2]`` is the pipe, the rest what it holds."""
    _ignore_signals()
    _guard(int(sys.argv[2]), ())


def _quiet() -> None:
    """A forked guardian: its own process group, no terminal signals, none of the runner's stdio."""
    try:
        os.setpgid(0, 0)  # out of the runner's group: a signal to it (Ctrl-C, kill -9 -PGID) leaves us to clean up
    except OSError:
        pass
    _ignore_signals()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # hold none of the runner's stdio: a reader of its output must see it end with it
        os.dup2(devnull, fd)
    os.close(devnull)


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)


def _guard(r: int, ranges: tuple[tuple[int, int], ...]) -> None:
    """The guardian process: collect task pids until the runner's pipe ends, then kill what is left."""
    close_ranges(ranges)  # all but the pipe and what it holds for the run
    pidfds: dict[int, int] = {}
    buf = b""
    while True:
        try:
            data = os.read(r, 4096)
        except InterruptedError:
            continue
        if not data:
            break
        buf += data
        end = len(buf) - len(buf) % _REC.size
        for off in range(0, end, _REC.size):
            kind, pid = _REC.unpack_from(buf, off)
            if kind == b"+":
                try:
                    pidfds[pid] = os.pidfd_open(pid)
                except OSError:  # gone already
                    pass
            else:
                if pid in pidfds:
                    os.close(pidfds.pop(pid))
        buf = buf[end:]
    kill_and_wait(pidfds)


def kill_and_wait(pidfds: dict[int, int], wait: float = KILL_WAIT_SECONDS) -> None:
    """SIGKILL the live processes among ``pidfds`` (pid -> pidfd) and their groups; wait until they are gone."""
    poller = select.poll()
    for fd in pidfds.values():
        poller.register(fd, select.POLLIN)
    exited = {fd for fd, _ in poller.poll(0)}
    pending = set()
    for pid, fd in pidfds.items():
        if fd in exited:
            continue
        kill_group(pid)  # a live leader: its group id cannot have been recycled
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)  # in case it never made its own group
        except OSError:
            pass
        pending.add(fd)
    deadline = time.monotonic() + wait
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            pending.discard(fd)
            poller.unregister(fd)
