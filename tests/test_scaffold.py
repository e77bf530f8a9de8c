"""flowmancer init: a starter project that runs, and whose own tests pass, as written."""

from __future__ import annotations

import subprocess
import sys

from flowmancer.exitcode import ExitCode


def test_init_writes_a_project_that_runs_and_passes_its_tests(fmtester):
    made = fmtester.run_subprocess("init", "starter", jobdef=None)
    assert made.ret == 0, made.stderr
    assert "run it:   cd starter && flowmancer -s" in made.stdout
    root = fmtester.path / "starter"
    run = subprocess.run([sys.executable, "-m", "flowmancer", "-s"], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0 and "[shout] HELLO, WORLD!" in run.stdout, run.stdout + run.stderr
    driver = subprocess.run([sys.executable, "main.py", "-j", "job.yaml"], cwd=root, capture_output=True, text=True)
    assert driver.returncode == 0, driver.stderr
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr
    again = fmtester.run_subprocess("init", "starter", jobdef=None)
    assert again.ret == ExitCode.USAGE_ERROR and "nothing was written" in again.stderr
