"""The live view's record of the run, in its server process: what ``/api/state`` shows, what ``/api/events`` streams.

Events arrive as JSON lines from the runner (or from each ``--watch`` rerun in turn). Each gets a number
(``seq``); a client resumes from a number (``?since=`` or SSE's ``Last-Event-ID``). Each client has a bounded
queue filled without waiting: one that falls ``CLIENT_QUEUE`` events behind is dropped (its browser reconnects
and resumes), so a stuck browser costs a queue, never the runner's time.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from itertools import islice
from typing import Any, Optional

#: events a client may fall behind before it is dropped
CLIENT_QUEUE = 10_000
#: log lines kept per task for ``/api/state`` (the task's log file has every line)
LOG_TAIL = 200
#: events kept for a client that resumes; one that asks for older ones is told to read ``/api/state`` again
KEPT = 100_000
#: a client is sent this (``None``) when it is dropped
DROPPED = None


class State:
    """The run as its events told it: the job, each task (state, attempts, log tail), the numbered events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0
        self.run = 0  # a ``--watch`` rerun is run 2, 3, ...
        self.job: dict[str, Any] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.events: deque[tuple[int, str]] = deque(maxlen=KEPT)
        self.clients: set[queue.Queue[Optional[tuple[int, str]]]] = set()

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

    def add(self, event: dict[str, Any], run: int) -> None:
        """Number ``event``, apply it, and queue it for every client. ``run``: which run's feed sent it."""
        with self.lock:
            if event.get("type") == "job":
                event["run"] = run
                event["rerun"] = run > 1 and run != self.run  # the page says a rerun started
                event["resync"] = run == self.run  # the runner dropped events (its pipe was full): here is all
                self.run = run
            elif run != self.run:  # a stopped run's last words, after the next one began
                return
            self.seq += 1
            event["seq"] = self.seq
            self._apply(event)
            data = json.dumps(event)
            self.events.append((self.seq, data))
            for q in list(self.clients):
                try:
                    q.put_nowait((self.seq, data))
                except queue.Full:  # it does not keep up: dropped (its browser reconnects and resumes)
                    self._drop(q)

    def _drop(self, q: queue.Queue[Optional[tuple[int, str]]]) -> None:
        self.clients.discard(q)
        with q.mutex:
            q.queue.clear()
        q.put_nowait(DROPPED)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            counts: dict[str, int] = {}
            for t in self.tasks.values():
                counts[t["state"]] = counts.get(t["state"], 0) + 1
            return {
                "seq": self.seq,
                "now": time.time(),
                "job": {**self.job, "run": self.run},
                "counts": counts,
                "tasks": list(self.tasks.values()),
            }

    def subscribe(self, since: int) -> queue.Queue[Optional[tuple[int, str]]]:
        """A queue of the events after ``since``, then each new one (``None``: dropped)."""
        q: queue.Queue[Optional[tuple[int, str]]] = queue.Queue(maxsize=CLIENT_QUEUE)
        with self.lock:
            first = self.events[0][0] if self.events else self.seq + 1
            behind = max(0, self.seq - since)
            if since < first - 1 or behind >= CLIENT_QUEUE:  # more than it may hold: it reads /api/state again
                q.put_nowait((self.seq, json.dumps({"type": "gap", "seq": self.seq})))
            elif behind:
                for kept in reversed(list(islice(reversed(self.events), behind))):
                    q.put_nowait(kept)
            self.clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[Optional[tuple[int, str]]]) -> None:
        with self.lock:
            self.clients.discard(q)
