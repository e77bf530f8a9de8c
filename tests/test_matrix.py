"""matrix: one task entry, one task per combination, expanded when the job is loaded (real runs)."""

from __future__ import annotations

import json

from flowmancer.exitcode import ExitCode

PARTS = """
import json, time
from flowmancer.task import Task, task

@task
class Part(Task):
    chunk: int
    size: str = "small"
    extra: str = ""
    fail_chunk: int = -1

    def run(self):
        with open("parts.txt", "a") as f:
            f.write(json.dumps([self.task_info.name, self.chunk, self.size, self.extra, time.time()]) + "\\n")
        if self.chunk == self.fail_chunk:
            raise RuntimeError(f"chunk {self.chunk} fails on purpose")

@task
class Gather(Task):
    def run(self):
        with open("parts.txt", "a") as f:
            f.write(json.dumps([self.task_info.name, None, None, None, time.time()]) + "\\n")
"""


def _parts(fmtester):
    path = fmtester.path / "parts.txt"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_matrix_runs_each_combination_but_the_excluded(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef(
        "tasks:\n"
        "  part:\n"
        "    task: Part\n"
        "    matrix:\n"
        "      size: [small, big]\n"
        "      chunk: [0, 1, 2]\n"
        "      exclude:\n"
        "        - {size: big, chunk: 1}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    ran = sorted((name, chunk, size) for name, chunk, size, _, _ in _parts(fmtester))
    assert ran == [
        ("part[size=big,chunk=0]", 0, "big"),
        ("part[size=big,chunk=2]", 2, "big"),
        ("part[size=small,chunk=0]", 0, "small"),
        ("part[size=small,chunk=1]", 1, "small"),
        ("part[size=small,chunk=2]", 2, "small"),
    ]


def test_a_dependency_on_a_matrix_waits_for_every_instance(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef(
        "config: {max_concurrency: 2}\n"
        "tasks:\n"
        "  part: {task: Part, matrix: {chunk: [0, 1, 2, 3]}, parameters: {size: big}}\n"
        "  total: {task: Gather, dependencies: [part]}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    rows = _parts(fmtester)
    assert [r[0] for r in rows][-1] == "total" and len(rows) == 5
    assert {r[2] for r in rows[:-1]} == {"big"}  # the entry's parameters go to every instance
    assert rows[-1][4] >= max(r[4] for r in rows[:-1])


def test_include_adds_to_matching_combinations_or_makes_its_own(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef(
        "tasks:\n"
        "  part:\n"
        "    task: Part\n"
        "    matrix:\n"
        "      chunk: [0, 1]\n"
        "      include:\n"
        "        - {chunk: 1, extra: more}\n"
        "        - {chunk: 7, size: big}\n"
    )
    result = fmtester.run("--list")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    for name in ("part[chunk=0]", "part[chunk=1]", "part[chunk=7,size=big]"):
        assert name in result.stdout
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    ran = sorted((name, chunk, size, extra) for name, chunk, size, extra, _ in _parts(fmtester))
    assert ran == [
        ("part[chunk=0]", 0, "small", ""),
        ("part[chunk=1]", 1, "small", "more"),
        ("part[chunk=7,size=big]", 7, "big", ""),
    ]


def test_restart_reruns_only_the_failed_instance(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef(
        "tasks:\n"
        "  part: {task: Part, matrix: {chunk: [0, 1, 2]}, parameters: {fail_chunk: '$VAR{fail:1}'}}\n"
        "  total: {task: Gather, dependencies: [part]}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert sorted(r[0] for r in _parts(fmtester)) == ["part[chunk=0]", "part[chunk=1]", "part[chunk=2]"]
    (fmtester.path / "parts.txt").unlink()
    result = fmtester.run("-r", "--var", "fail=-1")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert [r[0] for r in _parts(fmtester)] == ["part[chunk=1]", "total"]


def test_k_selects_instances(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef("tasks:\n  part: {task: Part, matrix: {chunk: [0, 1, 2]}}\n")
    result = fmtester.run("-k", "chunk=2")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert [r[0] for r in _parts(fmtester)] == ["part[chunk=2]"]


def test_matrix_errors_are_at_their_lines(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef(
        "tasks:\n"
        "  a:\n"
        "    task: Part\n"
        "    matrix:\n"
        "      chunk: []\n"
        "  b:\n"
        "    task: Part\n"
        "    matrix:\n"
        "      chunk: [1]\n"
        "      colour: [red, blue]\n"
        "  c:\n"
        "    task: Part\n"
        "    parameters: {chunk: 1}\n"
        "    matrix:\n"
        "      chunk: [1, 2]\n"
        "  d:\n"
        "    task: Part\n"
        "    matrix: {chunk: [1], exclude: [{chunk: 1}]}\n"
        "  e[chunk=1]: {task: Part, parameters: {chunk: 1}}\n"
        "  e: {task: Part, matrix: {chunk: [1]}}\n"
        "  f: {task: Part, matrix: {chunk: [1], exclude: [{size: big}]}}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    err = result.stderr
    assert "job.yaml:5: tasks.a.matrix.chunk: matrix key 'chunk' needs a non-empty list of values" in err
    assert "job.yaml:10:" in err and "colour" in err  # not a parameter of Part: at its matrix key
    assert err.count("colour") <= 3  # once, not once per instance
    assert "job.yaml:15: tasks.c.matrix.chunk: parameter 'chunk' is given both in parameters and in matrix" in err
    assert "job.yaml:18: tasks.d.matrix: this matrix makes no task: every combination is excluded" in err
    assert "two tasks are named 'e[chunk=1]' once the matrix is expanded" in err and "job.yaml:20:" in err
    assert "job.yaml:21:" in err and "matrix exclude names 'size', which is not a key of this matrix" in err
    assert "Traceback" not in err


def test_an_incremental_run_reruns_only_the_instance_a_new_value_adds(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef("tasks:\n  part: {task: Part, matrix: {chunk: [0, 1]}}\n")
    assert fmtester.run("--incremental").ret == ExitCode.OK
    (fmtester.path / "parts.txt").unlink()
    fmtester.make_jobdef("tasks:\n  part: {task: Part, matrix: {chunk: [0, 1, 2]}}\n")
    result = fmtester.run("--incremental")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert [r[0] for r in _parts(fmtester)] == ["part[chunk=2]"]  # the two others are up to date


def test_with_the_plugin_blocked_a_matrix_is_an_error_at_its_task(fmtester):
    fmtester.make_tasks(PARTS, name="parts")
    fmtester.make_jobdef("tasks:\n  other: {task: Gather}\n  part:\n    task: Part\n    matrix: {chunk: [0, 1]}\n")
    result = fmtester.run("-p", "no:matrix")
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:3: matrix: needs the matrix plugin, blocked here (-p no:matrix)" in result.stderr
    assert _parts(fmtester) == []
