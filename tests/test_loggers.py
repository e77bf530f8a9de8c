"""Loggers and extensions: the default FileLogger, the README's custom logger, failures and slow ones."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from flowmancer.exitcode import ExitCode
from flowmancer.markers import hookimpl

LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d)\] (DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$"
)

TASKS = """
import sys
import time
from flowmancer.task import Task, task

@task
class Chatty(Task):
    fail_first: bool = False
    lines: int = 2
    pause: float = 0.0

    def run(self):
        for i in range(self.lines):
            print(f"line {i}")
        self.logger.warning("a warning")
        print("to stderr", file=sys.stderr)
        time.sleep(self.pause)
        if self.fail_first and self.task_info.attempt == 1:
            raise ValueError("first attempt fails")
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def run_dirs(path):
    return sorted(p for p in path.iterdir() if p.is_dir())


def test_default_file_logger(project):
    project.make_jobdef(
        "tasks:\n  a: {task: Chatty, max_attempts: 2, parameters: {fail_first: true}}\n  b: {task: Chatty}\n"
    )
    result = project.run()
    assert result.ret == 0, result.stderr
    assert f"logs: {project.path / 'logs'}" in result.stdout
    (run,) = run_dirs(project.path / "logs")
    dt.datetime.strptime(run.name, "%Y-%m-%dT%H-%M-%S.%f")  # named by the run's start time
    assert sorted(p.name for p in run.iterdir()) == ["a.log", "b.log"]
    lines = (run / "a.log").read_text().splitlines()
    parsed = [LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    body = [(m.group(2), m.group(3)) for m in parsed if m]
    assert body[:3] == [("INFO", "line 0"), ("INFO", "line 1"), ("WARNING", "a warning")]
    assert ("ERROR", "to stderr") in body
    assert ("ERROR", "ValueError: first attempt fails") in body
    marker = body.index(("INFO", "----- attempt 2 -----"))  # the retry appends to the same file
    assert body[marker + 1] == ("INFO", "line 0")
    stamps = [dt.datetime.fromisoformat(m.group(1)) for m in parsed if m]
    assert stamps == sorted(stamps)


def test_retention_removes_old_runs(project):
    project.make_jobdef("tasks:\n  a: {task: Chatty}\n")
    logs = project.path / "logs"
    old = logs / (dt.datetime.now() - dt.timedelta(days=11)).strftime("%Y-%m-%dT%H-%M-%S.%f")
    recent = logs / (dt.datetime.now() - dt.timedelta(days=9)).strftime("%Y-%m-%dT%H-%M-%S.%f")
    other = logs / "not-a-run"
    # an old date, but not a name this logger makes (strptime would have taken it): never removed
    unpadded = logs / (dt.datetime.now() - dt.timedelta(days=400)).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-1]
    for d in (old, recent, other, unpadded):
        d.mkdir(parents=True)
    assert project.run().ret == 0
    names = {p.name for p in run_dirs(logs)}
    assert old.name not in names and recent.name in names and "not-a-run" in names and unpadded.name in names
    assert len(names) == 4


def test_readme_changing_default_file_logger_directory(project):
    project.make_jobdef(
        """
        tasks:
          a: {task: Chatty}
        loggers:
          my-file-logger:
            logger: FileLogger
            parameters:
              # NOTE: this path is relative to the `.py` file where `Flowmancer().start()` is invoked.
              base_log_dir: ./my_custom_log_dir  # ./logs is the default, if omitted.
              retention_days: 3  # 10 is the default, if omitted.
        """
    )
    old = (
        project.path / "my_custom_log_dir" / (dt.datetime.now() - dt.timedelta(days=4)).strftime("%Y-%m-%dT%H-%M-%S.%f")
    )
    old.mkdir(parents=True)
    assert project.run().ret == 0
    assert not (project.path / "logs").exists()
    (run,) = run_dirs(project.path / "my_custom_log_dir")
    assert "line 1" in (run / "a.log").read_text()


def test_negative_retention_keeps_everything_and_no_filelogger_writes_nothing(project):
    project.make_jobdef(
        "tasks:\n  a: {task: Chatty}\nloggers:\n  f: {logger: FileLogger, parameters: {retention_days: -1}}\n"
    )
    ancient = project.path / "logs" / "2001-01-01T00-00-00.000000"
    ancient.mkdir(parents=True)
    assert project.run().ret == 0
    assert ancient.exists() and len(run_dirs(project.path / "logs")) == 2
    project.make_jobdef("tasks:\n  a: {task: Chatty}\n", name="plain.yaml")
    assert project.run("-p", "no:filelogger", jobdef="plain.yaml").ret == 0
    assert len(run_dirs(project.path / "logs")) == 2  # no new run folder


def test_log_files_are_readable_while_the_job_runs(project):
    project.make_jobdef("tasks:\n  slow: {task: Chatty, parameters: {pause: 3}}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml"],
        cwd=project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while True:
            files = list((project.path / "logs").glob("*/slow.log"))
            if files and "a warning" in files[0].read_text():
                break
            assert time.time() < deadline, "the log line never reached the file while the task ran"
            time.sleep(0.05)
        assert proc.poll() is None  # still running: the file was flushed per line
    finally:
        proc.wait(20)


def test_many_lines_reach_the_file(project):
    project.make_jobdef("tasks:\n  big: {task: Chatty, parameters: {lines: 100000}}\n")
    assert project.run().ret == 0
    (run,) = run_dirs(project.path / "logs")
    lines = (run / "big.log").read_text().splitlines()
    printed = [ln for ln in lines if "INFO - line " in ln]
    assert len(printed) == 100000
    assert printed[-1].endswith("INFO - line 99999")


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()


# The README's custom logger, verbatim except: the `@logger` line moved onto the class (a README typo),
# the imports it uses added, and `title` (undefined in the README) defined.
README_SLACK_LOGGER = """
import json
import requests
from flowmancer.loggers.logger import Logger, logger
from flowmancer.eventbus.log import SerializableLogEvent, LogStartEvent, LogEndEvent, LogWriteEvent

title = "flowmancer"

@logger
class SlackMessageLogger(Logger):
    webhook: str

    def _post_to_slack(self, msg: str) -> None:
        requests.post(
            self.webhook,
            data=json.dumps({'text': title, 'attachments': [{'text': msg}]}),
            headers={'Content-Type': 'application/json'},
        )

    async def update(self, evt: SerializableLogEvent) -> None:
        # The `LogStartEvent` and `LogEndEvent` events only have a `name` property.
        if isinstance(evt, LogStartEvent):
            self._post_to_slack(f'[{evt.name}] START: Logging is beginning')
        elif isinstance(evt, LogEndEvent):
            self._post_to_slack(f'[{evt.name}] END: Logging is ending')
        # The `LogWriteEvent` additionally has `severity` and `message` properties.
        elif isinstance(evt, LogWriteEvent):
            self._post_to_slack(f'[{evt.name}] {evt.severity.value}: {evt.message}')
"""

# A stand-in for `requests` (not a Flowmancer dependency): a real HTTP POST with the stdlib.
REQUESTS_STANDIN = """
import urllib.request

def post(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data.encode(), headers=headers or {}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status
"""


def test_readme_custom_logger_alongside_default(project, webhook):
    url, received = webhook
    project.makefile("loggers/slack.py", README_SLACK_LOGGER)
    project.makefile("requests.py", REQUESTS_STANDIN)
    project.make_jobdef(
        f"""
        tasks:
          a: {{task: Chatty, parameters: {{lines: 1}}}}
        loggers:
          # Load the default logger with default parameters
          default-logger:
            logger: FileLogger

          # Custom logger implementation
          slack-logger:
            logger: SlackMessageLogger
            parameters:
              webhook: {url}
        """
    )
    result = project.run()
    assert result.ret == 0, result.stderr
    texts = [body["attachments"][0]["text"] for _, body in received]
    assert texts == [
        "[a] START: Logging is beginning",
        "[a] INFO: line 0",
        "[a] WARNING: a warning",
        "[a] ERROR: to stderr",
        "[a] END: Logging is ending",
    ]
    assert all(ct == "application/json" and body["text"] == "flowmancer" for ct, body in received)
    assert list((project.path / "logs").glob("*/a.log"))  # the default logger ran too


LIFECYCLE_COMPONENTS = """
import time
from flowmancer.loggers import Logger, logger
from flowmancer.extensions import Extension, extension
from flowmancer.eventbus.execution import ExecutionStateTransition

class _Marks:
    out: str

    def mark(self, what):
        with open(self.out, "a") as f:
            f.write(what + "\\n")

@extension
class StateLog(Extension):
    out: str

    async def update(self, evt):
        assert isinstance(evt, ExecutionStateTransition)
        with open(self.out, "a") as f:
            f.write(f"{evt.name} {evt.from_state.value}->{evt.to_state.value}\\n")

    async def on_create(self): self._m("on_create")
    async def on_restart(self): self._m("on_restart")
    async def on_success(self): self._m("on_success")
    async def on_failure(self): self._m("on_failure")
    async def on_abort(self): self._m("on_abort")
    async def on_destroy(self): self._m("on_destroy")

    def _m(self, what):
        with open(self.out, "a") as f:
            f.write(what + "\\n")

@logger
class Exploding(Logger):
    async def update(self, evt):
        raise ConnectionError("endpoint down")

@logger
class Sluggish(Logger):
    delay: float
    out: str

    async def update(self, evt):
        time.sleep(self.delay)
        with open(self.out, "a") as f:
            f.write(type(evt).__name__ + "\\n")
"""


def test_extension_sees_every_transition_and_lifecycle(project):
    project.makefile("extensions/comp.py", LIFECYCLE_COMPONENTS)
    project.make_jobdef(
        """
        tasks:
          a: {task: Chatty, max_attempts: 2, parameters: {fail_first: true}}
          b: {task: Chatty, dependencies: [a]}
        extensions:
          states: {extension: StateLog, parameters: {out: states.txt}}
        """
    )
    assert project.run().ret == 0
    lines = (project.path / "states.txt").read_text().splitlines()
    assert lines[0] == "on_create"
    assert lines[1:-2] == [
        "a INIT->PENDING",
        "a PENDING->RUNNING",
        "a RUNNING->PENDING",
        "a PENDING->RUNNING",
        "a RUNNING->COMPLETED",
        "b INIT->PENDING",
        "b PENDING->RUNNING",
        "b RUNNING->COMPLETED",
    ]
    assert lines[-2:] == ["on_success", "on_destroy"]


def test_extension_lifecycle_on_failure_restart_and_abort(project):
    project.makefile("extensions/comp.py", LIFECYCLE_COMPONENTS)
    ext = "extensions:\n  states: {extension: StateLog, parameters: {out: states.txt}}\n"
    project.make_jobdef("tasks:\n  a: {task: Chatty, parameters: {fail_first: true}}\n" + ext)
    assert project.run().ret == ExitCode.TASKS_FAILED
    marks = [ln for ln in (project.path / "states.txt").read_text().splitlines() if ln.startswith("on_")]
    assert marks == ["on_create", "on_failure", "on_destroy"]
    (project.path / "states.txt").unlink()
    assert project.run("-r").ret == ExitCode.TASKS_FAILED  # attempt 1 again: still fails, but resumes
    marks = [ln for ln in (project.path / "states.txt").read_text().splitlines() if ln.startswith("on_")]
    assert marks == ["on_create", "on_restart", "on_failure", "on_destroy"]

    (project.path / "states.txt").unlink()
    project.make_jobdef("tasks:\n  a: {task: Chatty, parameters: {pause: 30}}\n" + ext)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    states = project.path / "states.txt"
    deadline = time.time() + 10
    while not (states.exists() and "a PENDING->RUNNING" in states.read_text()):
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(20) == ExitCode.INTERRUPTED
    marks = [ln for ln in (project.path / "states.txt").read_text().splitlines() if ln.startswith("on_")]
    assert marks == ["on_create", "on_abort", "on_failure", "on_destroy"]


def test_failing_logger_is_reported_once_and_changes_nothing(project):
    project.makefile("loggers/comp.py", LIFECYCLE_COMPONENTS)
    project.make_jobdef(
        "tasks:\n  a: {task: Chatty}\n  b: {task: Chatty, dependencies: [a]}\n"
        "loggers:\n  broken: {logger: Exploding}\n  file: {logger: FileLogger}\n"
    )
    result = project.run()
    assert result.ret == 0
    assert result.states() == {"a": "COMPLETED", "b": "COMPLETED"}
    assert result.stderr.count("logger 'broken' (Exploding) failed in update(): ConnectionError: endpoint down") == 1
    assert len(list((project.path / "logs").glob("*/*.log"))) == 2  # the other logger still got everything


def test_slow_logger_does_not_slow_scheduling_and_gets_everything(project, timeline):
    project.makefile("loggers/comp.py", LIFECYCLE_COMPONENTS)
    from conftest import RECORDER_TASKS

    project.make_tasks(RECORDER_TASKS, name="recorder")
    chain = "".join(f"  t{i}: {{task: Record, dependencies: [t{i - 1}]}}\n" for i in range(1, 5))
    project.make_jobdef(
        "tasks:\n  t0: {task: Record}\n"
        + chain
        + "loggers:\n  slow: {logger: Sluggish, parameters: {delay: 0.15, out: slow.txt}}\n"
    )
    result = project.run()
    assert result.ret == 0
    rows = sorted(timeline.rows(), key=lambda r: r[1])
    assert rows[-1][2] - rows[0][1] < 1.0  # 5 chained tasks scheduled without waiting for the logger
    events = (project.path / "slow.txt").read_text().splitlines()
    assert events.count("LogStartEvent") == 5 and events.count("LogEndEvent") == 5  # all delivered before exit
    assert result.duration >= 10 * 0.15


def test_unknown_logger_class_and_bad_parameters(project):
    project.make_jobdef(
        "tasks:\n  a: {task: Chatty}\nloggers:\n  x: {logger: FileLoger}\n"
        "  y: {logger: FileLogger, parameters: {retention_days: soon}}\n"
        "extensions:\n  e: {extension: Nope}\ncheckpointer:\n  checkpointer: FileCheckpointer\n"
        "  parameters: {checkpoint_dri: x}\n"
    )
    result = project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    err = result.stderr
    assert (
        "job.yaml:4: loggers.x.logger: unknown logger class 'FileLoger'" in err and "did you mean 'FileLogger'" in err
    )
    assert "job.yaml:5: loggers.y.parameters.retention_days" in err
    assert "unknown extension class 'Nope'" in err
    assert "checkpointer.parameters.checkpoint_dri: unknown parameter" in err and "did you mean 'checkpoint_dir'" in err


AWAITING_FILE_LOGGER = """
import asyncio
from flowmancer.loggers.file import FileLogger
from flowmancer.loggers.logger import logger

@logger
class PoliteFileLogger(FileLogger):
    async def update(self, evt):
        await asyncio.sleep(0.001)  # a subclass may await: it must not run inline like FileLogger
        await super().update(evt)
"""


class _ThreadSpy:
    threads: list[str] = []

    @hookimpl
    def flowmancer_job_finish(self, job, exitcode):
        self.threads = [t.name for t in threading.enumerate()]


@pytest.mark.parametrize("subclass", [False, True])
def test_file_logger_runs_inline_but_a_subclass_that_awaits_runs_on_the_loop(project, subclass):
    project.makefile("loggers/polite.py", AWAITING_FILE_LOGGER)
    loggers = "loggers:\n  file: {logger: PoliteFileLogger}\n" if subclass else ""
    project.make_jobdef("tasks:\n  a: {task: Chatty}\n  b: {task: Chatty, dependencies: [a]}\n" + loggers)
    spy = _ThreadSpy()
    result = project.run(plugins=(spy,))
    assert result.ret == 0
    assert "failed in" not in result.stderr
    assert ("flowmancer-async" in spy.threads) is subclass  # no event loop thread for the built-ins alone
    for name in ("a", "b"):
        text = next((project.path / "logs").glob(f"*/{name}.log")).read_text()
        assert "line 1" in text and "a warning" in text and "to stderr" in text
