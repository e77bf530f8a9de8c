"""``FileLogger``: one folder per run, one file per task, one line per log line, flushed per line."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from pydantic import PrivateAttr

from ..files import file_name
from .logger import Logger, logger

if TYPE_CHECKING:
    from ..eventbus.log import SerializableLogEvent

RUN_DIR_FORMAT = "%Y-%m-%dT%H-%M-%S.%f"


def run_dir_time(name: str) -> Optional[float]:
    """When the run of the folder ``name`` started; ``None`` if it is not a run folder's name. Exactly
    ``RUN_DIR_FORMAT``'s zero-padded shape (``strptime`` would also take ``2026-1-2T...``, and its import
    costs every run ~1 ms)."""
    parts = (name[0:4], name[5:7], name[8:10], name[11:13], name[14:16], name[17:19], name[20:])
    digits = "".join(parts)
    if len(name) != 26 or name[4:20:3] != "--T--." or not (digits.isascii() and digits.isdigit()):
        return None
    try:
        y, mo, d, h, mi, sec, us = (int(p) for p in parts)
        return dt.datetime(y, mo, d, h, mi, sec, us).timestamp()
    except ValueError:  # no such date or time
        return None


#: log files are readable by the owner and group only: task output may hold sensitive data
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class _Files:
    """The run folder and one open descriptor per task (a plain object: see ``FileLogger._state``)."""

    __slots__ = ("run_dir", "fds", "lock")

    def __init__(self, run_dir: Path, lock: int) -> None:
        self.run_dir = run_dir
        self.fds: dict[str, int] = {}
        self.lock = lock  # the run folder, locked while the run lives: see ``FileLogger._remove_old_runs``

    def fd(self, name: str) -> int:
        fd = self.fds.get(name)
        if fd is None:
            fd = self.fds[name] = os.open(self.run_dir / file_name(name, ".log"), _OPEN_FLAGS, 0o640)
        return fd

    def write(self, name: str, text: str) -> None:
        """One ``write()`` per event, unbuffered: the file is always current, and the text is never torn."""
        data = text.encode("utf-8", "replace")
        fd = self.fd(name)
        while data:
            data = data[os.write(fd, data) :]

    def close(self, name: Optional[str] = None) -> None:
        for n in [name] if name is not None else list(self.fds):
            fd = self.fds.pop(n, None)
            if fd is not None:
                os.close(fd)
        if name is None and self.lock >= 0:
            os.close(self.lock)
            self.lock = -1


def _stamp(ts: float, _last: list[tuple[int, str]] = [(-1, "")]) -> str:  # noqa: B006 - a cache of one
    """``ts`` as local ISO time to the millisecond; consecutive lines mostly share one, formatted once (one
    tuple in one slot: a thread reading it meanwhile sees an old pair or a new one, never half of each)."""
    ms = int(ts * 1000)
    cached = _last[0]
    if cached[0] != ms:
        cached = _last[0] = (ms, dt.datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds"))
    return cached[1]


def format_lines(severity: str, message: Union[str, list[str]], timestamp: float) -> str:
    """Lines of a log file, ``[time] SEVERITY - text`` each: a message (split at its newlines), or lines."""
    prefix = f"[{_stamp(timestamp)}] {severity} - "
    lines = message.split("\n") if isinstance(message, str) else message
    return prefix + ("\n" + prefix).join(lines) + "\n" if lines else ""


@logger
class FileLogger(Logger):
    """Writes ``<base_log_dir>/<run start time>/<task name>.log``; each line is
    ``[ISO timestamp] SEVERITY - message``. Runs older than ``retention_days`` are removed when a run
    starts (a negative value keeps them forever), never the folder of a run still going. Task names that
    are not plain file names get a distinct, shortened file name (``files.file_name``)."""

    base_log_dir: str = "./logs"
    retention_days: int = 10

    # One private attribute holding a plain object: pydantic serves each private attribute through
    # ``__getattr__`` (microseconds each), and ``update`` runs for every line of every task.
    _state: Optional[_Files] = PrivateAttr(default=None)

    @property
    def run_dir(self) -> Optional[Path]:
        return None if self._state is None else self._state.run_dir

    async def on_create(self) -> None:
        self.open_run()

    # The built-in plugin ``filelogger`` drives a ``FileLogger`` of the job directly, from the report hooks
    # (``loggers/default.py``), with the synchronous methods below; ``update`` and the ``async`` lifecycle
    # are the original API, for a subclass or a caller of its own.

    def open_run(self) -> None:
        """Make and lock this run's folder, then remove old ones (``retention_days``)."""
        base = self.resolve_path(self.base_log_dir)
        base.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Made under a name no other run removes, locked, then renamed: never removable while the run lives.
        tmp = base / f".starting-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir(mode=0o750)
        lock = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        fcntl.flock(lock, fcntl.LOCK_SH)
        start = dt.datetime.now()
        run_dir = base / start.strftime(RUN_DIR_FORMAT)
        while run_dir.exists():  # two runs in the same microsecond: keep both
            start += dt.timedelta(microseconds=1)
            run_dir = base / start.strftime(RUN_DIR_FORMAT)
        tmp.rename(run_dir)
        self._state = _Files(run_dir, lock)
        self._remove_old_runs(base, run_dir)

    def _remove_old_runs(self, base: Path, own: Path) -> None:
        """Remove run folders older than ``retention_days``, except those whose run still goes (locked)."""
        if self.retention_days < 0:
            return
        cutoff = time.time() - self.retention_days * 86400
        for d in base.iterdir():
            when = run_dir_time(d.name)
            if when is None:
                continue  # not a run folder of ours
            if d == own or when >= cutoff or not d.is_dir() or d.is_symlink():
                continue
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its run is still going
                os.close(fd)
                continue
            try:
                shutil.rmtree(d, ignore_errors=True)
            finally:
                os.close(fd)

    def write(self, task: str, severity: str, message: str, timestamp: float) -> None:
        """One log event (one line or several) of ``task``, each line as ``[time] SEVERITY - text``."""
        self.write_text(task, format_lines(severity, message, timestamp))

    def write_text(self, task: str, text: str) -> None:
        """Append ``text`` (whole lines, as ``format_lines`` makes them) to the task's file in one write."""
        files = self._state
        assert files is not None, "open_run() must run first"
        files.write(task, text)

    def start_attempt(self, task: str, attempt: int, timestamp: float) -> None:
        """Open the task's file (a later attempt writes a separator line into the same file)."""
        files = self._state
        assert files is not None, "open_run() must run first"
        if attempt > 1:
            files.write(task, f"[{_stamp(timestamp)}] INFO - ----- attempt {attempt} -----\n")
        else:
            files.fd(task)

    def end_attempt(self, task: str) -> None:
        if self._state is not None:
            self._state.close(task)

    def close_run(self) -> None:
        if self._state is not None:
            self._state.close()

    async def update(self, evt: SerializableLogEvent) -> None:
        from ..eventbus.log import LogEndEvent, LogStartEvent, LogWriteEvent  # not before: see loggers.logger

        if isinstance(evt, LogWriteEvent):
            self.write(evt.name, evt.severity.value, evt.message, evt.timestamp)
        elif isinstance(evt, LogStartEvent):
            self.start_attempt(evt.name, evt.attempt, evt.timestamp)
        elif isinstance(evt, LogEndEvent):
            self.end_attempt(evt.name)

    async def on_destroy(self) -> None:
        self.close_run()
