"""The original README's Basic Usage example, verbatim, as a real `python main.py -j job.yaml` run."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "readme"


def test_readme_basic_usage_verbatim(fmtester):
    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    result = fmtester.run_python("main.py", "-j", "./job.yaml", "-v")

    # main.py raises when start() returns non-zero.
    assert result.ret == 1
    assert "RuntimeError: Flowmancer job has failed!" in result.stderr
    out = result.outlines
    # final-fail-task made exactly 3 attempts, each of which saw my_var from succeed-task-a.
    assert sum("FAILED" in ln and "final-fail-task" in ln for ln in out) == 3
    assert sum("Printing `my_var` value: Hello from: My First Task!!" in ln for ln in out) >= 3
    result.out.fnmatch_lines(["*attempt 3/3*"])
    # Order: b finishes before a (a sleeps 5 s); the failing task starts only after both.
    done_b = next(i for i, ln in enumerate(out) if "COMPLETED" in ln and "succeed-task-b" in ln)
    done_a = next(i for i, ln in enumerate(out) if "COMPLETED" in ln and "succeed-task-a" in ln)
    first_fail = next(i for i, ln in enumerate(out) if "started" in ln and "final-fail-task" in ln)
    assert done_b < done_a < first_fail
    result.assert_outcomes(completed=2, failed=1)


def test_readme_start_returns_failed_plus_defaulted(fmtester):
    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    (fmtester.path / "driver.py").write_text(
        "import sys\nfrom flowmancer import Flowmancer\nsys.exit(Flowmancer().start())\n", encoding="utf-8"
    )
    fmtester.makefile(
        "fast.yaml",
        """
        config:
          name: fast
        tasks:
          a:
            task: WaitAndSucceed
            parameters: {my_required_string_var: x, my_optional_int_var: "0"}
          fail:
            task: FailImmediately
            dependencies: [a]
          after-1: {task: ImmediatelySucceed, dependencies: [fail]}
          after-2: {task: ImmediatelySucceed, dependencies: [after-1]}
        """,
    )
    result = fmtester.run_python("driver.py", "-j", "fast.yaml")
    assert result.ret == 3, result.stdout + result.stderr  # 1 failed + 2 defaulted
    result.assert_outcomes(completed=1, failed=1, defaulted=2)


def test_quickstart_example(fmtester):
    """The README's first quickstart command runs the shipped example job successfully."""
    shutil.copytree(EXAMPLE.parent / "quickstart", fmtester.path, dirs_exist_ok=True)
    result = fmtester.run_subprocess("-s", jobdef="job.yaml")
    assert result.ret == 0, result.stdout + result.stderr
    result.assert_outcomes(completed=5)
    import json

    counts = json.loads((fmtester.path / "wordcount.json").read_text())
    assert counts["things"] == 5
    result.out.fnmatch_lines(["*    things 5*"])
