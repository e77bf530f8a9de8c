"""Where loading a big job goes: YAML parsing, the data, pydantic, the task checks (issue #22).

Writes a layered job of N no-op tasks (each depending on the task 100 before it) and times, in a fresh
interpreter each, medians of --rounds:

- parse: libyaml's events alone (``yaml.parse``), the least any reading of the file costs;
- read: the file read into data (``read_yaml``), so "data" = read - parse; the line marks of its keys and
  items are made only if an error message needs one (``yamlfile.LazyMarks``);
- validate: the job-definition models (pydantic) on that data;
- load: all of ``load_jobdef`` (read, substitution, validation), the issue's "load and validate";
- set-up: ``flowmancer -n -qq`` to the end (also imports, collection, each task's parameters checked by its
  class, the dependency graph, the plan printed), and its peak RSS.

    python benchmarks/loadtime.py [--tasks 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bytecode_env, tasks_module

NOOP = "from flowmancer.task import Task, task\n\n@task\nclass Noop(Task):\n    def run(self):\n        pass\n"

PHASES = r"""
import gc, json, sys, time
from pathlib import Path
import yaml
from flowmancer.jobdef.load import load_jobdef
from flowmancer.jobdef.models import JobDefinition
from flowmancer.jobdef.yamlfile import read_yaml
path = Path(sys.argv[1])
text = path.read_text()
gc.disable()  # as load_jobdef runs
out = {}
t = time.perf_counter()
for _ in yaml.parse(text, Loader=yaml.CSafeLoader):
    pass
out["parse"] = time.perf_counter() - t
t = time.perf_counter()
data, marks, dollars = read_yaml(path, [])
out["read"] = time.perf_counter() - t
t = time.perf_counter()
JobDefinition.model_validate(data)
out["validate"] = time.perf_counter() - t
del data, marks
gc.enable()
t = time.perf_counter()
load_jobdef(path, path.parent)
out["load"] = time.perf_counter() - t
print(json.dumps(out))
"""


def write_job(root: Path, n: int, width: int = 100) -> Path:
    tasks_module(root, "noop", NOOP)
    job = root / "job.yaml"
    with job.open("w") as f:
        f.write("config:\n  name: big\ntasks:\n")
        for i in range(n):
            f.write(f"  t{i}:\n    task: Noop\n")
            if i >= width:
                f.write(f"    dependencies: [t{i - width}]\n")
    return job


def measure(n: int, rounds: int, work: Path) -> dict[str, float]:
    """Medians (seconds; ``setup_rss_mib`` in MiB) of each phase for an ``n``-task layered job."""
    env = bytecode_env()
    root = Path(tempfile.mkdtemp(dir=work))
    job = write_job(root, n)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", PHASES, str(job)], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        for k, v in json.loads(done.stdout).items():
            samples.setdefault(k, []).append(v)
        t = time.perf_counter()
        setup = subprocess.run(
            [sys.executable, "-c", RSS_SETUP, str(job)], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        samples.setdefault("setup", []).append(time.perf_counter() - t)
        kib = float(setup.stderr.split("BENCH_MAXRSS_KB")[1].split()[0])
        samples.setdefault("setup_rss_mib", []).append(kib / 1024)
    return {k: statistics.median(v) for k, v in samples.items()}


# `flowmancer -n -qq` in this process, reporting its peak RSS at exit
RSS_SETUP = r"""
import atexit, resource, sys
atexit.register(lambda: print("BENCH_MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))
sys.argv = ["flowmancer", "-j", sys.argv[1], "-n", "-qq"]
from flowmancer.cli import main
main()
"""


def report(n: int, m: dict[str, float]) -> str:
    return (
        f"{n:,}-task job: load and validate {m['load']:.2f} s = YAML events {m['parse']:.2f} s + data "
        f"{m['read'] - m['parse']:.2f} s + pydantic {m['validate']:.2f} s (+ substitution and the rest "
        f"{max(0.0, m['load'] - m['read'] - m['validate']):.2f} s); `-n` from launch to exit {m['setup']:.2f} s, "
        f"peak RSS {m['setup_rss_mib']:.0f} MiB"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(report(args.tasks, measure(args.tasks, args.rounds, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
