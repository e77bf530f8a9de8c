"""The record of an incremental job: per task, what its last completed run depended on and wrote.

One JSON-lines file per job beside the checkpoint (``<checkpoint folder>/<job>.incremental.jsonl``),
appended one whole line per change with a single ``write()``: a task's record is replaced by its new one
(``{"t": name, "r": record}``), or marked as started (``{"t": name, "started": time}``: a run that is
killed before the task completes leaves it to rerun). The last line for a task wins, and a torn last line
(the runner killed mid-write) is ignored, so a run stopped at any instant leaves, per task, the old
record or the new one. When the file holds many more lines than tasks it is rewritten (a temp file renamed
over it) with one line per task of the job: its size stays bounded by the job's. Plain JSON: reading it
runs no code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from ..errors import CheckpointError
from ..files import NotRegular, read_regular

#: 2: modules of a folder without ``__init__.py`` are named from the collected folder (``tasks.wordcount``, was
#: ``wordcount``), which every task's class key holds
FORMAT = 2
MAX_BYTES = 1 << 30
_FLAGS = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class Record:
    """The records of one job, read once, appended to while the job runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lines = 0
        self._fd: Optional[int] = None
        #: the file was written by an older flowmancer (its ``FORMAT``): forgotten, and rewritten at the first change
        self.outdated: Optional[int] = None

    def load(self) -> Record:
        """Read the file (a missing one is an empty record); damage is a ``CheckpointError``."""
        try:
            data = read_regular(self.path, MAX_BYTES)
        except FileNotFoundError:
            return self
        except NotRegular as exc:
            raise CheckpointError(f"{self.path}: {exc}", "remove it (or run with --cache-clear)") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror}", "make it readable") from None
        lines = data.split(b"\n")
        torn = lines.pop()  # after the last newline: empty, or a line the runner was killed writing
        del torn
        for i, raw in enumerate(lines, 1):
            try:
                rec = json.loads(raw)
                if i == 1:
                    found = rec.get("format")
                    if isinstance(found, int) and not isinstance(found, bool) and 0 < found < FORMAT:
                        self.outdated = found
                        return self
                    if found != FORMAT:
                        raise ValueError(f"format {found!r}, this flowmancer reads {FORMAT}")
                    continue
                name = rec["t"]
                if "r" in rec:
                    self.tasks[name] = rec["r"]
                elif "started" in rec and name in self.tasks:
                    self.tasks[name] = {**self.tasks[name], "started": rec["started"]}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise CheckpointError(
                    f"{self.path}:{i}: the incremental record is damaged ({exc})",
                    "run with --cache-clear to start it afresh (every task then runs once)",
                ) from None
        self.lines = len(lines)
        return self

    def _open(self) -> int:
        if self._fd is None and self.outdated is not None:
            self.outdated = None
            self.rewrite(set())
        if self._fd is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                self._fd = os.open(self.path, _FLAGS)
            except FileNotFoundError:
                self.rewrite(set(self.tasks))
                self._fd = os.open(self.path, _FLAGS)
        return self._fd

    def _append(self, entry: dict[str, Any]) -> None:
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = self._open()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        self.lines += 1

    def started(self, name: str, when: float) -> None:
        if name in self.tasks:  # nothing recorded yet: nothing to call off
            self.tasks[name] = {**self.tasks[name], "started": when}
            self._append({"t": name, "started": when})

    def put(self, name: str, record: dict[str, Any]) -> None:
        self.tasks[name] = record
        self._append({"t": name, "r": record})

    def compact(self, keep: set[str]) -> None:
        """Rewrite the file when it holds far more lines than the job has tasks."""
        if self.lines > 2 * len(keep) + 64:
            self.rewrite(keep)

    def rewrite(self, keep: set[str]) -> None:
        self.close()
        self.tasks = {k: v for k, v in self.tasks.items() if k in keep}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        lines = [json.dumps({"format": FORMAT}, separators=(",", ":"))]
        lines += [json.dumps({"t": k, "r": v}, separators=(",", ":")) for k, v in self.tasks.items()]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            data = memoryview(("\n".join(lines) + "\n").encode())
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.lines = len(lines)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def clear(self) -> bool:
        self.close()
        self.tasks = {}
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
