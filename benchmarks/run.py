"""Flowmancer's speed and memory benchmark (a tool, not a test).

    python benchmarks/run.py                  # all shapes, medians, ratios
    python benchmarks/run.py --quick          # fewer repeats, no 10,000-task shapes
    python benchmarks/run.py --write          # also write benchmarks/RESULTS.md
    python benchmarks/run.py --dir PATH       # generate the projects there (default benchmarks/.work)
    python benchmarks/run.py --original-venv benchmarks/.venv-original   # compare with flowmancer 0.12.4
      (make it once: python -m venv benchmarks/.venv-original &&
                     benchmarks/.venv-original/bin/pip install flowmancer==0.12.4)

For each shape it generates a project of no-op tasks and runs it several times as a whole process
(`python -m flowmancer -j job.yaml -qq`, logging and checkpointing on), measuring wall time, CPU time
(user+sys, the whole process tree) and the runner's own peak RSS. The floor is a minimal script that
imports the same task module and forks one child per task, respecting the same dependencies and
concurrency limit, and waits. Each no-op task appends its start time to a file, so "per task" is the time
from the first task's start to the last one's over the tasks (start-up and shut-down excluded; in a chain,
the hop). Ratios: ours / floor per task, and ours / original in wall time. ``floor_io.py`` is the floor
plus the I/O any runner that logs and checkpoints does per task (output pipes read into a log file per
task, a result pipe, a journal line): ``floor+I/O vs floor`` is that I/O's cost here, a lower bound for
the per-task targets.

Flowmancer's own modules are byte-compiled first, as ``pip install`` does: a development checkout (an
editable install, or ``PYTHONDONTWRITEBYTECODE=1``) would otherwise compile them at every start (~60 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import loadtime
import peers
import targets
import watch_latency

HERE = Path(__file__).resolve().parent

#: Where the generated projects go: each run makes a run-* folder there and removes it when it ends (only
#: then: see below), and touches nothing else. Why a folder of our own, not /tmp, and why no project is
#: removed sooner: ext4 skips inodes freed in the last minute or so when it creates a file, scanning past
#: each one. Right after a test suite or a CI run had deleted its temporary files, creating a file in /tmp
#: took 220-400 us here instead of 16-22 us, and every task writes a log file: that measured the folder,
#: not the runner (it slowed flowmancer and the original alike). Deleting one shape's projects (thousands
#: of log files) before the next shape ran did the same to the later shapes.
DEFAULT_WORK = HERE / ".work"
#: the line in RESULTS.md after which ``--write`` keeps what is there (the hand-written notes)
GENERATED_END = "<!-- measured part above: written by run.py --write; notes below: by hand -->"

TASKS = textwrap.dedent(
    """
    import os
    import time
    from flowmancer.task import Task, task

    STAMPS = os.environ.get("BENCH_STAMPS")

    @task
    class Noop(Task):
        def run(self):
            if STAMPS:  # when each task started: per-task cost without the start-up (same for every runner)
                fd = os.open(STAMPS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(fd, ("%r\\n" % time.time()).encode())
                os.close(fd)

    @task
    class Stamp(Task):
        def run(self):
            with open("stamp.txt", "w") as f:
                f.write(repr(time.time()))

    @task
    class Sleep(Task):
        seconds: float = 0.5

        def run(self):
            time.sleep(self.seconds)
    """
)

# The floor: import the same task module, then fork one child per task with the same dependencies and
# concurrency; the child runs the task and _exits. No pipes, no logging, no checkpoint.
FLOOR = textwrap.dedent(
    """
    import os, sys, yaml
    sys.path.insert(0, os.getcwd())
    import tasks.noop as mod
    job = yaml.safe_load(open(sys.argv[1]))
    limit = (job.get("config") or {}).get("max_concurrency") or 0
    tasks = job["tasks"]
    waiting = {n: len(t.get("dependencies") or []) for n, t in tasks.items()}
    dependents = {n: [] for n in tasks}
    for n, t in tasks.items():
        for d in t.get("dependencies") or []:
            dependents[d].append(n)
    ready = [n for n, c in waiting.items() if c == 0]
    running = {}
    while ready or running:
        while ready and (limit <= 0 or len(running) < limit):
            n = ready.pop()
            t = tasks[n]
            pid = os.fork()
            if pid == 0:
                getattr(mod, t["task"])(**(t.get("parameters") or {})).run()
                os._exit(0)
            running[pid] = n
        pid, _ = os.wait()
        for d in dependents[running.pop(pid)]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    """
)

ORIGINAL_MAIN = "import sys\nfrom flowmancer import Flowmancer\nsys.exit(Flowmancer().start())\n"
# The README's way to run a job from your own script (the original project's documented driver), for ours.
DRIVER = 'from flowmancer import Flowmancer\n\nif __name__ == "__main__":\n    raise SystemExit(Flowmancer().start())\n'

# Runs a command as this process and reports its own peak RSS at exit (children are not counted).
RSS_WRAPPER = textwrap.dedent(
    """
    import atexit, resource, runpy, sys
    def report():
        print("BENCH_MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    atexit.register(report)
    kind, target, *rest = sys.argv[1:]
    sys.argv = [target, *rest]
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target, run_name="__main__")
    """
)


@dataclass
class Shape:
    name: str
    n: int
    yaml: str
    repeats: int = 5
    big: bool = False
    original: bool = True
    ideal: Optional[float] = None  # wall time with zero overhead, when the tasks themselves take time
    peer: Optional[str] = None  # "independent" or "chain": the same shape for Luigi and doit (--peers)
    alone: bool = False  # ours only (the 100,000-task shapes: their target is against our own 10,000)


def independent(n: int, task: str = "Noop", limit: int = 0, params: str = "") -> str:
    cfg = f"config:\n  name: bench\n  max_concurrency: {limit}\n"
    p = f", parameters: {{{params}}}" if params else ""
    return cfg + "tasks:\n" + "".join(f"  t{i}: {{task: {task}{p}}}\n" for i in range(n))


def chain(n: int) -> str:
    body = "  t0: {task: Noop}\n" + "".join(f"  t{i}: {{task: Noop, dependencies: [t{i - 1}]}}\n" for i in range(1, n))
    return "config:\n  name: bench\ntasks:\n" + body


def fan(width: int, limit: int) -> str:
    mids = "".join(f"  m{i}: {{task: Noop, dependencies: [src]}}\n" for i in range(width))
    deps = ", ".join(f"m{i}" for i in range(width))
    return (
        f"config:\n  name: bench\n  max_concurrency: {limit}\ntasks:\n  src: {{task: Noop}}\n{mids}"
        f"  sink: {{task: Noop, dependencies: [{deps}]}}\n"
    )


def layered(n: int, width: int) -> str:
    lines = []
    for i in range(n):
        layer, pos = divmod(i, width)
        if layer == 0:
            lines.append(f"  t{i}: {{task: Noop}}\n")
        else:
            deps = [f"t{(layer - 1) * width + (pos + k) % width}" for k in (0, 1)]
            lines.append(f"  t{i}: {{task: Noop, dependencies: [{', '.join(deps)}]}}\n")
    return "config:\n  name: bench\n  max_concurrency: 8\ntasks:\n" + "".join(lines)


SHAPES = [
    Shape("1 task", 1, independent(1), peer="independent"),
    Shape("100 independent", 100, independent(100), peer="independent"),
    Shape("chain of 30", 30, chain(30), peer="chain", repeats=11),  # its hop is a small difference: more pairs
    Shape("fan 1->200->1, mc 8", 202, fan(200, 8)),
    Shape("20 x sleep 0.5 s, mc 4", 20, independent(20, "Sleep", 4, "seconds: 0.5"), repeats=3, ideal=2.5),
    Shape("1,000 independent", 1000, independent(1000), repeats=3),
    Shape("10,000 independent", 10000, independent(10000), repeats=1, big=True, original=False),
    Shape("10,000 layered DAG", 10000, layered(10000, 100), repeats=1, big=True, original=False),
    Shape("100,000 independent", 100000, independent(100000), repeats=1, big=True, original=False, alone=True),
    Shape("100,000 layered DAG", 100000, layered(100000, 100), repeats=1, big=True, original=False, alone=True),
]


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    ok: bool
    per_task: Optional[float] = None  # (last task start - first task start) / (tasks - 1)


@dataclass
class Result:
    shape: Shape
    runs: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, who: str, what: str) -> Optional[float]:
        samples = [getattr(s, what) for s in self.runs.get(who, []) if s.ok and getattr(s, what) is not None]
        return statistics.median(samples) if samples else None


def measure(cmd: list[str], cwd: Path, timeout: float, extra_env: Optional[dict[str, str]] = None) -> Sample:
    stamps = cwd / "stamps.txt"
    stamps.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_STAMPS": str(stamps), **(extra_env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
        ok = proc.returncode == 0
        err = proc.stderr
    except subprocess.TimeoutExpired:
        return Sample(timeout, 0.0, 0.0, False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = next((int(ln.split()[1]) / 1024 for ln in err.splitlines() if ln.startswith("BENCH_MAXRSS_KB")), 0.0)
    if not ok:
        print(f"    failed: {cmd}\n{err[-2000:]}", file=sys.stderr)
    starts = sorted(float(x) for x in stamps.read_text().split()) if stamps.exists() else []
    per_task = (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 1 else None
    return Sample(wall, cpu, rss, ok, per_task)


def make_project(root: Path, shape: Shape) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "noop.py").write_text(TASKS)
    (root / "job.yaml").write_text(shape.yaml)
    (root / "floor.py").write_text(FLOOR)
    shutil.copy(HERE / "floor_io.py", root / "floor_io.py")
    (root / "main.py").write_text(ORIGINAL_MAIN)
    (root / "driver.py").write_text(DRIVER)
    (root / "rss.py").write_text(RSS_WRAPPER)
    return root


def run_shape(
    shape: Shape,
    original_python: Optional[str],
    repeats: int,
    work: Path,
    peer_pythons: Optional[dict[str, str]] = None,
) -> Result:
    """Run ``shape`` ``repeats`` times for each contender, in turn, in a project under ``work``. The project
    stays until the whole run ends (see ``DEFAULT_WORK``)."""
    res = Result(shape)
    root = make_project(Path(tempfile.mkdtemp(dir=work)), shape)
    py = sys.executable
    cmds = {
        "ours": [py, "rss.py", "module", "flowmancer", "-j", "job.yaml", "-qq"],
        "driver": [py, "rss.py", "path", "driver.py", "-j", "job.yaml", "-qq"],
        "floor": [py, "rss.py", "path", "floor.py", "job.yaml"],
        "floor+io": [py, "rss.py", "path", "floor_io.py", "job.yaml", "floor-io-logs"],
    }
    if shape.alone:
        cmds = {"ours": cmds["ours"]}
    if original_python and shape.original and not shape.alone:
        cmds["original"] = [original_python, "rss.py", "path", "main.py", "-j", "job.yaml"]
    peer_env = {"BENCH_N": str(shape.n), "BENCH_SHAPE": shape.peer or ""}
    if shape.peer:
        for peer, python in (peer_pythons or {}).items():
            peers.write_project(root, peer)
            cmds[peer] = peers.command(peer, python)
    for _ in range(repeats):  # paired: each repeat runs every contender once, in turn
        for who, cmd in cmds.items():
            timeout = 600 if who != "original" else 300
            if who in peers.VERSIONS:
                peers.reset(root)
            res.runs.setdefault(who, []).append(measure(cmd, root, timeout, peer_env))
    return res


def startup(work: Path) -> dict[str, float]:
    """Wall time of doing nothing (`flowmancer --version`, `python -c pass`), and how long after the
    interpreter is launched the task of a 1-task job starts running (ours and the floor's)."""
    py = sys.executable
    out = {}
    for who, cmd in {
        "ours --version": [py, "-m", "flowmancer", "--version"],
        "python -c pass": [py, "-c", "pass"],
    }.items():
        out[who] = statistics.median(measure(cmd, HERE, 30).wall for _ in range(7))
    stamp = Shape("stamp", 1, "config:\n  name: bench\ntasks:\n  t0: {task: Stamp}\n")
    root = make_project(Path(tempfile.mkdtemp(dir=work)), stamp)
    for who, cmd in {
        "ours first task": [py, "-m", "flowmancer", "-j", "job.yaml", "-qq"],
        "floor first task": [py, "floor.py", "job.yaml"],
        "floor+io first task": [py, "floor_io.py", "job.yaml", "floor-io-logs"],
    }.items():
        delays = []
        for _ in range(7):
            launched = time.time()
            subprocess.run(cmd, cwd=root, capture_output=True, timeout=60)
            delays.append(float((root / "stamp.txt").read_text()) - launched)
        out[who] = statistics.median(delays)
    return out


def fmt(x: Optional[float], unit: str = "s", digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}{unit}" if unit != "MiB" else f"{x:.0f} MiB"


def table(results: list[Result]) -> list[str]:
    """Per task: the time from the first task's start to the last one's, over the tasks (so start-up and
    shut-down do not count), for us and for the fork floor alike."""
    head = (
        "| shape | tasks | ours wall | floor wall | original wall | ours CPU | ours peak RSS | ours per task "
        "| floor per task | per task vs floor | floor+I/O per task | floor+I/O vs floor | ours vs floor+I/O "
        "| driver wall | driver vs CLI | vs original |"
    )
    lines = [head, "|" + "---|" * 16]
    for r in results:
        ours, floor, orig = r.median("ours", "wall"), r.median("floor", "wall"), r.median("original", "wall")
        pt_ours, pt_floor = r.median("ours", "per_task"), r.median("floor", "per_task")
        ratio = f"{pt_ours / pt_floor:.2f}x" if pt_ours and pt_floor else "-"
        pt_io = r.median("floor+io", "per_task")
        io_floor = f"{pt_io / pt_floor:.2f}x" if pt_io and pt_floor else "-"
        ours_io = f"{pt_ours / pt_io:.2f}x" if pt_ours and pt_io else "-"
        vs_orig = f"{ours / orig:.2f}x" if ours and orig else "-"
        driver = r.median("driver", "wall")
        vs_cli = f"{driver / ours:.2f}x" if driver and ours else "-"
        lines.append(
            f"| {r.shape.name} | {r.shape.n} | {fmt(ours)} | {fmt(floor)} | {fmt(orig)} | "
            f"{fmt(r.median('ours', 'cpu'))} | {fmt(r.median('ours', 'rss_mb'), 'MiB')} | "
            f"{'-' if pt_ours is None else f'{pt_ours * 1000:.2f} ms'} | "
            f"{'-' if pt_floor is None else f'{pt_floor * 1000:.2f} ms'} | {ratio} | "
            f"{'-' if pt_io is None else f'{pt_io * 1000:.2f} ms'} | {io_floor} | {ours_io} | "
            f"{fmt(driver)} | {vs_cli} | "
            f"{vs_orig} |"
        )
    return lines


def peer_table(results: list[Result]) -> list[str]:
    """Wall time against Luigi and doit (``--peers``), on the shapes they run."""
    lines = ["| shape | ours (CLI) | driver | Luigi 3.8 | doit 0.37 | ours vs Luigi | ours vs doit |", "|" + "---|" * 7]
    for r in results:
        if not r.shape.peer or not any(p in r.runs for p in peers.VERSIONS):
            continue
        ours, drv, lu, do = (r.median(w, "wall") for w in ("ours", "driver", "luigi", "doit"))
        lines.append(
            f"| {r.shape.name} | {fmt(ours)} | {fmt(drv)} | {fmt(lu)} | {fmt(do)} | "
            f"{f'{ours / lu:.2f}x' if ours and lu else '-'} | {f'{ours / do:.2f}x' if ours and do else '-'} |"
        )
    return lines if len(lines) > 2 else []


def precompile() -> None:
    """Byte-compile the flowmancer packages being measured, as an installed wheel is."""
    import compileall
    import importlib.util

    for name in ("flowmancer", "flowmancer_contrib"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the 10,000-task shapes")
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    ap.add_argument("--original-venv", default=str(HERE / ".venv-original"), help="a venv with flowmancer==0.12.4")
    ap.add_argument("--only", action="append", default=[], help="run shapes whose name contains this")
    ap.add_argument("--peers", action="store_true", help="also run Luigi and doit (side venvs, made once with pip)")
    ap.add_argument(
        "--no-extras",
        action="store_true",
        help="skip the 100,000-task load phases and the --watch latency (the shapes and start-up only)",
    )
    ap.add_argument(
        "--dir",
        default=str(DEFAULT_WORK),
        help="folder for the generated projects, in a run-* folder removed at the end (default: benchmarks/.work)",
    )
    args = ap.parse_args()
    orig = Path(args.original_venv) / "bin" / "python"
    original_python = str(orig) if orig.exists() else None
    if not original_python:
        print(f"(no original flowmancer: {orig} missing; see --help to create it)")
    precompile()
    peer_pythons = {}
    if args.peers:
        peer_pythons = {p: py for p in peers.VERSIONS if (py := peers.venv_python(p)) is not None}
    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob("run-*"):  # left by an interrupted run; nothing else in --dir is ever touched
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    results = []
    for shape in SHAPES:
        if args.quick and shape.big or (args.only and not any(o in shape.name for o in args.only)):
            continue
        repeats = max(1, shape.repeats // 2) if args.quick else shape.repeats
        print(f"- {shape.name} x{repeats} ...", flush=True)
        results.append(run_shape(shape, original_python, repeats, work, peer_pythons))
        print("  " + table(results[-1:])[-1], flush=True)
    start = startup(work)
    extra = {
        "startup_gap_ms": (start["ours first task"] - start["floor first task"]) * 1000,
        "startup_bound_ms": (start["floor+io first task"] - start["floor first task"]) * 1000,
    }
    notes = []
    if not args.no_extras and not args.only:
        print("- loading a 100,000-task job ...", flush=True)
        phases = loadtime.measure(100_000, 1 if args.quick else 3, work)
        extra["load"] = phases["load"]
        notes.append(loadtime.report(100_000, phases))
        print("- --watch: save -> rerun ...", flush=True)
        _, first = watch_latency.measure(5 if args.quick else 10, 2.0, verbose=False)
        extra["watch_ms"] = statistics.median(first) * 1000
        notes.append(
            f"--watch: a save -> the rerun's first task: median {extra['watch_ms']:.0f} ms, "
            f"max {max(first) * 1000:.0f} ms"
        )
    shutil.rmtree(work, ignore_errors=True)
    lines = table(results)
    if peer_table(results):
        lines += ["", *peer_table(results)]
    lines.append("")
    lines.append(
        f"start-up: `flowmancer --version` {start['ours --version'] * 1000:.0f} ms; "
        f"`python -c pass` {start['python -c pass'] * 1000:.0f} ms; the task of a 1-task job starts "
        f"{start['ours first task'] * 1000:.0f} ms after the interpreter is launched (the floor's: "
        f"{start['floor first task'] * 1000:.0f} ms; `floor_io.py`'s: {start['floor+io first task'] * 1000:.0f} ms) "
        "(medians of 7)"
    )
    lines += [f"\n{n}" for n in notes]
    by_name = {r.shape.name: r for r in results}

    def median(shape: str, who: str, what: str) -> Optional[float]:
        return by_name[shape].median(who, what) if shape in by_name else None

    lines += ["", "Issue #22's targets:", "", *targets.table(targets.rows(median, extra))]
    if targets.bounds(median):
        lines += ["", "Against `floor_io.py` (the floor plus what any runner must do):", "", *targets.bounds(median)]
        lines += ["", *targets.bound_rows(median, extra)]
    print("\n".join(lines))
    if args.write:
        header = [
            "# Benchmark results",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}. Date: {dt.date.today().isoformat()}.",
            "Command: `python benchmarks/run.py --write` (medians of paired runs; see `run.py` for the shapes).",
            "",
        ]
        out = HERE / "RESULTS.md"
        # Only the measured part is replaced: the notes after the marker (targets, what each change
        # bought) are written by hand and kept.
        notes = out.read_text().partition(GENERATED_END)[2] if out.exists() else ""
        out.write_text("\n".join(header + lines) + f"\n\n{GENERATED_END}{notes or chr(10)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
