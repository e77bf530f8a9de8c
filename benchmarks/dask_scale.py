"""Flowmancer on Dask at scale: per-task cost against plain Dask and against the local executor.

On one 2-worker LocalCluster (processes, one thread each), started once and shared by every side:

- plain Dask: ``client.submit`` of a function that forks a process and waits for it (what one Flowmancer
  attempt does on a worker), for N independent tasks, and for a layered DAG (10 layers, each task after
  one task of the layer above, passed as a future);
- Flowmancer: the same shapes as a job, ``flowmancer --dask-scheduler ADDRESS -qq`` (a no-op task each);
- Flowmancer's local executor: the same jobs without Dask.

Per task = (time for N tasks - time for 1 task) / (N - 1), so start-up (the interpreter, imports, connecting)
is not counted. Target of the distributed issue: Flowmancer on Dask at most 2x plain Dask per task.

    python benchmarks/dask_scale.py [--tasks 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from common import bytecode_env, tasks_module

HERE = Path(__file__).resolve().parent

TASKS = """
from flowmancer.task import Task, task


@task
class Noop(Task):
    def run(self):
        pass
"""


def fork_noop(*_: Any) -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def jobdef(n: int, layered: bool) -> str:
    width = max(1, n // 10)
    lines = ["config: {name: scale}", "tasks:"]
    for i in range(n):
        deps = f", dependencies: [t{i - width}]" if layered and i >= width else ""
        lines.append(f"  t{i}: {{task: Noop{deps}}}")
    return "\n".join(lines) + "\n"


def plain(client: Any, n: int, layered: bool) -> float:
    t0 = time.perf_counter()
    width = max(1, n // 10)
    futures: list[Any] = []
    for i in range(n):
        dep = futures[i - width] if layered and i >= width else None
        futures.append(client.submit(fork_noop, dep, pure=False))
    client.gather(futures)
    return time.perf_counter() - t0


def flowmancer(root: Path, yaml: str, args: list[str], env: dict[str, str]) -> float:
    (root / "job.yaml").write_text(yaml)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-qq", "-p", "no:filelogger", *args],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def per_task(measure: Callable[[int], float], n: int, rounds: int) -> float:
    big = statistics.median(measure(n) for _ in range(rounds))
    one = statistics.median(measure(1) for _ in range(rounds))
    return (big - one) / (n - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = bytecode_env()
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": 0})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client, tempfile.TemporaryDirectory(dir=HERE) as tmp:
            root = Path(tmp)
            tasks_module(root, "noop", TASKS)
            address = cluster.scheduler_address
            n = args.tasks
            print(f"{n} tasks on a 2-worker LocalCluster, per task (ms), medians of {args.rounds}:")
            for shape, layered in (("independent", False), ("layered DAG", True)):
                p = per_task(lambda k: plain(client, k, layered), n, args.rounds)  # noqa: B023
                f = per_task(
                    lambda k: flowmancer(root, jobdef(k, layered), ["--dask-scheduler", address], env),  # noqa: B023
                    n,
                    args.rounds,
                )
                loc = per_task(lambda k: flowmancer(root, jobdef(k, layered), [], env), n, args.rounds)  # noqa: B023
                print(
                    f"  {shape:<12} plain Dask {p * 1e3:.2f}, flowmancer on Dask {f * 1e3:.2f} ({f / p:.2f}x plain), "
                    f"flowmancer local {loc * 1e3:.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
