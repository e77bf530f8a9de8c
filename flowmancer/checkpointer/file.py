"""``FileCheckpointer``: an append-only JSON-lines journal per job, crash-safe and O(1) per change.

The file starts with a header and a full snapshot; each state change or ``shared_dict`` write appends one
line with a single ``write()``. When the journal grows past a few times the number of records a snapshot
holds, it is compacted by writing a fresh snapshot to a new temp file and renaming it over the old one.
Files are created 0600 (``O_EXCL|O_NOFOLLOW``: never through a planted link) in a 0700 folder.

Reading is strict. A torn last record (the runner was killed mid-write) is ignored; anything else that
cannot be read is a ``CheckpointError`` naming the file, the line and what is wrong, never a silent fresh
start. Nothing in the file runs code (no pickle).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Optional

from ..errors import CheckpointError
from ..files import NotRegular, file_name, read_regular
from ..states import ExecutionState
from .checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError, checkpointer
from .codec import decode, encode, encode_value

FORMAT = 1
MAX_BYTES = 1 << 30  # far beyond what a job writes; a bound for a file that is not a checkpoint
_STATES = frozenset(s.value for s in ExecutionState)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
START_OVER = (
    "to start over, run without -r or with --fresh (the checkpoint is replaced); move the file away first to keep it"
)

#: one encoder for every record: ``json.dumps`` with non-default separators builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def _dump(record: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(record) + "\n").encode()


def write_error(path: Path, exc: OSError) -> CheckpointError:
    """What to say when ``path`` (the checkpoint or its folder) cannot be written."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space on the disk that holds {path.parent}"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = f"something that is not a folder is in the way in {path}: remove or rename it, or set checkpoint_dir"
    elif exc.errno == errno.ELOOP:
        hint = f"{path} is a symbolic link, which a checkpoint never follows: remove it"
    else:
        hint = f"make {path.parent} writable, or give FileCheckpointer another checkpoint_dir"
    return CheckpointError(f"cannot write the checkpoint {path}: {reason}", hint)


class _Journal:
    __slots__ = ("fd", "records", "limit")

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.records, self.limit = fd, 0, limit


@checkpointer
class FileCheckpointer(Checkpointer):
    checkpoint_dir: str = "./.flowmancer"

    # -- the standard API (full contents) -------------------------------------------------------------

    def folder(self) -> Path:
        return self.resolve_path(self.checkpoint_dir)

    def path_for(self, name: str) -> Path:
        return self.folder() / file_name(name, ".jsonl")

    def write_checkpoint(self, name: str, content: CheckpointContents) -> None:
        states = {t: s for s, names in content.states.items() for t in names}
        self._replace(self.path_for(name), name, states, content.shared_dict)

    def read_checkpoint(self, name: str) -> CheckpointContents:
        return read_journal(self.path_for(name), name)

    def clear_checkpoint(self, name: str) -> None:
        self.close_journal()
        try:
            self.path_for(name).unlink()
        except FileNotFoundError:
            pass

    # -- writing -------------------------------------------------------------------------------------

    # One private attribute holding a plain object: pydantic serves each private attribute through
    # ``__getattr__`` (microseconds each), and this runs on every state change.
    _journal: Optional[_Journal] = None

    def prepare(self) -> Path:
        """Make the folder (0700; an existing one of ours is tightened to 0700); ``CheckpointError`` if it
        cannot be."""
        folder = self.folder()
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = folder.stat()
        except FileExistsError:
            raise CheckpointError(
                f"the checkpoint folder {folder} is a file",
                "remove or rename it, or give FileCheckpointer another checkpoint_dir",
            ) from None
        except OSError as exc:
            raise write_error(folder / "x", exc) from None
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            try:
                os.chmod(folder, 0o700)  # it holds shared_dict values: the owner's only
            except OSError:
                pass
        return folder

    def _replace(self, path: Path, name: str, states: dict[str, str], shared: dict[Any, Any]) -> None:
        """Write a new file (header and snapshot) beside ``path``, then rename it over ``path``."""
        self.prepare()
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        header = _dump({"flowmancer_checkpoint": FORMAT, "name": name})
        pairs = [[encode(k), encode_value(v)] for k, v in shared.items()]
        snap = _dump({"snapshot": {"states": states, "shared": pairs}})
        try:
            try:
                os.unlink(tmp)  # left by a killed run with our pid; unlink never follows a link
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            try:
                _write_all(fd, header + snap)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise write_error(path, exc) from None

    def open_journal(self, name: str, states: dict[str, str], shared: dict[Any, Any]) -> None:
        """Start a journal from a full snapshot; later changes are appended with ``record_*``. Raises
        ``CheckpointError`` when it cannot be written."""
        self.close_journal()
        path = self.path_for(name)
        self._replace(path, name, states, shared)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
        except OSError as exc:
            raise write_error(path, exc) from None
        self._journal = _Journal(fd, 4 * (len(states) + len(shared)) + 1000)

    def _append(self, record: dict[str, Any]) -> None:
        """One ``write()`` per record. On an error (a full disk) the journal is closed, so the record cut
        short stays the last one (ignored when read back), and the error is raised for the caller."""
        journal = self._journal
        if journal is not None:
            data = _dump(record)
            try:
                if os.write(journal.fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "the record was written only in part (disk full?)")
            except OSError:
                self.close_journal()
                raise
            journal.records += 1

    def record_state(self, task: str, state: str) -> None:
        self._append({"t": task, "s": state})

    def record_shared(self, key: Any, value: Any, deleted: bool = False) -> None:
        self._append({"k": encode(key), "d": True} if deleted else {"k": encode(key), "v": encode_value(value)})

    def needs_compaction(self) -> bool:
        journal = self._journal
        return journal is not None and journal.records > journal.limit

    def close_journal(self) -> None:
        journal = self._journal
        if journal is not None:
            self._journal = None
            os.close(journal.fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- reading --------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return read_regular(path, MAX_BYTES, follow=False)
    except FileNotFoundError:
        raise NoCheckpointAvailableError(f"no checkpoint at {path}") from None
    except NotRegular as exc:
        raise CheckpointError(f"the checkpoint {exc}", f"remove it; {START_OVER}") from None
    except OSError as exc:
        what = "it is a symbolic link, which a checkpoint never is" if exc.errno == errno.ELOOP else exc.strerror
        raise CheckpointError(f"cannot read the checkpoint {path}: {what}", START_OVER) from None


def read_journal(path: Path, name: str) -> CheckpointContents:
    """Read a journal back (see the module's docstring for what counts as damage)."""
    data = _read_bytes(path)

    def damaged(line: int, what: str) -> CheckpointError:
        return CheckpointError(f"the checkpoint {path} is damaged at line {line}: {what}", START_OVER)

    lines = data.split(b"\n")
    last = lines.pop()  # what follows the last newline: nothing, or a record cut short
    records: list[tuple[int, Any]] = []
    for i, raw in enumerate(lines, 1):
        try:
            records.append((i, json.loads(raw)))
        except ValueError:
            raise damaged(i, "not a JSON record" if raw.strip() else "an empty line") from None
    if last.strip():
        try:
            records.append((len(lines) + 1, json.loads(last)))
        except ValueError:
            pass  # torn: the runner was stopped while it wrote this record
    if not records:
        raise CheckpointError(f"the checkpoint {path} is empty", START_OVER)
    line, head = records[0]
    if not (isinstance(head, dict) and isinstance(head.get("flowmancer_checkpoint"), int)):
        raise damaged(line, "it does not start with a flowmancer checkpoint header")
    if head["flowmancer_checkpoint"] > FORMAT:
        raise CheckpointError(
            f"the checkpoint {path} was written by a newer flowmancer (format {head['flowmancer_checkpoint']})",
            f"run it with that version, or {START_OVER}",
        )
    if head.get("name") != name:
        raise CheckpointError(f"the checkpoint {path} belongs to job {head.get('name')!r}, not {name!r}", START_OVER)
    if len(records) < 2 or not (isinstance(records[1][1], dict) and "snapshot" in records[1][1]):
        at = records[1][0] if len(records) > 1 else line + 1
        raise damaged(at, "the snapshot that follows the header is missing")
    states: dict[str, str] = {}
    shared: dict[Any, Any] = {}
    for line, rec in records[1:]:
        try:
            _apply(rec, states, shared)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise damaged(line, str(exc) or type(exc).__name__) from None
    by_state: dict[str, set[str]] = {}
    for task, state in states.items():
        by_state.setdefault(state, set()).add(task)
    return CheckpointContents(name=name, states=by_state, shared_dict=shared)


def _apply(rec: Any, states: dict[str, str], shared: dict[Any, Any]) -> None:
    """Apply one record; ``ValueError`` (or ``TypeError``) says what is wrong with it."""
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be a JSON object, not {type(rec).__name__}")
    if "snapshot" in rec:
        snap = rec["snapshot"]
        if not (
            isinstance(snap, dict) and isinstance(snap.get("states"), dict) and isinstance(snap.get("shared"), list)
        ):
            raise ValueError("a snapshot must hold 'states' (an object) and 'shared' (a list)")
        states.clear()
        shared.clear()
        for task, state in snap["states"].items():
            _check_state(task, state)
            states[task] = state
        for pair in snap["shared"]:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError("a shared_dict entry must be a [key, value] pair")
            shared[decode(pair[0])] = decode(pair[1])
    elif "t" in rec:
        _check_state(rec["t"], rec.get("s"))
        states[rec["t"]] = rec["s"]
    elif "k" in rec:
        key = decode(rec["k"])
        if rec.get("d"):
            shared.pop(key, None)
        elif "v" in rec:
            shared[key] = decode(rec["v"])
        else:
            raise ValueError("a shared_dict record without a value")
    else:
        raise ValueError(f"an unknown record (keys: {', '.join(sorted(map(str, rec)))[:80]})")


def _check_state(task: Any, state: Any) -> None:
    if not isinstance(task, str) or state not in _STATES:
        raise ValueError(f"not a task state: {str(task)[:80]!r} -> {str(state)[:40]!r}")
