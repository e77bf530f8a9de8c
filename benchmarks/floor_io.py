"""The fork floor plus what any runner with Flowmancer's defaults must do: a lower bound.

Copied into each benchmark project and run as ``python floor_io.py job.yaml LOGDIR`` (each run logs into a
new folder there, as Flowmancer makes a run folder). Like ``run.FLOOR`` it imports the task module once and
forks one child per task with the job's dependencies and concurrency. It also does what a job runner that
reports a bad job at its line, logs and checkpoints cannot do without: the job is validated with the
job-definition models (pydantic) before the first fork; each task's stdout and stderr are pipes the parent
reads into a log file per task, its result comes back over a third pipe, the parent waits on the pipes and a
pidfd in one ``select`` (no polling), and each completion is appended to a journal. Nothing else: no line
marks, no plugins, no retries, no framing, no check of the task classes. ``floor_io / floor`` is what that
costs here; ``ours / floor_io`` what Flowmancer costs beyond it.

``--spec`` (after the two arguments) adds the least of what Flowmancer's specification asks of any runner
meeting it, each in its cheapest form: a command line (``argparse``); plugins (pluggy: a core emitting hooks,
plugins found through the ``flowmancer`` entry points) with one no-op plugin, called at the job's start and
end and four times per task (start, two state changes, finish); the run lock (two runs of one job never
share a checkpoint: ``flock``); and the guardian (task processes die with the runner, so a task never runs
twice): a forked process told each task's pid as it starts and ends. ``floor_io --spec`` is a lower bound for
Flowmancer as specified, not only for a runner with its defaults.
"""

import os
import resource
import selectors
import struct
import sys
import time

import yaml

SPEC = sys.argv[3:4] == ["--spec"]
if SPEC:
    import argparse
    import fcntl
    from importlib.metadata import distributions

    import pluggy

    cli = argparse.ArgumentParser(prog="floor_io")
    cli.add_argument("-j")
    cli.parse_args(["-j", sys.argv[1]])
    plugin_dists = [d for d in distributions() if "[flowmancer]" in (d.read_text("entry_points.txt") or "")]
    spec, impl = pluggy.HookspecMarker("floor"), pluggy.HookimplMarker("floor")

    class Specs:
        @spec
        def job_start(self, job): ...

        @spec
        def task_start(self, name): ...

        @spec
        def task_transition(self, name, state): ...

        @spec
        def task_finish(self, name): ...

        @spec
        def job_finish(self, job): ...

    class NoOp:  # every hook a no-op (an implementation may take fewer arguments than its specification)
        job_start = task_start = task_transition = task_finish = job_finish = impl(lambda self: None)

    pm = pluggy.PluginManager("floor")
    pm.add_hookspecs(Specs)
    pm.register(NoOp())
    hook = pm.hook

sys.path.insert(0, os.getcwd())
import tasks.noop as mod  # noqa: E402

job = yaml.safe_load(open(sys.argv[1]))
from flowmancer.jobdef.models import JobDefinition  # noqa: E402 - building it is part of what is measured

JobDefinition.model_validate(job)
logdir = os.path.join(sys.argv[2], str(time.time_ns()))
os.makedirs(logdir, exist_ok=True)
if SPEC:
    lock = open(os.path.join(sys.argv[2], "run.lock"), "a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    guard_r, guard_w = os.pipe()
    if os.fork() == 0:  # the guardian: reads the pids until the runner's end closes the pipe
        os.close(guard_w)
        while os.read(guard_r, 4096):
            pass
        os._exit(0)
    os.close(guard_r)
    hook.job_start(job=job)
limit = (job.get("config") or {}).get("max_concurrency") or 0
# Four descriptors per running task: at most as many tasks at once as the descriptor limit allows (ours too).
fd_cap = (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64) // 5
limit = min(limit, fd_cap) if limit > 0 else fd_cap
tasks = job["tasks"]
waiting = {n: len(t.get("dependencies") or []) for n, t in tasks.items()}
dependents: dict = {n: [] for n in tasks}
for n, t in tasks.items():
    for d in t.get("dependencies") or []:
        dependents[d].append(n)
ready = [n for n, c in waiting.items() if c == 0]
sel = selectors.DefaultSelector()
running: dict = {}
journal = open(os.path.join(logdir, "checkpoint.jsonl"), "a")
while ready or running:
    while ready and (limit <= 0 or len(running) < limit):
        n = ready.pop()
        t = tasks[n]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w, res_r):
                os.close(fd)
            getattr(mod, t["task"])(**(t.get("parameters") or {})).run()
            os.write(res_w, b"ok\n")
            os._exit(0)
        for fd in (out_w, err_w, res_w):
            os.close(fd)
        log = open(os.path.join(logdir, n + ".log"), "a")
        log.write(f"{n} started\n")
        log.flush()
        if SPEC:
            os.write(guard_w, b"+" + struct.pack("=i", pid))
            hook.task_start(name=n)
            hook.task_transition(name=n, state="RUNNING")
        state = {"name": n, "pid": pid, "open": 4, "log": log, "pidfd": os.pidfd_open(pid)}
        running[pid] = state
        for fd in (out_r, err_r, res_r, state["pidfd"]):
            sel.register(fd, selectors.EVENT_READ, state)
    for key, _ in sel.select():
        state, fd = key.data, key.fd
        if fd == state["pidfd"]:
            os.waitpid(state["pid"], 0)
            if SPEC:
                os.write(guard_w, b"-" + struct.pack("=i", state["pid"]))
        else:
            data = os.read(fd, 65536)
            if data:
                state["log"].write(data.decode())
                continue
        sel.unregister(fd)
        os.close(fd)
        state["open"] -= 1
        if state["open"] == 0:
            n = state["name"]
            state["log"].write(f"{n} completed\n")
            state["log"].close()
            del running[state["pid"]]
            journal.write(f'"{n}"\n')
            journal.flush()
            if SPEC:
                hook.task_transition(name=n, state="COMPLETED")
                hook.task_finish(name=n)
            for d in dependents[n]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    ready.append(d)
if SPEC:
    hook.job_finish(job=job)
