"""``SQLiteCheckpointer``: checkpoints in a SQLite file (stdlib ``sqlite3``), one row per run, history kept.

Use it from the job YAML (the module must be imported: list ``flowmancer_contrib.sqlite`` in
``config.extension_packages`` or import it from a task module)::

    config:
      extension_packages: [flowmancer_contrib]
    checkpointer:
      checkpointer: SQLiteCheckpointer
      parameters: {database: ./.flowmancer/checkpoints.sqlite3}

``clear_checkpoint`` marks the run's row as cleared instead of deleting it, so the table is a history
of runs; ``read_checkpoint`` returns the newest uncleared row for the job name.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import defaultdict
from typing import Any, Iterator, Optional

from pydantic import PrivateAttr

from flowmancer.checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError, checkpointer
from flowmancer.checkpointer.codec import decode, encode, encode_value

SCHEMA = """
CREATE TABLE IF NOT EXISTS flowmancer_checkpoint (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    states TEXT NOT NULL,
    shared TEXT NOT NULL,
    cleared INTEGER NOT NULL DEFAULT 0
)
"""


@checkpointer
class SQLiteCheckpointer(Checkpointer):
    database: str = "./.flowmancer/checkpoints.sqlite3"

    _row: Optional[int] = PrivateAttr(default=None)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection, in a transaction, closed at the end: an unclosed one is freed only by the cyclic
        garbage collector, at any time, in any thread, or in a process forked meanwhile."""
        path = self.resolve_path(self.database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        conn = sqlite3.connect(path, timeout=30)
        try:
            if new:
                path.chmod(0o600)
            with conn:
                conn.execute(SCHEMA)
                yield conn
        finally:
            conn.close()

    def write_checkpoint(self, name: str, content: CheckpointContents) -> None:
        states = json.dumps({s: sorted(names) for s, names in content.states.items()})
        shared = json.dumps([[encode(k), encode_value(v)] for k, v in content.shared_dict.items()])
        now = time.time()
        with self._connect() as conn:
            if self._row is None:
                cur = conn.execute(
                    "INSERT INTO flowmancer_checkpoint (name, started, updated, states, shared) VALUES (?,?,?,?,?)",
                    (name, now, now, states, shared),
                )
                self._row = cur.lastrowid
            else:
                conn.execute(
                    "UPDATE flowmancer_checkpoint SET updated=?, states=?, shared=? WHERE id=?",
                    (now, states, shared, self._row),
                )

    def read_checkpoint(self, name: str) -> CheckpointContents:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id, states, shared FROM flowmancer_checkpoint"
                " WHERE name=? AND cleared=0 ORDER BY id DESC LIMIT 1",
                (name,),
            ).fetchone()
        if row is None:
            raise NoCheckpointAvailableError(f"no checkpoint for '{name}' in {self.resolve_path(self.database)}")
        states: dict[str, set[str]] = defaultdict(set)
        for state, names in json.loads(row[1]).items():
            states[state].update(names)
        shared: dict[Any, Any] = {decode(k): decode(v) for k, v in json.loads(row[2])}
        return CheckpointContents(name=name, states=dict(states), shared_dict=shared)

    def clear_checkpoint(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE flowmancer_checkpoint SET cleared=1 WHERE name=? AND cleared=0", (name,))

    def history(self, name: str) -> list[tuple[int, float, float, bool]]:
        """(id, started, updated, cleared) of every run of ``name``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, started, updated, cleared FROM flowmancer_checkpoint WHERE name=? ORDER BY id", (name,)
            ).fetchall()
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]
