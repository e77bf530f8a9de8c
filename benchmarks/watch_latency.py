"""How long after a save does `flowmancer --watch` start the rerun? (target: <= 0.5 s)

Measures, for N saves of the job YAML, the time from the write to the rerun's header line (the new
process is up and has loaded the job). Prints each sample and the median and maximum.

    python benchmarks/watch_latency.py [--saves 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TASKS = "from flowmancer.task import Task, task\n\n@task\nclass Noop(Task):\n    def run(self):\n        pass\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saves", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "tasks").mkdir()
        (root / "tasks" / "t.py").write_text(TASKS)
        job = root / "job.yaml"
        job.write_text("tasks:\n  a: {task: Noop}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowmancer", "--watch", "-j", str(job)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        headers: list[float] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("flowmancer ") and "· job" in line:
                    headers.append(time.perf_counter())
            done.set()

        threading.Thread(target=read, daemon=True).start()
        samples = []
        try:
            while not headers:
                time.sleep(0.01)
            time.sleep(0.5)
            for i in range(args.saves):
                before = len(headers)
                t0 = time.perf_counter()
                job.write_text(f"tasks:\n  a: {{task: Noop}}\n# save {i}\n")
                while len(headers) == before:
                    if time.perf_counter() - t0 > 10:
                        raise SystemExit("no rerun within 10 s")
                    time.sleep(0.002)
                samples.append(headers[-1] - t0)
                print(f"save {i + 1:>2}: rerun started after {samples[-1] * 1000:6.0f} ms", flush=True)
                time.sleep(0.4)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(20)
    med, worst = statistics.median(samples), max(samples)
    verdict = "OK" if med <= 0.5 else "SLOWER THAN TARGET"
    print(f"median {med * 1000:.0f} ms, max {worst * 1000:.0f} ms (target <= 500 ms): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
