"""One capture path: everything a task process writes (Python, its descriptors, C code, subprocesses, processes
it forks, logging records, tracebacks) reaches its log in the order written, one severity per stream; real
task processes on every way one is made."""

from __future__ import annotations

import pytest

from flowmancer import hookimpl
from flowmancer.exitcode import ExitCode

ORDER = """
import ctypes
import logging
import os
import subprocess
import sys

from flowmancer.task import Task, task

libc = ctypes.CDLL(None)
lib = logging.getLogger("lib")


@task
class Order(Task):
    rounds: int = 1000

    def run(self):
        print("1"); os.write(1, b"2\\n"); print("3")
        for i in range(self.rounds):
            print(f"py {i}")
            os.write(1, f"fd {i}\\n".encode())
            if i % 100 == 0:
                subprocess.run([sys.executable, "-c", f"print('child {i}')"], check=True)
                libc.dprintf(1, f"c {i}\\n".encode())
                self.logger.info("log %d", i)
                lib.warning("lib %d", i)
        print("end", end="")


@task
class Err(Task):
    def run(self):
        print("to stderr", file=sys.stderr)
        os.write(2, b"fd stderr\\n")
        libc.dprintf(2, b"C stderr\\n")
        subprocess.run(["sh", "-c", "echo subprocess stderr >&2"], check=True)
        sys.stderr.write("no newline")


@task
class Forks(Task):
    def run(self):
        print("parent before")
        pid = os.fork()
        if pid == 0:
            print("forked child")
            self.logger.warning("forked child logs")
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent after")
"""


def expected_order(rounds: int) -> list[tuple[str, str, str]]:
    out = [("stdout", "INFO", m) for m in ("1", "2", "3")]
    for i in range(rounds):
        out += [("stdout", "INFO", f"py {i}"), ("stdout", "INFO", f"fd {i}")]
        if i % 100 == 0:
            out += [
                ("stdout", "INFO", f"child {i}"),
                ("stdout", "INFO", f"c {i}"),
                ("logger", "INFO", f"log {i}"),
                ("logging", "WARNING", f"lib: lib {i}"),
            ]
    return out + [("stdout", "INFO", "end")]


@pytest.fixture(params=["direct", "server", "spawn"])
def made(request, monkeypatch) -> str:
    """Each way a task process is made: forked by the scheduler, by the fork server, multiprocessing spawn."""
    if request.param == "spawn":
        monkeypatch.setenv("FLOWMANCER_START_METHOD", "spawn")
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1" if request.param == "server" else "0")
    return str(request.param)


def records(result, task):
    return [c.record for c in result.recorder.getcalls("flowmancer_task_log") if c.task.name == task]


def test_everything_on_stdout_keeps_its_true_order(fmtester, made):
    fmtester.make_tasks(ORDER)
    fmtester.make_jobdef("tasks:\n  o: {task: Order}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout
    recs = records(result, "o")
    assert [(r.stream, r.severity.value, r.message) for r in recs] == expected_order(1000)
    stamps = [r.timestamp for r in recs]
    assert stamps == sorted(stamps)  # never back in time
    log = next((fmtester.path / "logs").iterdir()) / "o.log"
    body = [ln.split(" - ", 1)[1] for ln in log.read_text().splitlines()]
    assert body == [m for _, _, m in expected_order(1000)]


def test_stderr_is_error_whoever_writes_it(fmtester, made):
    fmtester.make_tasks(ORDER)
    fmtester.make_jobdef("tasks:\n  e: {task: Err}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout
    got = [(r.stream, r.severity.value, r.message) for r in records(result, "e")]
    assert got == [
        ("stderr", "ERROR", m) for m in ("to stderr", "fd stderr", "C stderr", "subprocess stderr", "no newline")
    ]


def test_a_process_the_task_forks_writes_to_the_same_log(fmtester, spawn_path):
    fmtester.make_tasks(ORDER)
    fmtester.make_jobdef("tasks:\n  f: {task: Forks}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout
    got = [(r.stream, r.message) for r in records(result, "f")]
    assert got == [
        ("stdout", "parent before"),
        ("stdout", "forked child"),
        ("logger", "forked child logs"),
        ("stdout", "parent after"),
    ]
    assert result.job.tasks["f"].result.attempt == 1  # the child reported nothing of its own


HOSTILE = r"""
import os
import sys

from flowmancer.task import Task, task


@task
class Hostile(Task):
    def run(self):
        print("a\x00b")
        print("\x00fm\x1egarbage")  # looks like a framed record, is not one
        print("\x00fm\x1elogger NOTALEVEL 1.0 x")
        os.write(1, b"\xff\xfe bytes\n")
        print("lone \udcff surrogate")
        sys.stdout.buffer.write(b"via buffer\n")
        print("done")
"""


def test_hostile_output_is_text_and_never_breaks_the_run(fmtester):
    fmtester.make_tasks(HOSTILE)
    fmtester.make_jobdef("tasks:\n  h: {task: Hostile}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout
    got = [(r.stream, r.message) for r in records(result, "h")]
    assert got == [
        ("stdout", "a\x00b"),
        ("stdout", "garbage"),
        ("stdout", "logger NOTALEVEL 1.0 x"),
        ("stdout", "\ufffd\ufffd bytes"),
        ("stdout", "lone \\udcff surrogate"),
        ("stdout", "via buffer"),
        ("stdout", "done"),
    ]


class Batches:
    """A plugin on the batch hook only."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    @hookimpl
    def flowmancer_task_output(self, job, task, lines):
        self.calls.append((task.name, lines.stream, list(lines.messages)))
        assert [r.message for r in lines.records()] == lines.messages


def test_flowmancer_task_output_gets_lines_in_batches(fmtester):
    fmtester.make_tasks(
        """
        from flowmancer.task import Task, task

        @task
        class Many(Task):
            def run(self):
                for i in range(20000):
                    print(f"line {i}")
        """
    )
    fmtester.make_jobdef("tasks:\n  m: {task: Many}\n")
    plugin = Batches()
    result = fmtester.run(plugins=(plugin,))
    assert result.ret == ExitCode.OK
    lines = [m for _, _, batch in plugin.calls for m in batch]
    assert lines == [f"line {i}" for i in range(20000)]
    assert len(plugin.calls) < 2000  # many lines a call, not one
    per_line = [c.record.message for c in result.recorder.getcalls("flowmancer_task_log")]
    assert per_line == lines  # and the per-line hook, for a plugin that implements it


LONG = """
import os
import sys

from flowmancer.task import Task, task


@task
class Long(Task):
    mb: int = 50
    end: bool = True

    def run(self):
        sys.stdout.write("y" * (self.mb << 20) + ("\\n" if self.end else ""))
        sys.stdout.flush()
        print("after")
"""


def test_a_fifty_megabyte_line_is_one_line(fmtester):
    fmtester.make_tasks(LONG)
    fmtester.make_jobdef("tasks:\n  l: {task: Long}\n")
    result = fmtester.run("-p", "no:filelogger")
    assert result.ret == ExitCode.OK, result.stdout
    got = [r.message for r in records(result, "l")]
    assert [len(m) for m in got] == [50 << 20, 5] and got[1] == "after"


def test_a_line_that_never_ends_is_logged_in_pieces(fmtester, monkeypatch):
    """A task writing without line ends cannot make the runner hold it all: past MAX_LINE it is logged."""
    monkeypatch.setattr("flowmancer.output.MAX_LINE", 1 << 20)
    fmtester.make_tasks(LONG)
    fmtester.make_jobdef("tasks:\n  l: {task: Long, parameters: {mb: 5, end: false}}\n")
    result = fmtester.run("-p", "no:filelogger")
    assert result.ret == ExitCode.OK, result.stdout
    got = [r.message for r in records(result, "l")]
    assert len(got) >= 4 and all(len(m) <= (1 << 20) + (1 << 18) for m in got)  # one read past the limit at most
    assert "".join(got) == "y" * (5 << 20) + "after"
