"""Run-time fan-out: a matrix over a list an upstream task put in shared_dict (real runs, real restarts)."""

from __future__ import annotations

from flowmancer.exitcode import ExitCode

TASKS = """
import os
from flowmancer.task import Task, task


@task
class ListChunks(Task):
    n: int = 5
    value: str = ""

    def run(self):
        self.shared_dict["chunks"] = [self.value] if self.value else list(range(self.n))


@task
class Count(Task):
    chunk: int
    fail_on: int = -1

    def run(self):
        with open("counted.txt", "a") as f:
            f.write(f"{self.task_info.name}\\n")
        if self.chunk == self.fail_on:
            raise RuntimeError(f"chunk {self.chunk} fails on purpose")


@task
class Merge(Task):
    def run(self):
        with open("counted.txt", "a") as f:
            f.write("merge\\n")
"""

JOB = """tasks:
  list: {task: ListChunks, parameters: {n: 5}}
  count:
    task: Count
    dependencies: [list]
    parameters: {fail_on: '$VAR{fail:-1}'}
    matrix:
      chunk: $SHARED{chunks}
  merge: {task: Merge, dependencies: [count]}
"""


def counted(project) -> list[str]:
    p = project.path / "counted.txt"
    lines = p.read_text().split() if p.exists() else []
    p.unlink(missing_ok=True)
    return lines


def test_a_fan_out_over_five_then_a_restart_reruns_only_the_failed_instance(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    result = fmtester.run_subprocess("--var", "fail=3")
    assert result.ret == ExitCode.TASKS_FAILED, result.stdout + result.stderr
    assert sorted(counted(fmtester)) == [f"count[chunk={i}]" for i in range(5)]  # merge did not run
    result.out.fnmatch_lines(["*COMPLETED*count *expanded into 5 tasks*", "*FAILED*count[[]chunk=3[]]*chunk 3 fails*"])
    result.out.fnmatch_lines(["*DEFAULTED*merge*not run: upstream task 'count[[]chunk=3[]]' failed*"])
    journal = (fmtester.path / ".flowmancer" / "job.jsonl").read_text()
    assert "count[chunk=4]" in journal

    result = fmtester.run_subprocess("-r")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert counted(fmtester) == ["count[chunk=3]", "merge"]  # the others were restored, none made twice
    assert "no longer in the job" not in result.stdout + result.stderr


def test_an_empty_list_makes_no_task_and_the_fan_in_still_runs(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB.replace("n: 5", "n: 0"))
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert counted(fmtester) == ["merge"]
    result.out.fnmatch_lines(["*COMPLETED*count *expanded into 0 tasks*"])


def test_a_value_that_is_not_a_list_or_not_valid_fails_the_fan_out_task(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB.replace("$SHARED{chunks}", "$SHARED{nothing}"))
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.TASKS_FAILED
    result.out.fnmatch_lines(["*FAILED*count*shared_dict[[]'nothing'[]] should be a list, but it is missing*"])
    assert counted(fmtester) == [] and "Traceback" not in result.stdout + result.stderr

    fmtester.make_jobdef(JOB.replace("n: 5", "value: many"))
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.TASKS_FAILED
    result.out.fnmatch_lines(["*FAILED*count*count[[]chunk=many[]]: parameter chunk: Input should be a valid integer*"])


def test_a_fan_out_without_dependencies_is_an_error_at_its_line(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  count:\n    task: Count\n    matrix:\n      chunk: $SHARED{chunks}\n")
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:5:" in result.stderr and "has none" in result.stderr


def test_a_dry_run_says_the_tasks_are_made_at_run_time(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    result = fmtester.run_subprocess("-n")
    assert result.ret == ExitCode.OK
    result.out.fnmatch_lines(["*run   count (Count): after list; then one task per value of $SHARED{chunks}*"])
