"""Where the kernel or sandbox lacks what the fast path uses: the run still works, the same way."""

from __future__ import annotations

from flowmancer.exitcode import ExitCode

NO_PIDFD = """
import errno
import os
import sys


def _nosys(*args, **kwargs):
    raise OSError(errno.ENOSYS, "Function not implemented")


os.pidfd_open = _nosys  # as on Linux < 5.3, or under a seccomp filter that refuses it
sys.argv[0] = "flowmancer"
from flowmancer.__main__ import main

main()
"""


def test_without_pidfd_open_tasks_still_run(recorder_project, timeline):
    recorder_project.makefile("nopidfd.py", NO_PIDFD)
    recorder_project.make_jobdef(
        "tasks:\n"
        "  a: {task: Record, parameters: {sleep: 0.2}}\n"
        "  b: {task: Record, parameters: {sleep: 0.2}}\n"
        "  c: {task: Record, dependencies: [a, b], parameters: {fail_times: 1}, max_attempts: 2}\n"
    )
    result = recorder_project.run_python("nopidfd.py", "-j", "job.yaml", "-s")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    result.assert_outcomes(completed=3)
    assert sorted(timeline.names()) == ["a", "b", "c", "c"]
    assert timeline.max_overlap() == 2  # a and b still ran in parallel
    assert "Traceback" not in result.stderr


def test_an_unsupported_platform_is_told_at_start(fmtester, monkeypatch):
    fmtester.make_jobdef("tasks: {}\n")
    monkeypatch.setattr("sys.platform", "win32")
    result = fmtester.run()
    assert result.ret == ExitCode.USAGE_ERROR
    assert "Flowmancer needs a POSIX system (Linux; macOS untested), not win32" in result.stderr
    assert "WSL" in result.stderr
