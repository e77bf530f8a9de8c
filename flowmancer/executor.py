"""The executor contract: what the scheduler needs from a running attempt, wherever it runs.

The scheduler (``runner``) starts an attempt through the ``flowmancer_task_spawn`` hook and gets a
``TaskHandle`` back; it waits on the handle's ``waitables`` in its epoll set and reads ``messages``
from it. The built-in ``localexec`` plugin (one OS process per attempt, see ``process``) and the Dask executor
in ``flowmancer_contrib`` implement it; neither imports the other, and the scheduler imports neither.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Optional

from . import messages


class TaskHandle:
    """What the scheduler needs from a running attempt, wherever it runs.

    Subclass it (the built-in ``localexec.ProcessHandle`` and ``flowmancer_contrib.dask.DaskHandle`` do) and
    implement ``waitables``, ``read``, ``terminate`` and ``kill``; the rest have defaults. An object that only
    has the same methods works too (the scheduler looks up the optional ones)."""

    def waitables(self) -> list[Any]:
        """Objects with a ``fileno()`` (or file descriptors) that become readable when there is news.

        The list may change after ``read``; the scheduler then stops watching what left it and calls
        ``release`` for it. Several handles may return the same object (the scheduler watches it once and
        wakes them all): a fork server's socket, while they wait for its answer."""
        raise NotImplementedError

    def read(self, ready: set[Any]) -> list[messages.Event]:
        """Events available now (never blocks), in order (see ``messages``); the last is ``exit`` once done."""
        raise NotImplementedError

    def drain(self) -> list[messages.Event]:
        """Events available now without waiting, called when the task reported success and is settled
        before its process has exited (``ProcessHandle`` returns the output still in its pipes)."""
        return []

    def waiting(self) -> bool:
        """``True`` while news may come without any of its waitables becoming readable (what it
        waits for was read on another handle's behalf); the scheduler then calls ``read`` with nothing
        ready, and asks for ``waitables`` again, before each wait."""
        return False

    def release(self, waitable: Any) -> None:
        """The scheduler no longer watches ``waitable``: close it now. A handle never closes a waitable
        itself, since a forked task may still hold a copy of it and the scheduler's epoll set would keep
        reporting the copy under a file descriptor number that has been reused."""

    def terminate(self) -> None:
        """Ask the attempt to stop: it runs ``on_abort`` and ends soon."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop it now."""
        raise NotImplementedError


def signal_group(pid: int, sig: int) -> None:
    """Signal a task process and everything it started (its process group), or just it if it has none."""
    if pid <= 0:  # never the caller's own group (0) or every process (-1)
        return
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def describe_exit(code: Optional[int]) -> str:
    """Why an attempt that never reported a result ended, from its exit code."""
    if code is None:
        return "the process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process killed by {name} (signal {-code})"
    return f"process exited with code {code} without reporting a result"
