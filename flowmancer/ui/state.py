"""The live view's record of the run, in its server process: what ``/api/state`` shows, what ``/api/events`` streams.

Events arrive as JSON lines from the runner (or from each ``--watch`` rerun in turn), in batches (one per
wake-up of the scheduler). Each event gets a number (``seq``); a client resumes from a number (``?since=`` or
SSE's ``Last-Event-ID``). Each client gets a batch as one block of Server-Sent Events, sent by the
``Broadcaster`` without waiting; one too far behind is dropped, so a stuck browser costs a buffer, never the run.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from itertools import islice
from typing import Any

from .broadcast import CLIENT_BACKLOG, Broadcaster

#: log lines kept per task for ``/api/state`` (the task's log file has every line)
LOG_TAIL = 200
#: events kept for a client that resumes; one that asks for older ones is told to read ``/api/state`` again
KEPT = 100_000
#: events sent but not yet applied to the record, at most (it is brought up to date on request)
PENDING = 50_000


def sse(seq: int, data: bytes) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (seq, data)


class State:
    """The run as its events told it: the job, each task (state, attempts, log tail), the numbered events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0
        self.run = 0  # a ``--watch`` rerun is run 2, 3, ...
        self.job: dict[str, Any] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.events: deque[tuple[int, bytes]] = deque(maxlen=KEPT)  # (seq, its Server-Sent Event)
        self.clients = Broadcaster()
        self.pending: list[bytes] = []  # events sent but not yet applied to the record

    def _task(self, name: str) -> dict[str, Any]:
        task = self.tasks.get(name)
        if task is None:  # a run-time fan-out's instance: known from its first event
            task = self.tasks[name] = {"name": name, "state": "PENDING", "dependencies": [], "attempts": []}
        return task

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "job":
            self.job = {k: v for k, v in event.items() if k not in ("tasks", "type", "seq")}
            self.tasks = {t["name"]: t for t in event.get("tasks", [])}
        elif kind == "state":
            task = self._task(event["task"])
            task["state"] = event["state"]
            if event["state"] == "RUNNING":
                task["running_since"] = event["time"]
        elif kind == "result":
            task = self._task(event["task"])
            task.pop("running_since", None)
            task["attempts"].append({k: v for k, v in event.items() if k not in ("type", "task", "seq")})
        elif kind == "task":  # added while running (a fan-out's instance)
            self.tasks[event["task"]["name"]] = event["task"]
        elif kind == "log":
            tail = self._task(event["task"]).setdefault("log", [])
            tail.extend(event["lines"])
            del tail[:-LOG_TAIL]
        elif kind == "end":
            self.job.update(exitcode=event.get("exitcode"), end=event.get("end"), summary=event.get("summary"))

    def add(self, lines: list[bytes], run: int) -> None:
        """Number and send a batch of events (JSON lines) from ``run``'s feed. Each is sent as it came,
        its number spliced in, and applied to the record only when someone asks for it (``snapshot``):
        the stream to fifty pages costs no parsing."""
        with self.lock:
            block = []
            for line in lines:
                line = line.strip()
                if line.startswith(b'{"type":"job"'):  # a run (or a rerun) starts, or the runner resyncs
                    self._apply_pending()
                    event = json.loads(line)
                    event["rerun"] = run > 1 and run != self.run  # the page says a rerun started
                    event["resync"] = run == self.run  # the runner dropped events (its pipe was full): here is all
                    event["run"] = self.run = run
                    self.seq += 1
                    self._apply(event)
                    data = json.dumps({"seq": self.seq, **event}).encode()
                elif line.startswith(b"{") and run == self.run:  # not a stopped run's last words
                    self.seq += 1
                    self.pending.append(line)
                    data = b'{"seq":%d,%s' % (self.seq, line[1:])
                else:
                    continue
                self.events.append((self.seq, sse(self.seq, data)))
                block.append(self.events[-1][1])
            if len(self.pending) > PENDING:
                self._apply_pending()
            if block:
                self.clients.publish(b"".join(block))

    def _apply_pending(self) -> None:
        for line in self.pending:
            try:
                self._apply(json.loads(line))
            except (ValueError, KeyError, TypeError):  # never from our runner; not worth the server
                continue
        self.pending.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self._apply_pending()
            counts: dict[str, int] = {}
            up_to_date = 0
            for t in self.tasks.values():
                counts[t["state"]] = counts.get(t["state"], 0) + 1
                up_to_date += bool(t["attempts"] and t["attempts"][-1].get("up_to_date"))
            return {
                "seq": self.seq,
                "now": time.time(),
                "job": {**self.job, "run": self.run},
                "counts": counts,
                "up_to_date": up_to_date,  # of the COMPLETED: not run again (--incremental, --watch)
                "tasks": list(self.tasks.values()),
            }

    def subscribe(self, since: int, sock: socket.socket) -> None:
        """Send ``sock`` the events after ``since``, then each new batch."""
        with self.lock:
            first = self.events[0][0] if self.events else self.seq + 1
            behind = max(0, self.seq - since)
            kept = b""
            if since < first - 1:  # older than kept: the client reads /api/state again
                kept = sse(self.seq, b'{"type":"gap"}')
            elif behind:
                kept = b"".join(e for _, e in islice(self.events, len(self.events) - behind, None))
                if len(kept) > CLIENT_BACKLOG:
                    kept = sse(self.seq, b'{"type":"gap"}')
            self.clients.join(sock, b"retry: 1000\n\n" + kept)
