"""How fast does a task's output reach its log, and does the scheduler stay responsive meanwhile?

Two numbers (targets of the logging issue):

1. A task printing N lines (default 1,000,000), run by flowmancer with the default file logger, against
   the same loop printing to /dev/null in a plain interpreter: the ratio (target <= 3x), and whether the
   log holds every line (nothing lost).
2. While that task floods its log, a chain of short tasks runs beside it: the median time from one of them
   ending to the next one starting (the scheduler settling results), against the same chain alone.

    python benchmarks/log_throughput.py [--lines 1000000] [--chain 20]

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
import os
import time
from flowmancer.task import Task, task

STAMPS = os.environ.get("BENCH_STAMPS")


@task
class Flood(Task):
    lines: int = 1000000

    def run(self):
        for i in range(self.lines):
            print(f"line {i}")


@task
class Step(Task):
    def run(self):
        if STAMPS:
            fd = os.open(STAMPS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, ("%r\\n" % time.time()).encode())
            os.close(fd)
"""

PLAIN = "import sys\nfor i in range({n}):\n    print(f'line {{i}}')\n"


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def chain_hops(root: Path, env: dict[str, str], jobdef: str) -> float:
    stamps = root / "stamps.txt"
    stamps.unlink(missing_ok=True)
    run([sys.executable, "-m", "flowmancer", "-j", jobdef, "-qq"], root, {**env, "BENCH_STAMPS": str(stamps)})
    times = sorted(float(x) for x in stamps.read_text().split())
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = bytecode_env()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        root = Path(tmp)
        tasks_module(root, "t", TASKS)
        (root / "flood.yaml").write_text(
            f"config: {{name: flood}}\ntasks:\n  flood: {{task: Flood, parameters: {{lines: {args.lines}}}}}\n"
        )
        flood = f"  flood: {{task: Flood, parameters: {{lines: {args.lines}}}}}\n"
        steps = "".join(
            f"  s{i}: {{task: Step{f', dependencies: [s{i - 1}]' if i else ''}}}\n" for i in range(args.chain)
        )
        (root / "flood.yaml").write_text(f"config: {{name: flood}}\ntasks:\n{flood}")
        (root / "chain.yaml").write_text(f"config: {{name: chain}}\ntasks:\n{steps}")
        (root / "both.yaml").write_text(f"config: {{name: both}}\ntasks:\n{flood}{steps}")

        plains, ours, alone, flooded = [], [], [], []
        for _ in range(args.rounds):  # alternating, medians: this machine is noisy
            plains.append(run([sys.executable, "-c", PLAIN.format(n=args.lines)], root, env))
            ours.append(run([sys.executable, "-m", "flowmancer", "-j", "flood.yaml", "-qq"], root, env))
            log = max((root / "logs").iterdir()) / "flood.log"
            with log.open("rb") as f:
                logged = sum(1 for _ in f)
            if logged != args.lines:
                print(f"LINES MISSING: {logged:,} of {args.lines:,} in the log")
                return 1
            alone.append(chain_hops(root, env, "chain.yaml"))
            flooded.append(chain_hops(root, env, "both.yaml"))
        plain, flow = statistics.median(plains), statistics.median(ours)
        print(f"{args.lines:,} lines, median of {args.rounds}: /dev/null {plain:.2f} s, flowmancer {flow:.2f} s")
        print(f"  = {flow / plain:.2f}x, every line in the log")
        hop, hop_flood = statistics.median(alone) * 1e3, statistics.median(flooded) * 1e3
        print(f"chain of {args.chain}: median hop {hop:.1f} ms alone, {hop_flood:.1f} ms beside the flood")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
