"""Run tasks on a Dask distributed cluster: ``--executor dask`` (``pip install flowmancer[dask]``).

The scheduler loop, dependencies, ``max_concurrency``, retries, timeouts, checkpoints and loggers all stay in
the parent. Each attempt is one Dask task whose function, on the worker, forks the same task process as a
local run (``flowmancer.worker.child_main``: the lifecycle, ``on_abort``, output capture are identical) and
relays its events to the parent with Dask's structured events (``Worker.log_event`` /
``Client.subscribe_topic``) while it runs. Stopping an attempt (Ctrl-C, a timeout) sets a Dask ``Event`` the
relay watches; it then sends SIGTERM to the task process, which runs ``on_abort``.

The project's code is shipped: before the first task, the app root's modules that the run imported (task,
logger and extension modules, ``flowmancerconf.py`` files, the helpers they import) are zipped, keyed by the
digest of their sources, and registered as a worker plugin (``ShipCode``) that stores the archive on every
worker, including workers that join later; a project that did not change is not sent again. A worker never
needs the project folder. Installed packages (``extension_packages``, libraries) are the workers'
environment's: a missing one fails the task with an error naming it and the worker.

Events from the worker travel pickled (as a local task's do), so any ``shared_dict`` value that works locally
works here.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import threading
import uuid
from collections import deque
from typing import Any, Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowmancer import hookimpl, messages
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
        help="Dask scheduler address (tcp://host:8786), implies --executor dask; without one a cluster is started",
    )
    g.add_argument(
        "--dask-cluster",
        metavar="CLASS",
        help="the cluster class to start, by import path (dask_jobqueue.SLURMCluster; default "
        "distributed.LocalCluster); its arguments, scale and adapt come from config.dask",
    )


class DaskAdapt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minimum: int = Field(0, ge=0)
    maximum: int = Field(..., ge=1)


class DaskConfig(BaseModel):
    """``config.dask``: where the job's tasks run on Dask."""

    model_config = ConfigDict(extra="forbid")
    address: Optional[str] = Field(None, description="a running scheduler (tcp://host:8786)")
    cluster: Optional[str] = Field(
        None, description="a cluster class by import path: distributed.LocalCluster, dask_jobqueue.SLURMCluster, ..."
    )
    kwargs: Dict[str, Any] = Field(default_factory=dict, description="the cluster class's keyword arguments")
    scale: Optional[int] = Field(None, ge=0, description="ask the cluster for this many workers")
    adapt: Optional[DaskAdapt] = Field(None, description="let the cluster scale between minimum and maximum workers")

    @model_validator(mode="after")
    def _one_way(self) -> DaskConfig:
        if self.address and (self.cluster or self.kwargs or self.scale is not None or self.adapt):
            raise ValueError("give either address (a running scheduler) or a cluster to start, not both")
        if self.scale is not None and self.adapt is not None:
            raise ValueError("give scale or adapt, not both")
        return self


@hookimpl
def flowmancer_addconfig(schema: Any) -> None:
    schema.add("executor", str, "process", help="process (default) or dask")
    schema.add("scheduler_address", Optional[str], None, help="Dask scheduler address (tcp://host:8786)")
    schema.add("dask", Optional[DaskConfig], None, help="the Dask cluster: address, or cluster/kwargs/scale/adapt")


def _wanted(config: Config) -> tuple[bool, Optional[str]]:
    """Whether the job runs on Dask, and at which scheduler. An address implies the Dask executor; asking for
    the local one along with an address is refused rather than silently running locally."""
    job = config.job
    cfg = job.jobdef.model.config if job is not None else None
    dask_cfg: Optional[DaskConfig] = getattr(cfg, "dask", None)
    address = (
        config.getoption("dask_scheduler")
        or getattr(cfg, "scheduler_address", None)
        or (dask_cfg.address if dask_cfg is not None else None)
    )
    chosen = config.getoption("executor")
    if chosen is None and cfg is not None and "executor" in cfg.model_fields_set:
        chosen = getattr(cfg, "executor", None)
    asked = address or dask_cfg is not None or config.getoption("dask_cluster")
    executor = chosen or ("dask" if asked else "process")
    if chosen == "process" and address:
        raise UsageError(
            f"a Dask scheduler ({address}) is given but the executor is 'process': drop one of them "
            "(an address alone implies --executor dask)"
        )
    return executor == "dask", address


# -- parent side ------------------------------------------------------------------------------------


class _Cluster:
    """The client, the LocalCluster if we started one, and the events arriving from workers."""

    def __init__(self, config: Config, address: Optional[str]) -> None:
        from distributed import Client, LocalCluster

        self.cluster: Any = None
        self.elastic = False  # workers come and go (scale, adapt): what they offer is not known up front
        job = config.job
        dask_cfg: Optional[DaskConfig] = getattr(job.jobdef.model.config, "dask", None) if job is not None else None
        try:
            if address:
                self.client = Client(address, timeout="10s")
            else:
                import logging  # here: this plugin is loaded by every run, Dask by few

                import dask

                # A lost worker must fail the attempt so that Flowmancer's retry policy decides, not Dask.
                dask.config.set({"distributed.scheduler.allowed-failures": 0})
                path = config.getoption("dask_cluster") or (dask_cfg.cluster if dask_cfg else None)
                kwargs = dict(dask_cfg.kwargs) if dask_cfg else {}
                if path:
                    from .daskcluster import start_cluster

                    self.cluster = start_cluster(path, kwargs)
                else:
                    defaults = {
                        "processes": True,
                        "threads_per_worker": 1,
                        "dashboard_address": None,
                        "silence_logs": logging.CRITICAL,
                    }
                    self.cluster = LocalCluster(**{**defaults, **kwargs})
                if dask_cfg is not None and dask_cfg.scale is not None:
                    self.cluster.scale(dask_cfg.scale)
                    self.elastic = True
                elif dask_cfg is not None and dask_cfg.adapt is not None:
                    self.cluster.adapt(minimum=dask_cfg.adapt.minimum, maximum=dask_cfg.adapt.maximum)
                    self.elastic = True
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"cannot reach the Dask scheduler at {address}: {exc}; start one with `dask scheduler` "
                "or drop --dask-scheduler to use a local cluster"
            ) from None
        self.topic = f"flowmancer-{uuid.uuid4().hex}"
        self.handles: dict[str, DaskHandle] = {}
        self.client.subscribe_topic(self.topic, self._on_event)
        from .daskcode import ship_code  # imports distributed: only for a run on Dask

        self.code = ship_code(self.client, str(config.rootdir))
        from .daskworker import warm

        try:  # the workers' fork servers import pydantic while the run starts (workers that join later: lazily)
            self.client.run(warm, self.code)
        except Exception:  # noqa: BLE001 - a worker that cannot: its first task starts its server
            pass

    def _on_event(self, event: Any) -> None:  # runs on the client's thread
        _, msg = event
        handle = self.handles.get(msg.get("key", ""))
        if handle is not None:
            try:
                events = pickle.loads(msg["events"])
            except Exception as exc:  # noqa: BLE001 - a value the runner cannot unpickle fails that task only
                events = [messages.unreadable(f"{type(exc).__name__}: {exc}")]
            handle.deliver(events)

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

        from .daskworker import run_attempt

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
        self.reported = False  # the task process sent its result
        self.abort_event = Event(f"abort-{self.key}", client=cluster.client)
        cluster.handles[self.key] = self
        cls = task.cls
        self.future = cluster.client.submit(
            run_attempt,  # by reference: flowmancer_contrib.daskworker, imported on the worker
            self.key,
            cluster.topic,
            cls.__module__,
            cls.__qualname__,
            task.instance.model_dump(mode="python"),
            task.info(job.name),
            dict(job.shared_dict),
            str(job.config.rootdir),
            task.settings.memory_limit_mb,
            cluster.code,
            key=self.key,
            pure=False,
            resources=dict(task.definition.resources) or None,
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
            if any(ev["event"] == "finished" for ev in events):
                self.reported = True
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
        if not self.reported:
            # Not once the task reported: its Dask task is ending by itself, and cancelling a future whose result
            # is being gathered makes the client ask for it again, which runs the attempt a second time.
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
        from .daskcluster import check_resources

        cluster = job.config.stash[STASH_KEY] = _Cluster(job.config, address)
        check_resources(cluster.client, cluster.elastic, job)


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
