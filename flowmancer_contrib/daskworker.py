"""The worker side of the Dask executor: ``run_attempt`` runs on a Dask worker, starts the task process (from
the worker's fork server, ``daskfork``) and relays its events to the parent while it runs."""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import threading
from typing import Any, Optional

from flowmancer import messages, output


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
    code: Optional[str] = None,
) -> dict[str, Any]:
    """On a Dask worker: start the task process, relay its events to the parent, return its exit code."""
    from multiprocessing.connection import Connection, wait

    from distributed import Event, get_client, get_worker

    from flowmancer.pipes import PipeWriter
    from flowmancer.process import fork_child
    from flowmancer.worker import child_main
    from flowmancer_contrib import daskfork
    from flowmancer_contrib.daskcode import IMPORT_LOCK, use_code

    worker = get_worker()
    with IMPORT_LOCK:
        use_code(worker, code)
        try:
            obj: Any = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or str(exc)
            raise RuntimeError(
                f"worker {worker.address} cannot import the task module '{module}': no module named '{missing}'"
                + (
                    ""
                    if missing.split(".")[0] == module.split(".")[0]
                    else f"; install '{missing.split('.')[0]}' in the workers' environment (the cluster image)"
                )
            ) from None
        for part in qualname.split("."):
            obj = getattr(obj, part)
        task = obj.model_validate(params)
        daskfork.prepare(code)  # with sys.path as this code's
    event_r, event_w = os.pipe()
    conn = Connection(event_r, writable=False)  # PipeWriter's framing is a Connection's
    readers, (out_w, err_w) = output.pipes()
    workdir = rootdir if os.path.isdir(rootdir) else None
    try:
        proc: Any = daskfork.start(code, (task, info, workdir, memory_limit_mb), snapshot, (event_w, out_w, err_w))
        if proc is None:  # fork here after all (Dask's worker processes are daemonic: multiprocessing would refuse)

            def target(*args: Any) -> int:
                _die_with_parent()
                return child_main(*args)

            args = (PipeWriter(event_w), out_w, err_w, task, info, snapshot, workdir, memory_limit_mb)
            proc = fork_child(target, args, (event_w, out_w, err_w))
    finally:
        os.close(event_w)
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
        if events:  # pickled, as a local task's events are: Dask's messages take msgpack types only
            worker.log_event(topic, {"key": key, "events": pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL)})
            batches += 1
        if done:
            break
    stop.set()
    for r in readers:
        r.close()
    conn.close()
    exitcode = proc.join()
    proc.close()  # its pidfd
    return {"exitcode": exitcode, "batches": batches}


def warm(code: Optional[str], dask_worker: Any) -> None:
    """Start the worker's fork server for ``code`` ahead of its first task (``Client.run`` at the run's start)."""
    from flowmancer_contrib import daskfork
    from flowmancer_contrib.daskcode import IMPORT_LOCK, use_code

    with IMPORT_LOCK:
        use_code(dask_worker, code)
        daskfork.prepare(code)


def _die_with_parent() -> None:
    """Linux: the task process gets SIGKILL if its worker dies, instead of running on orphaned."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
