"""What does the live view cost a run? (issue #24: 50 clients and one that never reads, "within noise")

The 1,000-task shape (a gate task, then 999 that print a line and end), in four modes, alternating:
``off`` (no ``--ui``), ``on`` (``--ui``, nobody looking), ``watched`` (``--ui`` with 50 clients reading
``/api/events`` and one that connected and never reads), and ``off again`` (a second run without the view:
its ratio to ``off`` is the noise). The gate holds the 999 until every client is connected; the time
measured is from opening the gate to the runner's exit. Prints each round, the medians, and each mode's
paired ratio to ``off`` (same round). Bytecode is compiled first (see ``common``).

    python benchmarks/ui_overhead.py [--rounds 9] [--tasks 1000] [--clients 50]
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bytecode_env, tasks_module

TASKS = """
import os, time
from flowmancer.task import Task, task

@task
class Gate(Task):
    def run(self):
        while not os.path.exists("go"):
            time.sleep(0.001)

@task
class Small(Task):
    def run(self):
        print("did", self.task_info.name)
"""


def job(n: int) -> str:
    return "tasks:\n  gate: {task: Gate}\n" + "".join(
        f"  t{i}: {{task: Small, dependencies: [gate]}}\n" for i in range(n - 1)
    )


class Clients:
    """``n`` clients reading the event stream (one thread, all sockets), and one that never reads."""

    def __init__(self, port: int, n: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks = []
        request = f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.stuck = socket.socket()
        self.stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.stuck.connect(("127.0.0.1", port))
        self.stuck.sendall(request)
        self.received = 0

    def pump(self, timeout: float) -> None:
        """Read (and drop) what the server sent."""
        for key, _ in self.sel.select(timeout):
            try:
                data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            self.received += len(data)
            if not data:
                self.sel.unregister(key.fileobj)

    def close(self) -> None:
        for s in [*self.socks, self.stuck]:
            s.close()


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helper_of(pid: int) -> int:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return next(int(k) for k in kids if b"flowmancer.ui.server" in Path(f"/proc/{k}/cmdline").read_bytes())


def once(root: Path, mode: str, clients: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds from opening the gate to the runner's exit; CPU seconds the view's server and the reading
    clients used meanwhile."""
    (root / "go").unlink(missing_ok=True)
    args = [sys.executable, "-m", "flowmancer", "-j", "job.yaml"]
    if not mode.startswith("off"):
        args.append("--ui")
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    port = 0
    for line in proc.stdout:
        m = re.search(r"live view: http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
        if line.startswith("root:") and mode.startswith("off") or port:
            break
    group = Clients(port, clients) if mode == "watched" else None
    time.sleep(0.3)  # the gate task is running; the clients' first bytes (the job) have arrived
    helper = helper_of(proc.pid) if port else 0
    server_cpu = server_start = cpu_of(helper) if helper else 0.0
    client_start = time.process_time()
    start = time.perf_counter()
    (root / "go").write_text("x")
    while proc.poll() is None:
        if group is not None:
            group.pump(0.02)
        else:
            time.sleep(0.02)
        try:
            server_cpu = cpu_of(helper) if helper else 0.0
        except OSError:  # it has ended
            pass
    took = time.perf_counter() - start
    client_cpu = time.process_time() - client_start if group else 0.0
    proc.communicate()
    if group is not None:
        group.close()
    assert proc.returncode == 0, f"{mode}: exit {proc.returncode}"
    return took, server_cpu - server_start, client_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    opts = ap.parse_args()
    env = bytecode_env()
    modes = ("off", "on", "watched", "off again")
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tasks_module(root, "ui_bench", TASKS)
        (root / "job.yaml").write_text(job(opts.tasks))
        once(root, "on", 1, env)  # warm the page cache
        for r in range(opts.rounds):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]  # each mode first in turn
            row = {}
            for mode in order:
                took, server, clients = once(root, mode, opts.clients, env)
                times[mode].append(took)
                cpu[mode].append((server, clients))
                row[mode] = took
            print(f"round {r + 1}: " + ", ".join(f"{m} {row[m]:.3f} s" for m in modes), flush=True)
    print(f"\n{opts.tasks} tasks, {opts.rounds} rounds (medians):")
    for mode in modes:
        ratios = [times[mode][i] / times["off"][i] for i in range(opts.rounds)]
        server = statistics.median(s for s, _ in cpu[mode]) * 1000
        clients = statistics.median(c for _, c in cpu[mode]) * 1000
        print(
            f"  {mode:9} {statistics.median(times[mode]):.3f} s  paired ratio to off: median "
            f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
            + (f"; CPU: the view's server {server:.0f} ms, the clients {clients:.0f} ms" if mode != "off" else "")
        )


if __name__ == "__main__":
    main()
