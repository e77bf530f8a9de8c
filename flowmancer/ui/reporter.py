"""The runner's side of the live view: start the server process, send it the run's events, never wait for it.

Events are JSON lines, gathered while the scheduler handles a batch and written once per wake-up
(``flowmancer_runjob_idle``) to a non-blocking pipe. If the server falls behind and its pipe is full, what
does not fit waits (up to ``BACKLOG`` bytes); beyond that it is dropped and the next write sends the whole
state instead, so a stuck browser or server never blocks the scheduler and the page catches up.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Optional

from ..errors import UsageError
from ..job import Job, TaskRun
from ..markers import hookimpl
from ..states import ExecutionState, LogLines, TaskResult
from .plugin import LOOPBACK, URL_ENV

#: lines of a task sent to the page per batch (its last ones), and characters of one line (its log file has all)
MAX_LINES = 100
MAX_CHARS = 2000
#: bytes that may wait for a slow server before events are dropped (and the whole state sent after)
BACKLOG = 1 << 20
#: seconds between two writes of events (a page redraws at most 5 times a second)
FLUSH_EVERY = 0.05
#: one encoder for every event (``json.dumps`` with options makes a new one per call)
_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


class Helper:
    """The server process: listening before it starts (the runner binds, so the URL and any error are
    known at once), stopped when its stdin closes: at the run's end, or the runner's death."""

    def __init__(self, host: str, port: int, feed: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise UsageError(
                f"--ui {host}:{port}: cannot serve the live view there ({exc.strerror or exc}); "
                "pick another port, or 0 for a free one"
            ) from None
        self.token = "" if host in LOOPBACK else secrets.token_urlsafe(16)
        shown = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "::"):
            shown = socket.gethostname()
        self.url = f"http://{shown}:{listener.getsockname()[1]}/" + (f"?token={self.token}" if self.token else "")
        fds = [listener.fileno()]
        self.feed_path = ""
        if feed:  # --watch: each rerun connects here; the folder is the user's alone
            self.feed_path = str(Path(tempfile.mkdtemp(prefix="flowmancer-ui-")) / "feed")
            feeder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            feeder.bind(self.feed_path)
            feeder.listen()
            fds.append(feeder.fileno())
        args = [sys.executable, "-m", "flowmancer.ui.server", self.token, *map(str, fds)]
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=fds, start_new_session=True)
        finally:  # the server has them now
            listener.close()
            if feed:
                feeder.close()
        assert self.proc.stdin is not None
        self.fd = self.proc.stdin.fileno()
        os.set_blocking(self.fd, False)

    def close(self) -> None:
        """Close its stdin (it stops serving) and wait for it, briefly."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.feed_path:
            Path(self.feed_path).unlink(missing_ok=True)
            Path(self.feed_path).parent.rmdir()


class Feed:
    """JSON lines to a non-blocking pipe or socket, never waiting (see the module's docstring)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""
        self.midline = False  # what was written ends inside a line: its rest goes first, whatever is dropped
        self.stale = False  # events were dropped: send the whole state next

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        buf = self.pending + data
        try:
            n = os.write(self.fd, buf) if buf else 0
        except BlockingIOError:
            n = 0
        except OSError:  # the server is gone: no more live view, the run goes on
            self.fd = -1
            return
        if n:
            self.midline = buf[n - 1 : n] != b"\n"
        rest = buf[n:]
        if len(rest) > BACKLOG:
            self.pending = rest[: rest.find(b"\n") + 1] if self.midline else b""
            self.stale = True
        else:
            self.pending = rest


def _jsonable(task: TaskRun) -> dict[str, Any]:
    try:  # secrets shown as "**********" (pydantic's JSON form); a fan-out's own task holds none validated
        params = {} if task.definition.deferred else task.instance.model_dump(mode="json")
    except Exception:  # noqa: BLE001 - a parameter that cannot be shown is not worth failing the run for
        params = {}
    return {
        "name": task.name,
        "class": task.class_name,
        "state": task.state.value,
        "dependencies": list(task.dependencies),
        "tags": task.tags,
        "parameters": params,
        "attempts": [_attempt(r) for r in task.history],
        # a snapshot taken while it runs (a resync) keeps its growing bar
        **({"running_since": task.started_at} if task.state is ExecutionState.RUNNING else {}),
    }


def _attempt(r: TaskResult) -> dict[str, Any]:
    return {
        "attempt": r.attempt,
        "state": r.state.value,
        "start": r.start,
        "end": r.end,
        "exitcode": r.exitcode,
        "error": r.error,
        "will_retry": r.will_retry,
        "up_to_date": r.up_to_date,
    }


class Tail:
    """The last ``MAX_LINES`` lines a task wrote since the last batch, and how many came before them."""

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.skipped = 0

    def add(self, messages: list[str]) -> None:
        self.skipped += max(0, len(self.lines) + len(messages) - MAX_LINES)
        self.lines.extend(m if len(m) <= MAX_CHARS else m[:MAX_CHARS] + " …" for m in messages[-MAX_LINES:])


class UiReporter:
    """Registered for a run with the live view (``plugin.flowmancer_job_start``)."""

    def __init__(self, job: Job, where: Optional[tuple[str, int]], feed_path: Optional[str], linger: float) -> None:
        self.job = job
        self.linger = linger
        self.helper: Optional[Helper] = None
        self.conn: Optional[socket.socket] = None
        self.lines: list[str] = []  # events (JSON) of this batch
        self.logs: dict[str, Tail] = {}  # lines written since the last batch, by task
        self.attempts: dict[str, int] = {}  # the attempt each task's last lines came from
        self.quoted: dict[str, str] = {}  # task names as JSON strings
        self.flushed = 0.0  # time.monotonic() of the last write
        self.end: dict[str, Any] = {}  # how the run ended, once it has
        fd = -1
        if feed_path:  # a --watch rerun: the watcher's server (gone: no view, the run goes on)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(feed_path)
            except OSError:
                conn.close()
            else:
                self.conn, fd = conn, conn.fileno()
                os.set_blocking(fd, False)
            self.url = os.environ.get(URL_ENV, "")
        else:
            assert where is not None
            self.helper = Helper(*where)
            fd, self.url = self.helper.fd, self.helper.url
        self.feed = Feed(fd)
        self.feed.write(self._snapshot())

    def _snapshot(self) -> bytes:
        job = self.job
        changes = os.environ.get("WATCHFILES_CHANGES")
        try:
            changed = sorted({os.path.relpath(p, job.config.rootdir) for _, p in json.loads(changes or "[]")})
        except (ValueError, TypeError):
            changed = []
        event = {
            "type": "job",
            "name": job.name,
            "start": job.start_time,
            "changed": changed,
            "notes": list(job.notes),
            "tasks": [_jsonable(t) for t in job],
            **self.end,  # a snapshot sent after the end (events were dropped) says how it ended
        }
        return (_encode(event) + "\n").encode()

    def _add(self, event: dict[str, Any]) -> None:
        self.lines.append(_encode(event))
        if len(self.lines) >= 1000:  # a long batch: do not hold it all
            self.flush()

    def flush(self) -> None:
        for name in list(self.logs):
            self._lines_of(name)
        if self.feed.stale:
            self.lines.clear()
            self.feed.stale = False
            self.feed.write(self._snapshot())
        elif self.lines:
            self.lines.append("")
            data = "\n".join(self.lines).encode()
            self.lines.clear()
            self.feed.write(data)
        elif self.feed.pending:
            self.feed.write(b"")

    @hookimpl
    def flowmancer_runjob_idle(self, job: Job) -> Optional[float]:
        if not self.lines and not self.logs and not self.feed.pending and not self.feed.stale:
            return None
        now = time.monotonic()
        if now < self.flushed + FLUSH_EVERY:  # at most 20 writes a second: the server, each browser, wake for a batch
            return self.flushed + FLUSH_EVERY - now
        self.flushed = now
        self.flush()
        return 0.5 if self.feed.pending or self.feed.stale else None  # a slow server: try again soon

    @hookimpl
    def flowmancer_task_transition(
        self, job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState
    ) -> None:
        if task.name in self.logs:
            self._lines_of(task.name)
        # the hot path (three per task): written out, the name's JSON form kept
        name = self.quoted.get(task.name) or self.quoted.setdefault(task.name, _encode(task.name))
        self.lines.append(f'{{"type":"state","task":{name},"state":"{to_state.value}","time":{time.time()!r}}}')

    @hookimpl
    def flowmancer_task_added(self, job: Job, task: TaskRun) -> None:
        self._add({"type": "task", "task": _jsonable(task)})

    @hookimpl
    def flowmancer_task_output(self, job: Job, task: TaskRun, lines: LogLines) -> None:
        kept = self.logs.get(task.name)
        if kept is not None and kept.attempt != lines.attempt:
            self._lines_of(task.name)
            kept = None
        if kept is None:
            kept = self.logs[task.name] = Tail(lines.attempt)
            if self.attempts.get(task.name, lines.attempt) != lines.attempt:
                kept.lines.append(f"── attempt {lines.attempt} ──")
            self.attempts[task.name] = lines.attempt
        kept.add(lines.messages)

    def _lines_of(self, name: str) -> None:
        """The lines ``name`` wrote since the last batch, as one event (before its next state's)."""
        kept = self.logs.pop(name)
        lines = list(kept.lines)
        if kept.skipped:
            lines.insert(0, f"… {kept.skipped} lines not shown here (the task's log file has every line)")
        self._add({"type": "log", "task": name, "attempt": kept.attempt, "lines": lines})

    @hookimpl
    def flowmancer_task_finish(self, job: Job, task: TaskRun, result: TaskResult) -> None:
        if task.name in self.logs:
            self._lines_of(task.name)
        self._add({"type": "result", "task": task.name, **_attempt(result)})

    @hookimpl
    def flowmancer_job_finish(self, job: Job, exitcode: int) -> None:
        counts: dict[str, int] = {}
        for t in job:
            counts[t.state.value] = counts.get(t.state.value, 0) + 1
        self.end = {"exitcode": exitcode, "end": job.end_time or time.time(), "summary": counts}
        self._add({"type": "end", **self.end})
        self.flush()

    @hookimpl
    def flowmancer_unconfigure(self) -> None:
        # Ctrl-C stopped the run: the user wants it over, no linger
        linger = self.linger if self.helper is not None and self.job.interrupted is None else 0.0
        if linger > 0:
            print(f"live view: {self.url} open for {linger:g} s more (Ctrl-C to end)", flush=True)
        now = time.monotonic()
        until, last_words = now + linger, now + max(2.0, linger)
        try:
            writable = select.poll()  # not select(): the descriptor may be above 1024
            if self.feed.fd >= 0:
                writable.register(self.feed.fd, select.POLLOUT)
            while (self.feed.pending or self.feed.stale) and self.feed.fd >= 0 and time.monotonic() < last_words:
                # a slow server's last events (the end among them), while it lingers or for 2 s
                writable.poll(max(0.0, last_words - time.monotonic()) * 1000)
                self.flush()
            if until > time.monotonic():
                time.sleep(until - time.monotonic())
        except KeyboardInterrupt:
            pass
        if self.conn is not None:
            self.conn.close()
        if self.helper is not None:
            self.helper.close()
