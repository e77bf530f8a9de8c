"""Python's logging in a task: self.logger is a stdlib Logger, every library's records are captured at their
level, warnings are WARNING, the level knob; real task processes on both spawn paths."""

from __future__ import annotations

import pytest

from flowmancer.exitcode import ExitCode

LIB = """
import logging

log = logging.getLogger("mylib.db")


def query(n):
    log.debug("connecting")
    log.info("ran %d queries", n)
    log.warning("slow query: %.1f s", 2.5)
    return n
"""

TASKS = """
import logging
import warnings

from flowmancer.task import Task, task

from mylib import query


@task
class Logs(Task):
    rounds: int = 0

    def run(self):
        assert isinstance(self.logger, logging.Logger)
        self.logger.info("rows: %s", query(42))
        self.logger.debug("own debug line")
        warnings.warn("careful with that")
        try:
            {}["missing"]
        except KeyError:
            self.logger.exception("lookup failed for %r", "missing")
        for i in range(self.rounds):
            print(f"print {i}")
            self.logger.info("log %d", i)
"""


@pytest.fixture
def project(fmtester):
    fmtester.makefile("mylib.py", LIB)
    fmtester.make_tasks(TASKS)
    return fmtester


def lines(result, task):
    return [
        (c.record.stream, c.record.severity.value, c.record.message)
        for c in result.recorder.getcalls("flowmancer_task_log")
        if c.task.name == task
    ]


def test_stdlib_records_are_captured_at_their_level(project, spawn_path):
    project.make_jobdef("tasks:\n  a: {task: Logs}\n")
    result = project.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    got = lines(result, "a")
    assert ("logging", "INFO", "mylib.db: ran 42 queries") in got
    assert ("logging", "WARNING", "mylib.db: slow query: 2.5 s") in got  # not ERROR via logging's last resort
    assert ("logger", "INFO", "rows: 42") in got
    assert ("logger", "DEBUG", "own debug line") in got  # self.logger at every level, as the original did
    assert not [m for _, _, m in got if "connecting" in m]  # a library's DEBUG stays out by default
    warning = [m for s, sev, m in got if sev == "WARNING" and "careful with that" in m]
    assert warning and warning[0].startswith("py.warnings: ") and "UserWarning" in warning[0]
    exc = [i for i, r in enumerate(got) if r == ("logger", "ERROR", "lookup failed for 'missing'")]
    assert (
        exc
        and got[exc[0] + 1][2] == "Traceback (most recent call last):"
        and "KeyError: 'missing'" in {m for _, _, m in got[exc[0] :]}
    )
    assert "mylib" not in result.stderr and "WARNING" not in result.stderr  # nothing went to the runner's stderr
    log = next((project.path / "logs").iterdir()) / "a.log"
    assert "WARNING - mylib.db: slow query: 2.5 s" in log.read_text()


def test_log_level_knob(project):
    project.make_jobdef(
        "config: {task_defaults: {log_level: WARNING}}\n"
        "tasks:\n  quiet: {task: Logs}\n  chatty: {task: Logs, log_level: DEBUG}\n"
    )
    result = project.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    quiet = {m for _, _, m in lines(result, "quiet")}
    assert "rows: 42" not in quiet and "own debug line" not in quiet and "mylib.db: ran 42 queries" not in quiet
    assert "mylib.db: slow query: 2.5 s" in quiet
    chatty = {m for _, _, m in lines(result, "chatty")}
    assert {"mylib.db: connecting", "own debug line", "rows: 42"} <= chatty


def test_print_and_logging_keep_their_order(project, spawn_path):
    project.make_jobdef("tasks:\n  a: {task: Logs, parameters: {rounds: 500}}\n")
    result = project.run()
    assert result.ret == ExitCode.OK
    mixed = [m for _, _, m in lines(result, "a") if m.startswith(("print ", "log "))]
    assert mixed == [m for i in range(500) for m in (f"print {i}", f"log {i}")]


def test_bad_log_level_is_a_jobdef_error(project):
    project.make_jobdef("tasks:\n  a: {task: Logs, log_level: LOUD}\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    result.err.fnmatch_lines(["*job.yaml:2*tasks.a.log_level*"])


COUNTS = """
import logging
import os
from flowmancer.task import Task, task

@task
class Count(Task):
    def run(self):
        self.logger.info("hello")  # this task's own logger exists in its own process
        with open("counts.txt", "a") as f:
            f.write(f"{os.getppid()} {len(logging.Logger.manager.loggerDict)}\\n")
"""


def test_the_forking_process_keeps_no_logger_per_task(fmtester, spawn_path):
    """A task process inherits the loggers of whoever forked it, and each ``setLevel`` walks all of them: if
    the fork server or the scheduler kept one per task, every task would cost more than the last (a
    100,000-task run slowed from 185 to 80 tasks a second). In a chain, each task sees as many as the first
    forked by the same process (the scheduler forks until the fork server is ready)."""
    fmtester.make_tasks(COUNTS, name="counts")
    chain = "".join(f"  c{i}: {{task: Count, dependencies: [c{i - 1}]}}\n" for i in range(1, 25))
    fmtester.make_jobdef("tasks:\n  c0: {task: Count}\n" + chain)
    result = fmtester.run()
    assert result.ret == 0, result.stdout + result.stderr
    seen: dict[str, set[str]] = {}
    lines = (fmtester.path / "counts.txt").read_text().splitlines()
    for line in lines:
        parent, count = line.split()
        seen.setdefault(parent, set()).add(count)
    assert len(lines) == 25 and all(len(counts) == 1 for counts in seen.values()), lines
