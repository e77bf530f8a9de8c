"""Every task gets exactly one final report; decision hooks can say no; late plugins are configured and
checked. Real task processes, the in-process runner with a hook recorder."""

from __future__ import annotations

import os
import signal

import pytest

from flowmancer import ExecutionState as S
from flowmancer import hookimpl
from flowmancer.exitcode import ExitCode

FINAL = (S.COMPLETED, S.FAILED, S.DEFAULTED, S.ABORTED, S.SKIPPED)


def final_reports(result) -> dict[str, list[tuple[str, S]]]:
    """task -> [(hook, state)] of its final reports: task_finish without will_retry, and task_not_run."""
    out: dict[str, list[tuple[str, S]]] = {t: [] for t in result.job.tasks}
    for call in result.recorder.calls:
        if call.name == "flowmancer_task_finish" and not call.result.will_retry:
            out[call.task.name].append(("finish", call.result.state))
        elif call.name == "flowmancer_task_not_run":
            out[call.task.name].append(("not_run", call.result.state))
    return out


def assert_one_final_report_each(result) -> dict[str, tuple[str, S]]:
    reports = final_reports(result)
    for name, got in reports.items():
        assert len(got) == 1, f"{name}: {got}"
        assert got[0][1] is result.job.tasks[name].state, (name, got)
        assert result.job.tasks[name].result.state is got[0][1]
        assert not result.job.tasks[name].result.will_retry
    return {name: got[0] for name, got in reports.items()}


def test_normal_end_retry_and_defaulted(recorder_project):
    recorder_project.make_jobdef(
        "tasks:\n"
        "  ok: {task: Record}\n"
        "  flaky: {task: Record, max_attempts: 2, parameters: {fail_times: 1}}\n"
        "  broken: {task: Record, parameters: {fail_times: 5}}\n"
        "  after: {task: Record, dependencies: [broken]}\n"
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    got = assert_one_final_report_each(result)
    assert got == {
        "ok": ("finish", S.COMPLETED),
        "flaky": ("finish", S.COMPLETED),
        "broken": ("finish", S.FAILED),
        "after": ("finish", S.DEFAULTED),
    }


def test_waiting_to_retry_when_x_stops_the_run(recorder_project):
    """``-x``: the first failure stops the run; a task waiting for its retry gives up with its last failure."""
    recorder_project.make_jobdef(
        "tasks:\n"
        "  waits: {task: Record, max_attempts: 3, backoff: 30, parameters: {fail_times: 5}}\n"
        "  fails: {task: Record, parameters: {sleep: 0.5, fail_times: 5}}\n"
    )
    result = recorder_project.run("-x")
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.duration < 20  # did not wait for the 30 s backoff
    got = assert_one_final_report_each(result)
    assert got["waits"] == ("finish", S.FAILED) and got["fails"] == ("finish", S.FAILED)
    assert "waits failing attempt 1" in result.job.tasks["waits"].result.error
    assert [r.will_retry for r in result.job.tasks["waits"].history] == [False]


class _AbortWhen:
    """Aborts the run when ``name`` starts: with ``job.stop(abort=True)``, or as SIGTERM to the runner does."""

    def __init__(self, name: str, signal: bool = False) -> None:
        self.name, self.signal = name, signal

    @hookimpl
    def flowmancer_task_start(self, job, task):
        if task.name == self.name:
            if self.signal:
                os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's own handler takes it
            else:
                job.stop(abort=True, reason="enough")


@pytest.mark.parametrize("by_signal", [False, True])
def test_abort_while_one_waits_to_retry(recorder_project, by_signal):
    """An abort ends a task waiting for its retry: FAILED when asked for by a plugin (``job.stop`` gives up
    retries first), ABORTED by a signal; either way one final report, without ``will_retry``."""
    recorder_project.make_jobdef(
        "tasks:\n"
        "  waits: {task: Record, max_attempts: 3, backoff: 30, parameters: {fail_times: 5}}\n"
        "  slow: {task: Record, dependencies: [waits], trigger: all_done}\n"
        "  late: {task: Record, parameters: {sleep: 0.5}}\n"
        "  trigger: {task: Record, dependencies: [late], parameters: {sleep: 5}}\n"
    )
    result = recorder_project.run(plugins=(_AbortWhen("trigger", by_signal),))
    assert result.ret == (ExitCode.TERMINATED if by_signal else ExitCode.TASKS_FAILED)
    reports = final_reports(result)
    waits = result.job.tasks["waits"].result
    if by_signal:
        assert reports["waits"] == [("finish", S.ABORTED)] and waits.error == "aborted by SIGTERM"
    else:
        assert reports["waits"] == [("finish", S.FAILED)] and "waits failing attempt 1" in waits.error
    assert reports["trigger"] == [("finish", S.ABORTED)]
    assert reports["late"] == [("finish", S.COMPLETED)]
    assert reports["slow"] == []  # never settled: after an abort, dependents stay "not run" (-r runs them)
    assert result.job.tasks["slow"].state is S.INIT


def test_deselected_and_restored_get_task_not_run(recorder_project):
    jobdef = (
        "tasks:\n  a: {task: Record}\n  b: {task: Record, dependencies: [a], parameters: {fail_times: %d}}\n"
        "  c: {task: Record}\n  d: {task: Record, dependencies: [b]}\n"
    )
    recorder_project.make_jobdef(jobdef % 1)
    first = recorder_project.run()
    assert first.ret == ExitCode.TASKS_FAILED
    assert assert_one_final_report_each(first)["d"] == ("finish", S.DEFAULTED)

    recorder_project.make_jobdef(jobdef % 0)  # b is fixed
    again = recorder_project.run("-r", "--skip", "d")
    assert again.ret == ExitCode.OK
    got = assert_one_final_report_each(again)
    assert got == {
        "a": ("not_run", S.COMPLETED),
        "b": ("finish", S.COMPLETED),
        "c": ("not_run", S.COMPLETED),
        "d": ("not_run", S.SKIPPED),
    }
    assert again.job.tasks["d"].result.error == "deselected"
    assert again.job.tasks["a"].result.error == "restored from checkpoint"
    order = [c.name for c in again.recorder.calls]
    assert order.index("flowmancer_job_start") < order.index("flowmancer_task_not_run")
    assert order.index("flowmancer_task_not_run") < order.index("flowmancer_task_spawn")


class _OnlyConnectionErrors:
    """A project rule: retry only ConnectionError, whatever max_attempts says."""

    @hookimpl
    def flowmancer_task_retry(self, job, task, result):
        return None if "ConnectionError" in result.exception_types else False


def test_retry_hook_can_forbid_a_retry(recorder_project):
    recorder_project.make_jobdef("tasks:\n  a: {task: Record, max_attempts: 3, parameters: {fail_times: 5}}\n")
    result = recorder_project.run(plugins=(_OnlyConnectionErrors(),))
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.job.tasks["a"].attempt == 1  # the built-in alone would have run it 3 times
    plain = recorder_project.run()
    assert plain.job.tasks["a"].attempt == 3


class _NoLimitFor:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def flowmancer_task_timeout(self, job, task):
        return False if task.name == self.name else None


def test_timeout_hook_can_lift_a_limit(recorder_project):
    recorder_project.make_jobdef(
        "tasks:\n"
        "  free: {task: Record, timeout: 0.3, parameters: {sleep: 1}}\n"
        "  bound: {task: Record, timeout: 0.3, parameters: {sleep: 1}}\n"
    )
    result = recorder_project.run(plugins=(_NoLimitFor("free"),))
    assert result.states() == {"free": "COMPLETED", "bound": "FAILED"}
    assert result.job.tasks["bound"].result.error == "timed out after 0.3 s"


EXTENSION = """
from flowmancer import hookimpl
from flowmancer.extensions.extension import Extension, extension


@extension
class Configured(Extension):
    @hookimpl
    def flowmancer_configure(self, config):
        open("configured.txt", "w").write(str(config.rootdir))

    async def update(self, evt):
        pass
"""


def test_yaml_extension_gets_configure(fmtester):
    """``flowmancer_configure`` is historic: an extension registered as a plugin when the YAML is read (after
    configure ran for the others) gets it too."""
    fmtester.make_tasks("from flowmancer.task import Task, task\n\n@task\nclass Hi(Task):\n    def run(self): pass\n")
    fmtester.makefile("extensions/conf.py", EXTENSION)
    fmtester.make_jobdef("extensions:\n  c: {extension: Configured}\ntasks:\n  a: {task: Hi}\n")
    result = fmtester.run_subprocess("-q")
    assert result.ret == 0, result.stderr
    assert (fmtester.path / "configured.txt").read_text() == str(fmtester.path)


@pytest.mark.parametrize(
    "method, message",
    [
        ("    @hookimpl\n    def flowmancer_task_finsh(self, job, task, result): pass\n", "unknown hook"),
        ("    def flowmancer_task_finish(self, job, task, result): pass\n", "not marked as a hook implementation"),
    ],
)
def test_yaml_extension_hooks_are_checked(fmtester, method, message):
    fmtester.make_tasks("from flowmancer.task import Task, task\n\n@task\nclass Hi(Task):\n    def run(self): pass\n")
    marker = "    @hookimpl\n    def flowmancer_configure"
    fmtester.makefile("extensions/conf.py", EXTENSION.replace(marker, method + "\n" + marker))
    fmtester.make_jobdef("extensions:\n  c: {extension: Configured}\ntasks:\n  a: {task: Hi}\n")
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR, result.stdout + result.stderr
    assert message in result.stderr and "extensions/conf.py" in result.stderr
    assert "Traceback" not in result.stderr
