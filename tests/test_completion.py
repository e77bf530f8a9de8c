"""<Tab> completion: the scripts ``flowmancer --completion SHELL`` prints, and a real bash completing from them
(options, task names of the job file, tags, plugin names, a plugin's own options)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

JOB = """\
tasks:
  extract: {task: Step, tags: [nightly]}
  transform: {task: Step, dependencies: [extract], tags: [nightly, slow]}
  load: {task: Step, dependencies: [transform]}
"""

TASKS = """
from flowmancer.task import Task, task

@task
class Step(Task):
    def run(self):
        pass
"""

CONF = """
from flowmancer import hookimpl

@hookimpl
def flowmancer_addoption(parser):
    parser.add_argument("--my-flag", action="store_true")
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    return fmtester


def script(project, shell: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "--completion", shell], cwd=project.path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nospace -o default -o bashdefault -F _python_argcomplete flowmancer"),
        ("zsh", "#compdef flowmancer"),
        ("fish", "complete --command flowmancer"),
    ],
)
def test_each_shell_gets_its_script(project, shell, marker):
    assert marker in script(project, shell)


def test_the_bash_script_is_valid_bash(project, tmp_path):
    path = tmp_path / "flowmancer.bash"
    path.write_text(script(project, "bash"))
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def bash_complete(project, line: str) -> list[str]:
    """What bash offers at the end of ``line``, through the script as a user loads it."""
    words = line.split(" ")
    program = f"""
eval "$(flowmancer --completion bash)"
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}
_python_argcomplete flowmancer {words[-1]!r} {words[-2]!r}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    bindir = os.path.dirname(sys.executable)  # where this interpreter's flowmancer script is
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"]}
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], cwd=project.path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


def test_bash_completes_options_tasks_tags_and_plugins(project):
    project.makefile("flowmancerconf.py", CONF)
    assert bash_complete(project, "flowmancer --ski") == ["--skip"]
    assert sorted(bash_complete(project, "flowmancer --skip ")) == ["extract", "load", "transform"]
    assert bash_complete(project, "flowmancer --only tr") == ["transform"]
    assert bash_complete(project, "flowmancer --force l") == ["load"]
    assert sorted(bash_complete(project, "flowmancer -m ")) == ["nightly", "slow"]
    # ':' breaks words in bash (COMP_WORDBREAKS): it inserts "timeout" after the "no:" already typed
    assert bash_complete(project, "flowmancer -p no:ti") == ["timeout"]
    assert "watch" in bash_complete(project, "flowmancer -p w")
    assert bash_complete(project, "flowmancer --my") == ["--my-flag"]  # a flowmancerconf.py option
    assert bash_complete(project, "flowmancer --completion ") == ["bash", "zsh", "fish"]


def test_task_names_come_from_the_job_given_with_j(project):
    project.makefile("other.yaml", "tasks:\n  only-here: {task: Step}\n")
    assert bash_complete(project, "flowmancer -j other.yaml --skip ") == ["only-here"]


def test_a_normal_run_never_imports_argcomplete(project):
    code = (
        "import sys\nfrom flowmancer.cli import run\n"
        "code, _ = run(['-j', 'job.yaml', '-q'])\n"
        "assert code == 0, code\nassert 'argcomplete' not in sys.modules, 'imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
