"""``FileLogger``: one folder per run, one file per task, one line per log line, flushed per line."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path
from typing import IO, ClassVar, Optional

from pydantic import PrivateAttr

from ..eventbus.log import LogEndEvent, LogStartEvent, LogWriteEvent, SerializableLogEvent
from .logger import Logger, logger

RUN_DIR_FORMAT = "%Y-%m-%dT%H-%M-%S.%f"


def _private(path: str, flags: int) -> int:
    """Log files are readable by the owner and group only: task output may hold sensitive data."""
    return os.open(path, flags, 0o640)


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


@logger
class FileLogger(Logger):
    """Writes ``<base_log_dir>/<run start time>/<task name>.log``; each line is
    ``[ISO timestamp] SEVERITY - message``. Runs older than ``retention_days`` are removed when a run
    starts (a negative value keeps them forever)."""

    _fm_inline: ClassVar[bool] = True  # local file writes only: runs on the scheduler thread (see components)
    base_log_dir: str = "./logs"
    retention_days: int = 10

    _run_dir: Optional[Path] = PrivateAttr(default=None)
    _files: dict[str, IO[str]] = PrivateAttr(default_factory=dict)

    @property
    def run_dir(self) -> Optional[Path]:
        return self._run_dir

    async def on_create(self) -> None:
        base = self.resolve_path(self.base_log_dir)
        base.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._remove_old_runs(base)
        start = dt.datetime.now()
        run_dir = base / start.strftime(RUN_DIR_FORMAT)
        while run_dir.exists():  # two runs in the same microsecond: keep both
            start += dt.timedelta(microseconds=1)
            run_dir = base / start.strftime(RUN_DIR_FORMAT)
        run_dir.mkdir(mode=0o750)
        self._run_dir = run_dir

    def _remove_old_runs(self, base: Path) -> None:
        if self.retention_days < 0:
            return
        cutoff = time.time() - self.retention_days * 86400
        for d in base.iterdir():
            try:
                when = dt.datetime.strptime(d.name, RUN_DIR_FORMAT).timestamp()
            except ValueError:
                continue  # not a run folder of ours
            if d.is_dir() and when < cutoff:
                shutil.rmtree(d, ignore_errors=True)

    def _file(self, name: str) -> IO[str]:
        f = self._files.get(name)
        if f is None:
            assert self._run_dir is not None, "on_create() must run first"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            f = self._files[name] = open(  # noqa: SIM115 - closed on LogEndEvent / on_destroy
                self._run_dir / f"{safe}.log", "a", encoding="utf-8", buffering=1, opener=_private
            )
        return f

    async def update(self, evt: SerializableLogEvent) -> None:
        if isinstance(evt, LogWriteEvent):
            prefix = f"[{_stamp(evt.timestamp)}] {evt.severity.value} - "
            self._file(evt.name).write("".join(prefix + line + "\n" for line in evt.message.split("\n")))
        elif isinstance(evt, LogStartEvent):
            if evt.attempt > 1:
                self._file(evt.name).write(f"[{_stamp(evt.timestamp)}] INFO - ----- attempt {evt.attempt} -----\n")
            else:
                self._file(evt.name)
        elif isinstance(evt, LogEndEvent):
            f = self._files.pop(evt.name, None)
            if f is not None:
                f.close()

    async def on_destroy(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
