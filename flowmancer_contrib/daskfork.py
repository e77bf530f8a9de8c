"""Task processes on a Dask worker come from a fork server of the worker's own (``flowmancer.forkserver``).

Why: a Dask worker always has threads (its event loop, its executor threads), and ``fork()`` beside them could
leave the child a lock some thread held, forever (Python 3.12+ warns). The server is a fresh, single-threaded
interpreter started once per worker process and code version; it imports a task's module when it first
unpickles one of its instances. It kills what it forked when the worker process goes (its socket closes). The
worker's threads share it under one lock.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any, Optional

from flowmancer.executor import signal_group
from flowmancer.forkserver import ForkServer, ServerGone
from flowmancer.process import pidfds_work

_LOCK = threading.Lock()
_SERVERS: dict[Optional[str], ForkServer] = {}  # by the digest of the shipped code (None: the installed code)


def prepare(code: Optional[str]) -> None:
    """Have a server for the code ``code`` names; called where ``sys.path`` is that code's (``use_code``)."""
    with _LOCK:
        server = _SERVERS.get(code)
        if (server is None or not server.alive) and pidfds_work():
            server = ForkServer()
            server.load({})  # the worker's sys.path and environment now; task modules are imported on demand
            _SERVERS[code] = server


class WorkerChild:
    """A task process the worker's fork server made (the ``ForkedChild`` methods the worker side uses)."""

    def __init__(self, server: ForkServer, pid: int, sentinel: int) -> None:
        self.server, self.pid, self.sentinel = server, pid, sentinel
        self.exitcode: Optional[int] = None
        self._joined = False

    def is_alive(self) -> bool:
        return not self._joined

    def terminate(self) -> None:
        if not self._joined:
            signal_group(self.pid, signal.SIGTERM)

    def join(self) -> Optional[int]:
        """The exit code (called once ``sentinel``, a pidfd, is readable: the server reports it at once)."""
        if not self._joined:
            with _LOCK:
                self.exitcode = self.server.exitcode(self.pid)
            self._joined = True
        return self.exitcode

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def start(code: Optional[str], args: tuple[Any, ...], snapshot: dict[str, Any], fds: tuple[int, int, int]) -> Any:
    """Start the task process in the server for ``code``: ``args`` are ``(instance, info, workdir,
    memory_limit_mb)``, ``fds`` its event pipe and output pipes. ``None``: fork it another way (no server, or
    pickle cannot take the arguments)."""
    try:
        payload = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001
        return None
    with _LOCK:
        server = _SERVERS.get(code)
        if server is None or not server.wait_ready():
            return None
        try:
            if not server.replace_shared(snapshot):
                return None
            child = server.spawn(payload, fds)
            pid, sentinel = child.pid, child.sentinel
        except ServerGone:
            return None
    if pid is None or sentinel < 0:  # it may have forked the task: starting another could run it twice
        raise RuntimeError("the worker's fork server stopped before it answered; the attempt is lost")
    return WorkerChild(server, pid, sentinel)
