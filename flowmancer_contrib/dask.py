"""Run tasks on a Dask distributed cluster: ``--executor dask`` (``pip install flowmancer[dask]``).

The scheduler loop, dependencies, ``max_concurrency``, retries, timeouts, checkpoints and loggers all stay in
the parent. Each attempt is one Dask task whose function, on the worker, forks the same task process as a
local run (``flowmancer.worker.child_main``: the lifecycle, ``on_abort``, output capture are identical) and
relays its events to the parent with Dask's structured events (``Worker.log_event`` /
``Client.subscribe_topic``) while it runs. Stopping an attempt (Ctrl-C, a timeout) sets a Dask ``Event`` the
relay watches; it then sends SIGTERM to the task process, which runs ``on_abort``.

Task code is shipped by module name: the task modules (``./tasks`` and the rest) must be importable on the
workers. For a ``LocalCluster`` and for workers started from the app root this holds; elsewhere, install
the project or set ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading
import uuid
from collections import deque
from typing import Any, Optional

from flowmancer import hookimpl, messages, output
from flowmancer.config import Config
from flowmancer.errors import Problem, UsageError
from flowmancer.executor import TaskHandle
from flowmancer.stash import StashKey

STASH_KEY = StashKey["_Cluster"]("flowmancer_contrib.dask")
_seq = itertools.count()


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("dask executor (flowmancer[dask])")
    g.add_argument(
        "--executor",
        choices=("process", "dask"),
        default=None,
        help="where tasks run: local processes (default) or a Dask cluster",
    )
    g.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (tcp://host:8786); without one a LocalCluster is started",
    )


@hookimpl
def flowmancer_addconfig(schema: Any) -> None:
    schema.add("executor", str, "process", help="process (default) or dask")
    schema.add("scheduler_address", Optional[str], None, help="Dask scheduler address (tcp://host:8786)")


def _wanted(config: Config) -> tuple[bool, Optional[str]]:
    job = config.job
    cfg = job.jobdef.model.config if job is not None else None
    executor = config.getoption("executor") or (getattr(cfg, "executor", None) or "process")
    address = config.getoption("dask_scheduler") or getattr(cfg, "scheduler_address", None)
    return executor == "dask", address


# -- parent side ------------------------------------------------------------------------------------


class _Cluster:
    """The client, the LocalCluster if we started one, and the events arriving from workers."""

    def __init__(self, config: Config, address: Optional[str]) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        root = str(config.rootdir)
        # Workers import task modules by name: make the app root importable for those we start.
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            if address:
                self.client = Client(address, timeout="10s")
            else:
                import logging  # here: this plugin is loaded by every run, Dask by few

                import dask

                # A lost worker must fail the attempt so that Flowmancer's retry policy decides, not Dask.
                dask.config.set({"distributed.scheduler.allowed-failures": 0})
                self.cluster = LocalCluster(
                    processes=True,
                    threads_per_worker=1,
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                )
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"cannot reach the Dask scheduler at {address}: {exc}; start one with `dask scheduler` "
                "or drop --dask-scheduler to use a local cluster"
            ) from None
        self.topic = f"flowmancer-{uuid.uuid4().hex}"
        self.handles: dict[str, DaskHandle] = {}
        self.client.subscribe_topic(self.topic, self._on_event)

    def _on_event(self, event: Any) -> None:  # runs on the client's thread
        _, msg = event
        handle = self.handles.get(msg.get("key", ""))
        if handle is not None:
            handle.deliver(msg["events"])

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


class DaskHandle(TaskHandle):
    """A ``TaskHandle`` for one attempt running on a Dask worker."""

    def __init__(self, cluster: _Cluster, job: Any, task: Any) -> None:
        from distributed import Event

        self.cluster = cluster
        self.key = f"{task.name}-{task.attempt}-{next(_seq)}-{uuid.uuid4().hex[:8]}"
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self._events: deque[messages.Event] = deque()
        self._received = 0
        self._expected: Optional[int] = None
        self._exit: Optional[messages.ExitEvent] = None
        self._lock = threading.Lock()
        self._finished = False
        self.abort_event = Event(f"abort-{self.key}", client=cluster.client)
        cluster.handles[self.key] = self
        cls = task.cls
        self.future = cluster.client.submit(
            run_attempt,
            self.key,
            cluster.topic,
            cls.__module__,
            cls.__qualname__,
            task.instance.model_dump(mode="python"),
            task.info(job.name),
            dict(job.shared_dict),
            str(job.config.rootdir),
            task.settings.memory_limit_mb,
            key=self.key,
            pure=False,
        )
        self.future.add_done_callback(self._done)

    # client thread ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._lock:  # not after release() closed it: the number may belong to another file by then
            if self.w < 0:
                return
            try:
                os.write(self.w, b"!")
            except OSError:
                pass

    def deliver(self, events: list[messages.Event]) -> None:
        with self._lock:
            self._events.extend(events)
            self._received += 1
        self._wake()

    def _done(self, future: Any) -> None:
        try:
            published = future.result()
            exit_event = messages.exited(published["exitcode"])
            expected = published["batches"]
        except Exception as exc:  # noqa: BLE001 - the worker died or the task was cancelled
            lost = type(exc).__name__ in ("KilledWorker", "CommClosedError", "CancelledError", "FutureCancelledError")
            what = "the Dask worker running it was lost" if lost else "the Dask task failed"
            reason = f"{what} ({type(exc).__name__}: {exc})"
            exit_event = messages.exited(None, reason)
            expected = 0
        with self._lock:
            self._exit, self._expected = exit_event, expected
        self._wake()

    # scheduler thread -------------------------------------------------------------------------------

    def waitables(self) -> list[Any]:
        return [] if self._finished else [self.r]

    def read(self, ready: set[Any]) -> list[messages.Event]:
        try:
            while os.read(self.r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            out = list(self._events)
            self._events.clear()
            # The result can overtake the last events: wait until every published batch has arrived.
            done = self._exit is not None and (self._expected is None or self._received >= self._expected)
            if done:
                assert self._exit is not None
                if self._exit.get("reason"):
                    out.append(messages.crash(self._exit["reason"]))
                out.append(self._exit)
        if done:
            self.cluster.handles.pop(self.key, None)
            self._finished = True
        return out

    def release(self, waitable: Any) -> None:
        if waitable == self.r:
            with self._lock:
                os.close(self.r)
                os.close(self.w)
                self.r = self.w = -1

    def terminate(self) -> None:
        self.abort_event.set()

    def kill(self) -> None:
        self.abort_event.set()
        self.future.cancel()


@hookimpl(tryfirst=True)
def flowmancer_task_spawn(job: Any, task: Any) -> Optional[DaskHandle]:
    cluster = job.config.stash.get(STASH_KEY)
    if cluster is None:
        return None
    return DaskHandle(cluster, job, task)


@hookimpl(tryfirst=True)
def flowmancer_job_start(job: Any) -> None:
    use, address = _wanted(job.config)
    if use:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError("--executor dask needs Dask: pip install 'flowmancer[dask]'") from None
        job.config.stash[STASH_KEY] = _Cluster(job.config, address)


@hookimpl
def flowmancer_report_header(config: Config, job: Any) -> list[str]:
    cluster = config.stash.get(STASH_KEY)
    if cluster is None:
        return []
    address = getattr(cluster.client.scheduler, "address", "?")
    where = address if cluster.cluster is None else "a LocalCluster started for this run"
    return [f"executor: dask ({where}, {len(cluster.client.scheduler_info().get('workers', {}))} workers)"]


@hookimpl
def flowmancer_unconfigure(config: Config) -> None:
    cluster = config.stash.pop(STASH_KEY, None)
    if cluster is not None:
        cluster.close()


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: Any) -> list[Problem]:
    cfg = jobdef.model.config
    executor = config.getoption("executor") or getattr(cfg, "executor", "process")
    if executor not in ("process", "dask"):
        return [
            Problem(
                f"unknown executor '{executor}'", jobdef.location(("config", "executor")), hint="use process or dask"
            )
        ]
    return []


# -- worker side ------------------------------------------------------------------------------------


def run_attempt(
    key: str,
    topic: str,
    module: str,
    qualname: str,
    params: dict[str, Any],
    info: Any,
    snapshot: dict[str, Any],
    rootdir: str,
    memory_limit_mb: Optional[int],
) -> dict[str, Any]:
    """On a Dask worker: fork the task process, relay its events to the parent, return its exit code."""
    import importlib
    import multiprocessing
    from multiprocessing.connection import wait

    from distributed import Event, get_client, get_worker

    from flowmancer.process import fork_child
    from flowmancer.worker import child_main

    if os.path.isdir(rootdir) and rootdir not in sys.path:
        sys.path.insert(0, rootdir)
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    task = obj.model_validate(params)
    worker = get_worker()
    # Dask's worker processes are daemonic, so multiprocessing will not start children: fork directly.
    conn, child_conn = multiprocessing.Pipe(duplex=False)
    readers, (out_w, err_w) = output.pipes()
    workdir = rootdir if os.path.isdir(rootdir) else None

    def target(*args: Any) -> int:
        _die_with_parent()
        return child_main(*args)

    args = (child_conn, out_w, err_w, task, info, snapshot, workdir, memory_limit_mb)
    proc = fork_child(target, args, (child_conn.fileno(), out_w, err_w))
    child_conn.close()
    os.close(out_w)
    os.close(err_w)
    abort = Event(f"abort-{key}", client=get_client())  # usable from the watcher thread
    stop = threading.Event()

    def watch_abort() -> None:
        try:
            while not stop.is_set():
                if abort.wait(timeout=0.5):  # a Dask Event, waited on in slices so the thread can end
                    if proc.is_alive():
                        proc.terminate()
                    return
        except Exception:  # noqa: BLE001 - the cluster is shutting down: nothing left to abort
            return

    threading.Thread(target=watch_abort, daemon=True).start()
    batches = 0
    conn_open = True
    while True:
        ready: list[Any] = wait([proc.sentinel, *[r for r in readers if r.open]] + ([conn] if conn_open else []))
        done = proc.sentinel in ready
        events: list[messages.Event] = []
        for r in readers:  # written before what the event pipe says now
            if r.open and (done or r in ready):
                r.read(events, final=done)
        if conn in ready or done:
            try:
                while conn_open and conn.poll():
                    events.append(conn.recv())
            except (EOFError, OSError):
                conn_open = False
        if events:
            worker.log_event(topic, {"key": key, "events": events})
            batches += 1
        if done:
            break
    stop.set()
    for r in readers:
        r.close()
    return {"exitcode": proc.join(), "batches": batches}


def _die_with_parent() -> None:
    """Linux: the task process gets SIGKILL if its worker dies, instead of running on orphaned."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
