"""What incremental runs cost and save, on a 1,000-task layered job (10 layers of 100, each task after one of
the layer above, each writing a shared_dict value and reading an input file).

Two ratios (targets of the incremental issue), medians of alternating rounds:

1. deciding: ``--explain`` (every task's fingerprint against the record) against ``--dry-run`` of the same
   job (target <= 1.5x);
2. a fully up-to-date ``--incremental`` run against running every task (target <= 0.3x).

    python benchmarks/incremental.py [--tasks 1000] [--rounds 3]

Bytecode is compiled first and PYTHONDONTWRITEBYTECODE is dropped, as in run.py.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bytecode_env, tasks_module

HERE = Path(__file__).resolve().parent

TASKS = """
from flowmancer.task import Task, task


@task
class Step(Task):
    i: int = 0

    def run(self):
        self.shared_dict[f"v{self.i}"] = self.i * 2
"""


def job(n: int) -> str:
    width = max(1, n // 10)
    lines = ["config: {name: incr}", "tasks:"]
    for i in range(n):
        deps = f", dependencies: [t{i - width}]" if i >= width else ""
        lines.append(f"  t{i}: {{task: Step, parameters: {{i: {i}}}, inputs: [data/in{i % 10}.txt]{deps}}}")
    return "\n".join(lines) + "\n"


def timed(args: list[str], root: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-qq", *args],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = bytecode_env()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        root = Path(tmp)
        tasks_module(root, "steps", TASKS)
        (root / "data").mkdir()
        for i in range(10):
            (root / "data" / f"in{i}.txt").write_text(f"input {i}\n" * 1000)
        (root / "job.yaml").write_text(job(args.tasks))
        timed(["--incremental"], root, env)  # the record, and warm caches
        dry, explain, full, uptodate = [], [], [], []
        for _ in range(args.rounds):
            dry.append(timed(["--dry-run"], root, env))
            explain.append(timed(["--explain"], root, env))
            full.append(timed(["--no-incremental"], root, env))
            uptodate.append(timed(["--incremental"], root, env))
        d, e = statistics.median(dry), statistics.median(explain)
        f, u = statistics.median(full), statistics.median(uptodate)
        print(f"{args.tasks} tasks, medians of {args.rounds}:")
        print(f"  deciding: --dry-run {d:.2f} s, --explain {e:.2f} s = {e / d:.2f}x (target <= 1.5x)")
        print(f"  running: every task {f:.2f} s, all up to date {u:.2f} s = {u / f:.2f}x (target <= 0.3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
