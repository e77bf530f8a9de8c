"""Incremental runs with real runs and real file edits: what reruns, what does not, and why."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from flowmancer import ExecutionState as S
from flowmancer import hookimpl
from flowmancer.exitcode import ExitCode
from flowmancer.states import TaskResult

HELPERS = """
def double(x):
    return 2 * x
"""

ETL = """
import os

from flowmancer.task import Task, task
from helpers import double

TRAIL = os.environ.get("TRAIL", "trail.txt")


def ran(name):
    with open(TRAIL, "a") as f:
        f.write(name + "\\n")


@task
class Extract(Task):
    n: int = 3

    def run(self):
        ran("extract")
        self.shared_dict["rows"] = min(self.n, 5)


@task
class Transform(Task):
    def run(self):
        ran("transform")
        self.shared_dict["doubled"] = double(self.shared_dict["rows"])


@task
class Load(Task):
    def run(self):
        ran("load")
        with open("out.csv", "w") as f:
            f.write(str(self.shared_dict["doubled"]))


@task
class Report(Task):
    def run(self):
        ran("report")
        if os.path.exists("fail-report"):
            raise RuntimeError("asked to fail")
        self.shared_dict["report"] = open("out.csv").read()
"""

OTHER = """
import time

from flowmancer.task import Task, task
from etl import ran


@task
class Count(Task):
    def run(self):
        ran("count")
        self.shared_dict["files"] = 1


@task
class Stamp(Task):
    def run(self):
        ran("stamp")


@task
class Slow(Task):
    seconds: float = 0

    def run(self):
        ran("slow")
        time.sleep(self.seconds)
"""

JOB = """
config: {name: etl}
tasks:
  extract: {task: Extract, parameters: {n: 3}}
  transform: {task: Transform, dependencies: [extract]}
  load: {task: Load, dependencies: [transform], outputs: [out.csv]}
  report: {task: Report, dependencies: [load], inputs: [out.csv]}
  count: {task: Count, inputs: ["data/*.csv"]}
"""


@pytest.fixture
def etl(fmtester):
    fmtester.makefile("tasks/helpers.py", HELPERS)
    fmtester.make_tasks(ETL, name="etl", package=False)
    fmtester.make_tasks(OTHER, name="other", package=False)
    fmtester.makefile("data/raw.csv", "a,b\n1,2\n")
    fmtester.make_jobdef(JOB)
    return fmtester


def ran(project) -> list[str]:
    """The tasks that ran since the last call, in order."""
    trail = project.path / "trail.txt"
    names = trail.read_text().split() if trail.exists() else []
    trail.unlink(missing_ok=True)
    return names


def run(project, *args: str):
    result = project.run("--incremental", *args)
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    return result


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_second_run_runs_nothing_and_restores_shared_dict(etl):
    first = run(etl)
    assert ran(etl) == ["extract", "count", "transform", "load", "report"]
    first.assert_outcomes(completed=5)
    second = run(etl)
    assert ran(etl) == []
    second.assert_outcomes(up_to_date=5)
    assert second.job.shared_dict == first.job.shared_dict == {"rows": 3, "doubled": 6, "report": "6", "files": 1}
    assert "UP-TO-DATE" in second.stdout


def test_cosmetic_edits_rerun_nothing(etl):
    run(etl)
    ran(etl)
    etl_py = etl.path / "tasks" / "etl.py"
    edit(
        etl_py,
        '    def run(self):\n        ran("load")',
        '    def run(self):\n        """Load it."""\n\n        ran(  "load" )  # hi',
    )
    edit(etl.path / "tasks" / "helpers.py", "return 2 * x", "# twice\n    return 2*x")
    etl_py.write_text('"""The ETL tasks."""\n' + etl_py.read_text() + "\n\n# the end\n")
    result = run(etl)
    assert ran(etl) == []
    result.assert_outcomes(up_to_date=5)


def test_a_helper_edit_reruns_the_tasks_that_import_it_and_what_their_results_change(etl):
    run(etl)
    ran(etl)
    edit(etl.path / "tasks" / "helpers.py", "return 2 * x", "return 3 * x")
    explained = etl.run("--explain")
    assert explained.ret == 0
    assert "code changed: tasks/helpers.py" in explained.stdout
    assert "count (Count): up to date" not in explained.stdout  # other.py imports etl, which imports helpers
    result = run(etl)
    # every task of etl.py and other.py (it imports etl) reran: their code changed
    assert sorted(ran(etl)) == ["count", "extract", "load", "report", "transform"]
    assert result.job.shared_dict["doubled"] == 9


def test_a_helper_edit_leaves_tasks_that_do_not_import_it(fmtester):
    fmtester.makefile("tasks/helpers.py", HELPERS)
    fmtester.make_tasks(ETL, name="etl", package=False)
    fmtester.make_tasks(
        OTHER.replace("from etl import ran", "def ran(n):\n    open('trail.txt', 'a').write(n + '\\n')"),
        name="other",
        package=False,
    )
    fmtester.make_jobdef("tasks:\n  extract: {task: Extract}\n  stamp: {task: Stamp}\n")
    run(fmtester)
    assert sorted(ran(fmtester)) == ["extract", "stamp"]
    edit(fmtester.path / "tasks" / "helpers.py", "return 2 * x", "return 3 * x")
    result = run(fmtester, "-v")
    assert ran(fmtester) == ["extract"]
    assert "why        extract  code changed: tasks/helpers.py" in result.stdout


def test_early_cutoff_a_parameter_that_does_not_change_the_result_stops_there(etl):
    edit(etl.path / "job.yaml", "n: 3", "n: 10")
    run(etl)
    ran(etl)
    edit(etl.path / "job.yaml", "n: 10", "n: 11")  # rows = min(n, 5): still 5
    explained = etl.run("--explain")
    assert "extract (Extract): parameter n: 10 -> 11" in explained.stdout
    assert "transform (Transform): runs only if extract writes new values" in explained.stdout
    result = run(etl)
    assert ran(etl) == ["extract"]
    result.assert_outcomes(completed=1, up_to_date=4)
    edit(etl.path / "job.yaml", "n: 11", "n: 2")  # rows changes: the wave goes on
    result = run(etl, "-v")
    assert ran(etl) == ["extract", "transform", "load", "report"]
    assert "dependency extract wrote new values: rows" in result.stdout
    assert "dependency load wrote new outputs" in result.stdout


def test_inputs_and_outputs(etl):
    run(etl)
    ran(etl)
    (etl.path / "data" / "raw.csv").write_text("a,b\n1,3\n")
    (etl.path / "data" / "more.csv").write_text("x\n")
    (etl.path / "out.csv").unlink()
    explained = etl.run("--explain").stdout
    assert "count (Count): input data/more.csv added; input data/raw.csv changed" in explained
    assert "load (Load): output out.csv missing" in explained
    run(etl)
    assert sorted(ran(etl)) == ["count", "load"]  # load rewrote the same out.csv: report stays up to date
    (etl.path / "out.csv").write_text("tampered")
    assert "output out.csv changed since the task wrote it" in etl.run("--explain").stdout
    run(etl)
    assert ran(etl) == ["load"]


def test_cache_false_and_force(etl):
    edit(etl.path / "job.yaml", "count: {task: Count,", "count: {task: Count, cache: false,")
    run(etl)
    ran(etl)
    assert "count (Count): cache: false" in etl.run("--explain").stdout
    run(etl, "--force", "extract")
    assert sorted(ran(etl)) == ["count", "extract"]  # extract wrote the same rows: its dependents stay
    bad = etl.run("--incremental", "--force", "extrct")
    assert bad.ret == ExitCode.USAGE_ERROR and "did you mean 'extract'" in bad.stderr
    assert etl.run("--force", "extract").ret == ExitCode.USAGE_ERROR  # only with --incremental


def test_config_incremental_and_no_incremental(etl):
    edit(etl.path / "job.yaml", "config: {name: etl}", "config: {name: etl, incremental: true}")
    etl.run()
    ran(etl)
    assert etl.run().ret == 0 and ran(etl) == []
    assert etl.run("--no-incremental").ret == 0 and len(ran(etl)) == 5
    assert etl.run("--cache-clear").ret == 0 and len(ran(etl)) == 5  # nothing recorded: all run once
    assert etl.run().ret == 0 and ran(etl) == []


def test_a_failed_task_reruns_and_its_record_says_why(etl):
    run(etl)
    ran(etl)
    (etl.path / "fail-report").write_text("")
    result = etl.run("--incremental", "--force", "report")
    assert result.ret == ExitCode.TASKS_FAILED
    assert ran(etl) == ["report"]
    (etl.path / "fail-report").unlink()
    assert "report (Report): its last run did not complete" in etl.run("--explain").stdout
    run(etl)
    assert ran(etl) == ["report"]


def test_a_run_killed_with_sigkill_leaves_a_usable_record(etl, launch):
    edit(
        etl.path / "job.yaml",
        "count: {task: Count,",
        "slow: {task: Slow, parameters: {seconds: 30}}\n  count: {task: Count,",
    )
    proc = launch("--incremental")
    deadline = time.monotonic() + 30
    while "slow" not in (etl.path / "trail.txt").read_text() if (etl.path / "trail.txt").exists() else True:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    while len((etl.path / "trail.txt").read_text().split()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the others' results are recorded
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    ran(etl)
    explained = etl.run("--explain").stdout
    assert "slow (Slow): its last run did not complete" in explained or "slow (Slow): never ran" in explained
    assert "extract (Extract): up to date" in explained
    edit(etl.path / "job.yaml", "seconds: 30", "seconds: 0")
    run(etl)
    assert ran(etl) == ["slow"]
    record = next((etl.path / ".flowmancer").glob("*.incremental.jsonl"))
    assert all(json.loads(line) for line in record.read_text().splitlines())


def test_a_damaged_record_is_a_clear_error(etl):
    run(etl)
    record = next((etl.path / ".flowmancer").glob("*.incremental.jsonl"))
    lines = record.read_text().splitlines()
    record.write_text("\n".join(lines[:2] + ["{not json"] + lines[2:]) + "\n")
    result = etl.run("--incremental")
    assert result.ret != 0
    assert f"{record}:3: the incremental record is damaged" in result.stderr
    assert "--cache-clear" in result.stderr
    assert etl.run("--incremental", "--cache-clear").ret == 0
    # a torn last line (killed mid-write) is not damage
    record.write_text(record.read_text() + '{"t": "extract", "r": {"ran"')
    assert etl.run("--incremental").ret == 0


def test_mark_done_on_restart(etl):
    edit(etl.path / "tasks" / "etl.py", 'ran("transform")', 'ran("transform")\n        raise RuntimeError("bad")')
    assert etl.run().ret == ExitCode.TASKS_FAILED
    ran(etl)
    result = etl.run("-r", "--mark-done", "transform")
    assert result.ret == ExitCode.TASKS_FAILED  # load needs doubled, which transform never wrote
    assert "--mark-done: transform treated as completed without running" in result.stdout
    assert ran(etl) == ["load"]
    bad = etl.run("--mark-done", "transform")
    assert bad.ret == ExitCode.USAGE_ERROR and "add -r" in bad.stderr


def test_watch_reruns_only_the_affected_tasks(etl, launch):
    proc = launch("--watch")
    trail = etl.path / "trail.txt"
    deadline = time.monotonic() + 60
    while not (trail.exists() and len(trail.read_text().split()) == 5):
        assert time.monotonic() < deadline, "the first run did not finish"
        time.sleep(0.05)
    time.sleep(0.5)
    ran(etl)
    edit(etl.path / "tasks" / "other.py", 'self.shared_dict["files"] = 1', 'self.shared_dict["files"] = 2')
    while not trail.exists():
        assert time.monotonic() < deadline, "no rerun after the edit"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert ran(etl) == ["count"]
    assert "changed: tasks/other.py -> count " in out


class ReuseCount:
    """A plugin on flowmancer_task_reuse: one task's result stands without running it."""

    @hookimpl
    def flowmancer_task_reuse(self, job, task):
        if task.name == "count":
            job.shared_dict["files"] = 42
            return TaskResult(name=task.name, state=S.COMPLETED, up_to_date=1.0)
        return None


def test_flowmancer_task_reuse_settles_a_task_without_running_it(etl):
    result = etl.run(plugins=(ReuseCount(),))
    assert result.ret == ExitCode.OK
    assert sorted(ran(etl)) == ["extract", "load", "report", "transform"]
    assert result.job.tasks["count"].state is S.COMPLETED and result.job.shared_dict["files"] == 42
    result.assert_outcomes(completed=4, up_to_date=1)


def test_library_versions_are_recorded_and_compared(fmtester):
    fmtester.make_tasks(
        """
        import yaml

        from flowmancer.task import Task, task

        @task
        class UsesYaml(Task):
            def run(self):
                yaml.safe_dump({})
        """,
        name="uses",
        package=False,
    )
    fmtester.make_jobdef("config: {name: libs}\ntasks:\n  y: {task: UsesYaml}\n")
    run(fmtester)
    record = fmtester.path / ".flowmancer" / "libs.incremental.jsonl"
    entries = [json.loads(line) for line in record.read_text().splitlines()[1:]]
    libs = [e["r"]["libs"] for e in entries if "r" in e][-1]
    assert list(libs) == ["PyYAML"]
    record.write_text(record.read_text().replace(f'"PyYAML":"{libs["PyYAML"]}"', '"PyYAML":"0.1"'))
    assert f"library PyYAML: 0.1 -> {libs['PyYAML']}" in fmtester.run("--explain").stdout


def test_the_record_stays_bounded(etl):
    for _ in range(20):  # 4 lines a run (2 tasks started, 2 records): 86 lines without compaction
        run(etl, "--force", "extract", "count")
    record = next((etl.path / ".flowmancer").glob("*.incremental.jsonl"))
    assert len(record.read_text().splitlines()) < 30  # rewritten to a line per task once past 2 x tasks + 64
    ran(etl)
    assert run(etl).job.shared_dict["rows"] == 3 and ran(etl) == []  # a valid record: everything up to date


def test_a_record_of_an_older_format_is_set_aside_not_called_damaged(etl):
    """Module names of plain folders changed with format 2 (``etl`` became ``tasks.etl``): a format-1 record
    is forgotten with a note, every task runs once, and the next run is up to date again."""
    run(etl)
    ran(etl)
    record = next((etl.path / ".flowmancer").glob("*.incremental.jsonl"))
    lines = record.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": 2}
    assert "tasks.etl:Extract" in record.read_text()  # the class key: the namespace name
    record.write_text("\n".join([json.dumps({"format": 1}), *lines[1:]]) + "\n")
    again = run(etl)
    assert "written by an older flowmancer (format 1): every task runs once" in again.stdout
    assert sorted(ran(etl)) == ["count", "extract", "load", "report", "transform"]
    assert json.loads(record.read_text().splitlines()[0]) == {"format": 2}
    run(etl)
    assert ran(etl) == []
