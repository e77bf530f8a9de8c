"""The run lock: a run holds an exclusive ``flock`` on ``<checkpoint folder>/<job>.lock`` for its whole life.

So two runs of one job never run at once, and never read or write each other's checkpoint: the second
exits at once, naming the first (pid, start time, command), and starts no task. The kernel drops the lock
when the last descriptor of it closes, so the lock of a run that died never blocks the next (no pid file to
go stale); the helpers that may outlive a killed runner (``lifeline``) hold it until its task processes are
gone, and a run that finds the lock of a dead runner waits for them a moment instead of failing.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from ..errors import AlreadyRunning
from ..lifeline import KILL_WAIT_SECONDS
from .file import write_error

_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class RunLock:
    def __init__(self, path: Path, job_name: str, jobfile: Optional[Path]) -> None:
        self.path = path
        self.job_name = job_name
        self.jobfile = jobfile
        self.fd: Optional[int] = None
        self.warning = ""  # set when the file system cannot lock: the run goes on unprotected

    def acquire(self) -> None:
        """Take the lock or raise ``AlreadyRunning`` (``CheckpointError`` if the file cannot be made)."""
        try:
            fd = os.open(self.path, _FLAGS, 0o600)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        try:
            if not self._lock(fd):
                raise self._busy(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        owner = {
            "pid": os.getpid(),
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": os.uname().nodename,
            "job": str(self.jobfile) if self.jobfile else None,
            "argv": sys.argv,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        except OSError:
            pass  # who holds it is only for the message of a second run

    def _lock(self, fd: int) -> bool:
        """``True`` once locked. A lock still held after its runner died is held by that run's helpers,
        killing its task processes: wait for them (a moment) rather than fail."""
        deadline: Optional[float] = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError as exc:  # e.g. a file system without locks
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self.warning = (
                    f"WARNING: cannot lock {self.path} ({exc.strerror}): nothing stops a second run of this job "
                    "from running at the same time"
                )
                return True
            owner = _owner(fd)
            if deadline is None:
                if _alive(owner):
                    return False
                deadline = time.monotonic() + KILL_WAIT_SECONDS + 2
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _busy(self, fd: int) -> AlreadyRunning:
        owner = _owner(fd)
        pid = owner.get("pid", "?")
        started = owner.get("started", "at an unknown time")
        host = owner.get("host")
        where = f" on {host}" if host and host != os.uname().nodename else ""
        cmd = " ".join(str(a) for a in owner.get("argv") or [])
        how = f" ({cmd})" if cmd else ""
        if _alive(owner):
            return AlreadyRunning(
                f"job '{self.job_name}' is already running: pid {pid}{where}, started {started}{how}; "
                f"its lock is {self.path}",
                f"wait for it to finish, or stop it (kill {pid}); two runs of one job would run its tasks twice",
            )
        return AlreadyRunning(
            f"job '{self.job_name}' is locked by the helpers of a run that ended (pid {pid}, started {started}): "
            f"they have not finished killing its task processes; its lock is {self.path}",
            "look for processes of that run (ps -eo pid,pgid,args) and stop them, then run again",
        )

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the lock goes with the last descriptor of it
            self.fd = None


def _owner(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 65536, 0)
        owner = json.loads(data) if data.strip() else {}
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(owner: dict[str, Any]) -> bool:
    """Is the run that wrote ``owner`` alive? (Unknown, or on another host: assume so.)"""
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("host") not in (None, os.uname().nodename):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
