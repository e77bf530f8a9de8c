"""``flowmancer init [DIR]``: a starter project that runs as written (tasks, a job, a driver, a test)."""

from __future__ import annotations

import sys
from pathlib import Path

FILES = {
    "tasks/greet.py": '''\
from flowmancer.task import Task, task


@task
class Greet(Task):
    """Writes a greeting for the tasks after it."""

    name: str

    def run(self) -> None:
        self.shared_dict["greeting"] = f"Hello, {self.name}!"
        self.logger.info("greeted %s", self.name)


@task
class Shout(Task):
    """Prints what Greet wrote, louder."""

    def run(self) -> None:
        print(self.shared_dict["greeting"].upper())
''',
    "job.yaml": """\
# flowmancer -s            (runs job.yaml of this folder; -s shows the tasks' output)
config:
  name: starter
tasks:
  greet:
    task: Greet
    parameters:
      name: world
  shout:
    task: Shout
    dependencies: [greet]
""",
    "main.py": '''\
"""The same job from a driver of your own: python main.py -j job.yaml"""

import sys

from flowmancer import Flowmancer

if __name__ == "__main__":
    sys.exit(Flowmancer().start())
''',
    "conftest.py": """\
pytest_plugins = ["flowmancer.testing"]  # the fmtester fixture
""",
    "tests/test_job.py": """\
import shutil
from pathlib import Path

from tasks.greet import Greet

ROOT = Path(__file__).resolve().parent.parent


def test_the_job_runs(fmtester):
    shutil.copytree(ROOT / "tasks", fmtester.path / "tasks")
    shutil.copy(ROOT / "job.yaml", fmtester.path / "job.yaml")
    result = fmtester.run_subprocess("-s")  # a real flowmancer process, in a copy of the project
    assert result.ret == 0, result.stdout + result.stderr
    assert "HELLO, WORLD!" in result.stdout


def test_greet_alone():
    shared = {}
    Greet(shared_dict=shared, name="you").run()
    assert shared == {"greeting": "Hello, you!"}
""",
}


def init(args: list[str]) -> int:
    """Write the starter project into ``args[0]`` (default: the current folder); 2 if a file is in the way."""
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: flowmancer init [DIR]", file=sys.stderr)
        return 2
    root = Path(args[0] if args else ".")
    taken = [name for name in FILES if (root / name).exists()]
    if taken:
        print(f"ERROR: {root.resolve()} already has {', '.join(taken)}: nothing was written", file=sys.stderr)
        print("  hint: pick an empty folder: flowmancer init NEWDIR", file=sys.stderr)
        return 2
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    where = "" if not args else f"cd {args[0]} && "
    print(f"wrote a starter project in {root.resolve()}: {', '.join(FILES)}")
    print(f"run it:   {where}flowmancer -s")
    print(f"test it:  {where}python -m pytest -q")
    return 0
