"""command: tasks that run a program, with retries, timeouts, logs and exit codes (real runs)."""

from __future__ import annotations

import sys
import time

from flowmancer.exitcode import ExitCode

PY = sys.executable


def _log(fmtester, task: str) -> str:
    return "\n".join(p.read_text() for p in sorted(fmtester.path.glob(f"logs/**/{task}.log")))


def test_an_argument_list_runs_without_a_shell_and_its_output_is_logged(fmtester):
    fmtester.make_jobdef(
        "tasks:\n"
        f'  hello: {{command: [{PY}, -c, \'import sys; print("out $HOME >", sys.argv[1]); '
        "print(\"err line\", file=sys.stderr)', 'two words']}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    log = _log(fmtester, "hello")
    assert "out $HOME > two words" in log  # no shell: $HOME and > are plain text, one argument kept whole
    assert "err line" in log and "ERROR" in log.split("err line")[0].splitlines()[-1]


def test_a_string_command_with_a_shell_and_placeholders(fmtester):
    fmtester.make_jobdef(
        "tasks:\n"
        "  write:\n"
        "    command: 'echo {word} > {out} && echo done'\n"
        "    shell: true\n"
        '    parameters: {word: "it\'s here", out: result.txt}\n'
        "    env: {EXTRA: '1'}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert (fmtester.path / "result.txt").read_text() == "it's here\n"  # quoted for the shell
    assert "done" in _log(fmtester, "write")


def test_a_non_zero_exit_fails_and_is_retried(fmtester):
    fmtester.make_jobdef(
        "tasks:\n"
        f'  flaky: {{command: [{PY}, -c, \'import sys; open("n.txt", "a").write("x"); '
        'sys.exit(0 if len(open("n.txt").read()) >= 2 else 3)\'], '
        "max_attempts: 2, retry_on: [CommandFailed]}\n"
        f"  bad: {{command: [{PY}, -c, 'import sys; sys.exit(7)'], dependencies: [flaky]}}\n"
        "  after: {command: [true], dependencies: [bad]}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.TASKS_FAILED, result.stderr
    assert (fmtester.path / "n.txt").read_text() == "xx"  # failed once with 3, then passed
    assert "exited with code 7" in result.stdout + result.stderr
    assert "CommandFailed" in _log(fmtester, "bad")


def test_a_timeout_stops_the_command(fmtester):
    fmtester.make_jobdef(
        f'tasks:\n  slow: {{command: [{PY}, -c, \'import time; open("started", "w"); time.sleep(60)\'], timeout: 1}}\n'
    )
    t0 = time.monotonic()
    result = fmtester.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert time.monotonic() - t0 < 20
    assert (fmtester.path / "started").exists()
    assert "timed out after 1" in result.stdout + result.stderr


def test_a_matrix_of_commands_and_cwd(fmtester):
    (fmtester.path / "data").mkdir()
    fmtester.make_jobdef(
        "tasks:\n"
        "  part:\n"
        f"    command: [{PY}, -c, 'import sys; open(\"part-\" + sys.argv[1], \"w\")', '{{n}}']\n"
        "    cwd: data\n"
        "    matrix: {n: [1, 2, 3]}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert sorted(p.name for p in (fmtester.path / "data").iterdir()) == ["part-1", "part-2", "part-3"]


def test_command_errors_are_at_their_lines(fmtester):
    fmtester.make_jobdef(
        "tasks:\n  a: {command: 'echo {missing}'}\n  b: {command: [ls, x], shell: true}\n  c: {shell: true}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    err = result.stderr
    assert "job.yaml:2:" in err and "{missing} is not a parameter of this task" in err
    assert "job.yaml:3:" in err and "shell: true takes the command as one string" in err
    assert "job.yaml:4:" in err and "add command:" in err
    assert "Traceback" not in err


def test_a_program_that_cannot_be_started_fails_the_task(fmtester):
    fmtester.make_jobdef("tasks:\n  d: {command: [nonexistent-program-xyz, arg]}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert "cannot run 'nonexistent-program-xyz'" in result.stdout + result.stderr
