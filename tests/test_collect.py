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


PLAIN = {  # a tasks/ folder without __init__.py: relative imports, a subfolder, and the bare sibling import
    "tasks/helper.py": (
        "import os\n\nwith open('imports.txt', 'a') as f:\n    f.write(f'{os.getpid()}\\n')\n\nGREETING = 'hi'\n"
    ),
    "tasks/wordcount.py": (
        "from flowmancer.task import Task, task\n\nfrom .helper import GREETING\n\n\n@task\nclass Count(Task):\n"
        "    def run(self):\n        print('count says', GREETING, __name__)\n"
    ),
    "tasks/legacy.py": (
        "import helper  # a bare sibling import, as folders on sys.path allowed\nfrom flowmancer.task import Task, task"
        "\n\n\n@task\nclass Legacy(Task):\n    def run(self):\n        print('legacy says', helper.GREETING)\n"
    ),
    "tasks/sub/deep.py": (
        "from flowmancer.task import Task, task\n\nfrom ..helper import GREETING\n\n\n@task\nclass Deep(Task):\n"
        "    def run(self):\n        print('deep says', GREETING, __name__)\n"
    ),
}


def test_relative_imports_in_folders_without_init(fmtester, spawn_path):
    for path, text in PLAIN.items():
        fmtester.makefile(path, text)
    fmtester.make_jobdef("tasks:\n  c: {task: Count}\n  l: {task: Legacy}\n  d: {task: Deep}\n  c2: {task: Count}\n")
    result = fmtester.run_subprocess("-s")
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert "count says hi tasks.wordcount" in result.stdout
    assert "deep says hi tasks.sub.deep" in result.stdout
    assert "legacy says hi" in result.stdout
    pids = (fmtester.path / "imports.txt").read_text().split()
    assert len(pids) == len(set(pids)), "a process imported tasks/helper.py twice (as helper and tasks.helper)"


def test_an_installed_package_named_like_the_folder_does_not_hide_it(fmtester):
    """``tasks`` is also a regular package elsewhere on sys.path: the folder's modules are imported by location."""
    fmtester.makefile("site/tasks/__init__.py", "SITE = True\n")
    fmtester.makefile(
        "tasks/mine.py",
        "from flowmancer.task import Task, task\n\n\n@task\nclass Mine(Task):\n    def run(self):\n        print('mine')\n",
    )
    fmtester.make_jobdef("tasks:\n  m: {task: Mine}\n")
    result = fmtester.run_subprocess("-s", env={"PYTHONPATH": str(fmtester.path / "site")})
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert "mine" in result.stdout


def test_plain_folder_imports_in_a_fresh_interpreter(fmtester):
    """The spawn start method (macOS; the fallback beside a thread): the task process re-imports the modules
    by their namespace names, and a bare sibling import still finds its module (the folder is on sys.path)."""
    for path, text in PLAIN.items():
        fmtester.makefile(path, text)
    fmtester.make_jobdef("tasks:\n  c: {task: Count}\n  l: {task: Legacy}\n  d: {task: Deep}\n")
    result = fmtester.run_subprocess("-s", env={"FLOWMANCER_START_METHOD": "spawn"})
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert "count says hi tasks.wordcount" in result.stdout and "legacy says hi" in result.stdout
    assert "deep says hi tasks.sub.deep" in result.stdout
