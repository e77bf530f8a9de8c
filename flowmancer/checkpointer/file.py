"""``FileCheckpointer``: an append-only JSON-lines journal per job, crash-safe and O(1) per change.

The file starts with a full snapshot; each state change or ``shared_dict`` write appends one line with a
single ``write()``. After a ``kill -9`` at any instant the file reads back: a torn last line is ignored.
When the journal grows past a few times the number of records a snapshot holds, it is compacted by
writing a fresh snapshot to a temp file and renaming it over the old one. Files are created 0600.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, Optional

from .checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError, checkpointer
from .codec import decode, encode

FORMAT = 1


#: one encoder for every record: ``json.dumps`` with non-default separators builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def _dump(record: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(record) + "\n").encode()


class _Journal:
    __slots__ = ("fd", "records", "limit")

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.records, self.limit = fd, 0, limit


@checkpointer
class FileCheckpointer(Checkpointer):
    _fm_inline: ClassVar[bool] = True  # local file writes only: runs on the scheduler thread (see components)
    checkpoint_dir: str = "./.flowmancer"

    # -- the standard API (full contents) -------------------------------------------------------------

    def path_for(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "flowmancer"
        return self.resolve_path(self.checkpoint_dir) / f"{safe}.jsonl"

    def write_checkpoint(self, name: str, content: CheckpointContents) -> None:
        states = {t: s for s, names in content.states.items() for t in names}
        self._replace(self.path_for(name), name, states, content.shared_dict)

    def read_checkpoint(self, name: str) -> CheckpointContents:
        path = self.path_for(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NoCheckpointAvailableError(f"no checkpoint for '{name}' at {path}") from None
        states: dict[str, str] = {}
        shared: dict[Any, Any] = {}
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                if i >= len(lines) - 2:  # a torn last line: the run was killed mid-write
                    break
                raise NoCheckpointAvailableError(f"checkpoint {path} is corrupt at line {i + 1}") from None
            if "snapshot" in rec:
                states = dict(rec["snapshot"]["states"])
                shared = {decode(k): decode(v) for k, v in rec["snapshot"]["shared"]}
            elif "t" in rec:
                states[rec["t"]] = rec["s"]
            elif "k" in rec:
                key = decode(rec["k"])
                if rec.get("d"):
                    shared.pop(key, None)
                else:
                    shared[key] = decode(rec["v"])
        by_state: dict[str, set[str]] = defaultdict(set)
        for task, state in states.items():
            by_state[state].add(task)
        return CheckpointContents(name=name, states=dict(by_state), shared_dict=shared)

    def clear_checkpoint(self, name: str) -> None:
        self.close_journal()
        try:
            self.path_for(name).unlink()
        except FileNotFoundError:
            pass

    # -- the journal (what the checkpoint plugin uses for O(1) updates) ----------------------------------

    # One private attribute holding a plain object: pydantic serves each private attribute through
    # ``__getattr__`` (microseconds each), and this runs on every state change.
    _journal: Optional[_Journal] = None

    def _replace(self, path: Path, name: str, states: dict[str, str], shared: dict[Any, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        header = _dump({"flowmancer_checkpoint": FORMAT, "name": name})
        snap = _dump({"snapshot": {"states": states, "shared": [[encode(k), encode(v)] for k, v in shared.items()]}})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, header + snap)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def open_journal(self, name: str, states: dict[str, str], shared: dict[Any, Any]) -> None:
        """Start a journal from a full snapshot; later changes are appended with ``record_*``."""
        self.close_journal()
        path = self.path_for(name)
        self._replace(path, name, states, shared)
        self._journal = _Journal(os.open(path, os.O_WRONLY | os.O_APPEND), 4 * (len(states) + len(shared)) + 1000)

    def _append(self, record: dict[str, Any]) -> None:
        journal = self._journal
        if journal is not None:
            os.write(journal.fd, _dump(record))
            journal.records += 1

    def record_state(self, task: str, state: str) -> None:
        self._append({"t": task, "s": state})

    def record_shared(self, key: Any, value: Any, deleted: bool = False) -> None:
        self._append({"k": encode(key), "d": True} if deleted else {"k": encode(key), "v": encode(value)})

    def needs_compaction(self) -> bool:
        journal = self._journal
        return journal is not None and journal.records > journal.limit

    def close_journal(self) -> None:
        journal = self._journal
        if journal is not None:
            self._journal = None
            os.close(journal.fd)
