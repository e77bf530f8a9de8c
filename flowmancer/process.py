"""Task processes as the built-in executor sees them: how one is made and what it looks like after.

Three kinds of child run an attempt: ``ForkedChild`` (a plain ``os.fork()`` of the scheduler, or of a
Dask worker), ``forkserver.ServedChild`` (forked by the fork server, its pid and exit code arrive over a
socket) and ``MPChild`` (``multiprocessing``'s spawn start method, where fork is not used). All are a
``Child``: the attributes the handle reads are declared here with the answers of a plain child.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, Optional

from .executor import signal_group
from .lifeline import close_ranges, closing_ranges, frozen_fork, kill_group


class Child:
    """A task process. ``sentinel`` becomes readable when it ends; ``join`` reaps it and sets ``exitcode``."""

    sentinel: Any
    exitcode: Optional[int] = None
    #: forked by the fork server (which sets the process group itself)
    served = False
    #: ``sentinel`` is ours to close (``close``); ``multiprocessing`` closes its own
    owns_sentinel = True
    #: its maker died before telling its pid: it cannot be signalled or waited for, only its pipes
    lost = False

    @property
    def notifier(self) -> Any:
        """Readable when news about this child may arrive on someone else's behalf (a fork server's socket)."""
        return None

    def answered(self) -> bool:
        """Its pid is known (always, for a process made here)."""
        return True

    @property
    def pid(self) -> Optional[int]:
        raise NotImplementedError

    def take_news(self) -> None:
        """``notifier`` is readable: file what arrived there."""

    def exit_known(self) -> bool:
        """``join`` would not block: its exit code is here (a fork server reports it a moment later)."""
        return True

    def join(self) -> Optional[int]:
        raise NotImplementedError

    def close(self) -> None:
        """Close ``sentinel`` if it is ours."""

    def terminate(self) -> None:
        raise NotImplementedError


_PIDFDS: list[bool] = []


def pidfds_work() -> bool:
    """Whether this kernel gives process file descriptors (``pidfd_open``: Linux 5.3+, and not refused by a
    sandbox's seccomp filter). Without them tasks are made with ``multiprocessing``'s fork context (a pipe as
    the sentinel), with no fork server and no guardian."""
    if not _PIDFDS:
        ok = hasattr(os, "pidfd_open")
        if ok:
            try:
                os.close(os.pidfd_open(os.getpid()))
            except OSError:
                ok = False
        _PIDFDS.append(ok)
    return _PIDFDS[0]


def start_method() -> str:
    """fork where it is safe and fast (Linux); spawn elsewhere (macOS, Windows)."""
    forced = os.environ.get("FLOWMANCER_START_METHOD")
    if forced:
        return forced
    return "fork" if sys.platform.startswith("linux") else "spawn"


class ForkedChild(Child):
    """A process made with a plain ``os.fork()``: cheaper than ``multiprocessing.Process`` (no bookkeeping,
    one pipe less) and allowed in daemonic processes (Dask workers). Its sentinel is a pidfd."""

    owns_sentinel = True  # a pidfd of ours, closed with ``close`` (multiprocessing closes its own sentinels)

    def __init__(self, pid: int, on_reap: Optional[Callable[[int], None]] = None) -> None:
        self._pid = pid
        self.sentinel = os.pidfd_open(pid)
        self.exitcode: Optional[int] = None
        self._on_reap = on_reap

    @property
    def pid(self) -> int:
        return self._pid

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self) -> Optional[int]:
        """Reap the process, after killing what it left in its process group (see ``lifeline``). The pidfd
        stays open for ``close``: the scheduler may still be watching it."""
        if self.exitcode is None:
            kill_group(self.pid)
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
            if self._on_reap is not None:
                self._on_reap(self.pid)
        return self.exitcode

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1

    def terminate(self) -> None:
        if self.exitcode is None:
            signal_group(self.pid, signal.SIGTERM)


def fork_child(
    target: Any, args: tuple[Any, ...], keep: tuple[int, ...] = (), on_reap: Optional[Callable[[int], None]] = None
) -> ForkedChild:
    """Run ``target(*args)`` in a forked child that exits with what it returns (an int; else 0), or 1 if it
    raised. The child keeps only stdio and the descriptors in ``keep`` (see ``lifeline.closing_ranges``) and
    never collects the garbage it inherited (see ``lifeline.frozen_fork``)."""
    ranges = closing_ranges(keep)
    pid = frozen_fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            close_ranges(ranges)
            result = target(*args)
            code = result if isinstance(result, int) else 0
        finally:
            os._exit(code)
    return ForkedChild(pid, on_reap)


class MPChild(Child):
    """A ``multiprocessing.Process`` (the spawn start method) seen as a ``Child``."""

    owns_sentinel = False

    def __init__(self, proc: Any, on_reap: Optional[Callable[[int], None]] = None) -> None:
        self.proc = proc
        self._on_reap = on_reap

    @property
    def pid(self) -> Optional[int]:  # type: ignore[override]
        return self.proc.pid  # type: ignore[no-any-return]

    @property
    def sentinel(self) -> Any:  # type: ignore[override]
        return self.proc.sentinel

    @property
    def exitcode(self) -> Optional[int]:  # type: ignore[override]
        return self.proc.exitcode  # type: ignore[no-any-return]

    def join(self) -> Optional[int]:
        self.proc.join()
        on_reap, self._on_reap = self._on_reap, None
        if on_reap is not None:
            on_reap(self.proc.pid)
        return self.exitcode

    def terminate(self) -> None:
        self.proc.terminate()


def block_sigterm() -> Optional[set[Any]]:
    """Block SIGTERM while a task process is made: it inherits the mask, and ``child_main`` unblocks it once
    its handler is in place, so an abort that comes that early still runs ``on_abort``."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def unblock(previous: Optional[set[Any]]) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
