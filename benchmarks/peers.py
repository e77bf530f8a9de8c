"""The peers of ``run.py --peers``: Luigi and doit, each in a side venv of its own, on the shapes users compare.

Luigi 3.8 (``--local-scheduler --workers 2``: one process per task) runs one task class whose output is a
``LocalTarget``; doit 0.37 (``-n 2 -P process``) runs one Python action per task with a target file. Each
no-op task appends its start time to ``$BENCH_STAMPS``, as ours and the floor's do, so "per task" means the
same thing on every side. The venvs are made once (``benchmarks/.venv-luigi``, ``.venv-doit``) with pip.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
VERSIONS = {"luigi": "luigi==3.8.1", "doit": "doit==0.37.0"}

STAMP = textwrap.dedent(
    """
    import os, time
    def stamp():
        path = os.environ.get("BENCH_STAMPS")
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, ("%r\\n" % time.time()).encode())
            os.close(fd)
    """
)

LUIGI = STAMP + textwrap.dedent(
    """
    import luigi

    N = int(os.environ["BENCH_N"])
    CHAIN = os.environ.get("BENCH_SHAPE") == "chain"

    class Noop(luigi.Task):
        i = luigi.IntParameter()

        def requires(self):
            return [Noop(i=self.i - 1)] if CHAIN and self.i > 0 else []

        def output(self):
            return luigi.LocalTarget(f"out/{self.i}")

        def run(self):
            stamp()
            with self.output().open("w") as f:
                f.write("done")

    class All(luigi.WrapperTask):
        def requires(self):
            return [Noop(i=N - 1)] if CHAIN else [Noop(i=i) for i in range(N)]
    """
)

DOIT = STAMP + textwrap.dedent(
    """
    N = int(os.environ["BENCH_N"])
    CHAIN = os.environ.get("BENCH_SHAPE") == "chain"
    DOIT_CONFIG = {"verbosity": 0}

    def noop(target):
        stamp()
        with open(target, "w") as f:
            f.write("done")

    def task_noop():
        for i in range(N):
            target = f"out/{i}"
            yield {
                "name": str(i),
                "actions": [(noop, [target])],
                "targets": [target],
                "task_dep": [f"noop:{i - 1}"] if CHAIN and i > 0 else [],
                "uptodate": [False],
            }
    """
)


def venv_python(peer: str) -> Optional[str]:
    """The side venv's interpreter, made (with pip) if it is missing; ``None`` if that fails."""
    venv = HERE / f".venv-{peer}"
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"(making {venv} with {VERSIONS[peer]} ...)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", VERSIONS[peer]], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"(cannot make the {peer} venv: {exc})")
            return None
    subprocess.run([str(py), "-m", "compileall", "-q", str(venv / "lib")], capture_output=True)
    return str(py)


def write_project(root: Path, peer: str) -> None:
    (root / "out").mkdir(exist_ok=True)
    name = {"luigi": "bench_luigi.py", "doit": "dodo.py"}[peer]
    (root / name).write_text(LUIGI if peer == "luigi" else DOIT)


def command(peer: str, python: str) -> list[str]:
    if peer == "luigi":
        return [python, "-m", "luigi", "--module", "bench_luigi", "All", "--local-scheduler", "--workers", "2"]
    return [python, "-m", "doit", "-n", "2", "-P", "process"]


def reset(root: Path) -> None:
    """Remove the targets of the last run (each run starts from nothing done) and doit's state file."""
    for f in (root / "out").iterdir():
        f.unlink()
    for f in root.glob(".doit.db*"):
        f.unlink()
