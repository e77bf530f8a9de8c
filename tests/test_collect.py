"""Collecting task, logger and extension modules: an import error is located at the user's file and line."""

from __future__ import annotations

import pytest

from flowmancer.exitcode import ExitCode

BAD_JSON = 'import json\n\nSETTINGS = json.loads("{not json")\n'
HELPER = "import enum\n\n\ndef colours():\n    return enum.Enum('Colour', 42)\n"
USES_HELPER = "from helpers import colours\n\nCOLOURS = colours()\n"


@pytest.mark.parametrize("folder", ["tasks", "loggers", "extensions"])
def test_import_error_points_at_the_users_line(fmtester, folder):
    fmtester.makefile(f"{folder}/broken.py", BAD_JSON)
    fmtester.make_jobdef("tasks: {}\n")
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    result.err.fnmatch_lines([f"*{folder}/broken.py:3: cannot import * module*JSONDecodeError*"])
    result.err.fnmatch_lines(["*raised in *json*decoder.py:*, called from the line shown*"])
    assert "Traceback" not in result.stderr


def test_import_error_through_a_helper_module(fmtester):
    fmtester.makefile("helpers.py", HELPER)
    fmtester.makefile("tasks/uses.py", USES_HELPER)
    fmtester.make_jobdef("tasks: {}\n")
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    result.err.fnmatch_lines(["*helpers.py:5: cannot import task module*tasks/uses.py*"])
    result.err.no_fnmatch_line("*enum.py:* cannot import*")


def test_extension_folder_and_package_errors_are_at_their_line(fmtester):
    fmtester.make_jobdef(
        "config:\n  extension_directories:\n    - here\n    - nope\n  extension_packages: [no_such_pkg]\ntasks: {}\n"
    )
    fmtester.makefile("here/ok.py", "X = 1\n")
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:4: config.extension_directories[1]: extension directory not found:" in result.stderr
    assert "job.yaml:5: config.extension_packages[0]: package 'no_such_pkg' is not installed" in result.stderr
