"""print(), stderr, self.logger and fd-level output become log records with timestamps, one per line."""

from __future__ import annotations

import time

OUTPUT_TASKS = """
import os
import sys
import time

from flowmancer.task import Task, task


@task
class Talk(Task):
    lines: int = 0

    def run(self):
        print("hello", end="")
        print(" world")
        print("two\\nlines")
        print("to stderr", file=sys.stderr)
        self.logger.debug("dbg")
        self.logger.info("inf")
        self.logger.warning("warn")
        self.logger.error("err")
        self.logger.critical("crit")
        os.system("echo from-a-subprocess")
        for i in range(self.lines):
            print(f"line {i}")
        print("no newline at the end", end="")
"""


def _records(result, task="talk"):
    return [c.record for c in result.recorder.getcalls("flowmancer_task_log") if c.task.name == task]


def test_lines_severities_and_streams(fmtester):
    fmtester.make_tasks(OUTPUT_TASKS)
    fmtester.make_jobdef("tasks:\n  talk: {task: Talk}\n")
    before = time.time()
    result = fmtester.run()
    assert result.ret == 0, result.stdout
    recs = _records(result)
    got = [(r.stream, r.severity.value, r.message) for r in recs if r.stream != "stderr"]
    assert got == [  # stdout and the logging records framed on it: in the order written
        ("stdout", "INFO", "hello world"),
        ("stdout", "INFO", "two"),
        ("stdout", "INFO", "lines"),
        ("logger", "DEBUG", "dbg"),
        ("logger", "INFO", "inf"),
        ("logger", "WARNING", "warn"),
        ("logger", "ERROR", "err"),
        ("logger", "CRITICAL", "crit"),
        ("stdout", "INFO", "from-a-subprocess"),
        ("stdout", "INFO", "no newline at the end"),
    ]
    assert [(r.stream, r.severity.value, r.message) for r in recs if r.stream == "stderr"] == [
        ("stderr", "ERROR", "to stderr")
    ]
    assert all(before <= r.timestamp <= time.time() for r in recs)
    assert all(r.attempt == 1 and r.task == "talk" for r in recs)


def test_task_output_is_not_echoed_unless_asked(fmtester):
    fmtester.make_tasks(OUTPUT_TASKS)
    fmtester.make_jobdef("tasks:\n  talk: {task: Talk}\n")
    quiet = fmtester.run()
    assert "hello world" not in quiet.stdout
    shown = fmtester.run("-s")
    assert "[talk] hello world" in shown.stdout


def test_many_lines_lose_nothing(fmtester):
    fmtester.make_tasks(OUTPUT_TASKS)
    fmtester.make_jobdef("tasks:\n  talk: {task: Talk, parameters: {lines: 100000}}\n")
    result = fmtester.run()
    assert result.ret == 0
    msgs = [r.message for r in _records(result) if r.message.startswith("line ")]
    assert len(msgs) == 100000
    assert msgs[0] == "line 0" and msgs[-1] == "line 99999"


def test_failed_task_tail_in_summary(fmtester):
    fmtester.make_tasks(
        """
        from flowmancer.task import Task, task

        @task
        class Noisy(Task):
            def run(self):
                for i in range(40):
                    print(f"progress {i}")
                raise KeyError("missing-thing")
        """
    )
    fmtester.make_jobdef("tasks:\n  noisy: {task: Noisy}\n")
    result = fmtester.run()
    out = result.stdout
    assert "FAILURES" in out
    assert "progress 39" in out and "progress 0\n" not in out  # only the last lines
    assert "KeyError: 'missing-thing'" in out


MIXED = """
import os
import subprocess
import sys

from flowmancer.task import Task, task


@task
class Mixed(Task):
    def run(self):
        for i in range(300):
            print(f"py {i}")
            os.write(1, f"fd {i}\\n".encode())
            if i % 50 == 0:
                subprocess.run([sys.executable, "-c", "print('child')"])
"""


def test_a_tasks_log_never_goes_back_in_time(fmtester):
    fmtester.make_tasks(MIXED)
    fmtester.make_jobdef("tasks:\n  m: {task: Mixed}\n")
    result = fmtester.run()
    assert result.ret == 0
    stamps = [r.timestamp for r in _records(result, "m")]
    assert len(stamps) == 606 and stamps == sorted(stamps)
