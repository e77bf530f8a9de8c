"""Issue #22's unmet targets measured on ``floor_io.py --spec``: the least any runner meeting Flowmancer's
specification must do (see ``floor_io.py``). Where even that is over a target's limit, the target cannot be
met here by Flowmancer as specified, whatever its code.

Paired runs (each repeat runs every contender once, in turn) of ours, the floor, ``floor_io.py``,
``floor_io.py --spec`` and, when their venvs exist (``run.py --peers``, ``.venv-original``), Luigi and the
original, on the shapes of the targets; then the first-task delays of the floor, ``floor_io`` and ``--spec``.

    python benchmarks/spec_bound.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import peers
import run

SHAPES = ("1 task", "100 independent", "chain of 30", "1,000 independent")
#: (shape, against, limit): the wall-time ratio targets of issue #22 that depend on a peer
RATIO_TARGETS = [
    ("1 task", "luigi", 1.0),
    ("chain of 30", "luigi", 0.7),
    ("1 task", "original", 0.25),
    ("100 independent", "original", 0.25),
    ("chain of 30", "original", 0.25),
    ("1,000 independent", "original", 0.2),
]
#: (shape, limit): per task (in the chain: the hop) against the floor's
PER_TASK_TARGETS = [("100 independent", 1.15), ("1,000 independent", 1.15), ("chain of 30", 1.05)]


def measure_shape(name: str, repeats: int, work: Path, pythons: dict[str, str]) -> dict[str, list[run.Sample]]:
    shape = next(s for s in run.SHAPES if s.name == name)
    root = run.make_project(Path(tempfile.mkdtemp(dir=work)), shape)
    py = sys.executable
    cmds = {
        "ours": [py, "-m", "flowmancer", "-j", "job.yaml", "-qq"],
        "floor": [py, "floor.py", "job.yaml"],
        "floor_io": [py, "floor_io.py", "job.yaml", "floor-io-logs"],
        "spec": [py, "floor_io.py", "job.yaml", "floor-io-logs", "--spec"],
    }
    if "luigi" in pythons and shape.peer:
        peers.write_project(root, "luigi")
        cmds["luigi"] = peers.command("luigi", pythons["luigi"])
    if "original" in pythons:
        cmds["original"] = [pythons["original"], "main.py", "-j", "job.yaml"]
    env = {"BENCH_N": str(shape.n), "BENCH_SHAPE": shape.peer or ""}
    out: dict[str, list[run.Sample]] = {k: [] for k in cmds}
    for _ in range(min(repeats, 3) if shape.n >= 1000 else repeats):  # the original takes ~10 s there
        for who, cmd in cmds.items():
            if who == "luigi":
                peers.reset(root)
            out[who].append(run.measure(cmd, root, 300, env))
    return out


def first_task_delays(work: Path, repeats: int) -> dict[str, float]:
    stamp = run.Shape("stamp", 1, "config:\n  name: bench\ntasks:\n  t0: {task: Stamp}\n")
    root = run.make_project(Path(tempfile.mkdtemp(dir=work)), stamp)
    py = sys.executable
    cmds = {
        "floor": [py, "floor.py", "job.yaml"],
        "floor_io": [py, "floor_io.py", "job.yaml", "floor-io-logs"],
        "spec": [py, "floor_io.py", "job.yaml", "floor-io-logs", "--spec"],
        "ours": [py, "-m", "flowmancer", "-j", "job.yaml", "-qq"],
    }
    delays: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeats):
        for who, cmd in cmds.items():
            launched = time.time()
            subprocess.run(cmd, cwd=root, capture_output=True, timeout=60)
            delays[who].append(float((root / "stamp.txt").read_text()) - launched)
    return {k: statistics.median(v) for k, v in delays.items()}


def verdict(value: Optional[float], limit: float) -> str:
    return "-" if value is None else ("possible" if value <= limit else "impossible here")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    run.precompile()
    pythons = {p: str(run.HERE / f".venv-{p}" / "bin" / "python") for p in ("luigi", "original")}
    pythons = {p: py for p, py in pythons.items() if Path(py).exists()}
    work = run.HERE / ".work"
    work.mkdir(exist_ok=True)
    walls: dict[str, dict[str, float]] = {}
    per_task: dict[str, dict[str, float]] = {}
    for name in SHAPES:
        print(f"- {name} ...", flush=True)
        samples = measure_shape(name, args.repeats, work, pythons)
        walls[name] = {k: statistics.median(s.wall for s in v) for k, v in samples.items()}
        per_task[name] = {
            k: statistics.median(s.per_task for s in v if s.per_task) for k, v in samples.items() if v[0].per_task
        }
        print("  wall: " + ", ".join(f"{k} {v:.3f}s" for k, v in walls[name].items()), flush=True)
    start = first_task_delays(work, args.repeats)
    print("\n| target | limit | ours | floor_io | floor_io --spec | by --spec |\n|---|---|---|---|---|---|")
    for name, peer, limit in RATIO_TARGETS:
        w = walls[name]
        if peer in w:
            r = {k: w[k] / w[peer] for k in ("ours", "floor_io", "spec")}
            print(
                f"| ours / {peer}, {name} | <= {limit:.2f}x | {r['ours']:.3f}x | {r['floor_io']:.3f}x | "
                f"{r['spec']:.3f}x | {verdict(r['spec'], limit)} |"
            )
    for name, limit in PER_TASK_TARGETS:
        p = per_task[name]
        r = {k: p[k] / p["floor"] for k in ("ours", "floor_io", "spec")}
        what = "chain hop / floor's hop" if name.startswith("chain") else f"per task / floor, {name}"
        print(
            f"| {what} | <= {limit:.2f}x | {r['ours']:.3f}x | {r['floor_io']:.3f}x | {r['spec']:.3f}x | "
            f"{verdict(r['spec'], limit)} |"
        )
    gap = {k: (start[k] - start["floor"]) * 1000 for k in ("ours", "floor_io", "spec")}
    print(
        f"| start-up: first task after the floor's | <= 30 ms | {gap['ours']:.0f} ms | {gap['floor_io']:.0f} ms | "
        f"{gap['spec']:.0f} ms | {verdict(gap['spec'], 30)} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
