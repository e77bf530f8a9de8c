"""The fork server process: imports the task modules once, then forks task processes in batches on request."""

from __future__ import annotations

import _signal  # see worker: the C functions, without the enum conversions that copy pages in a child
import array
import gc
import os
import pickle
import selectors
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, Optional

from ..lifeline import close_ranges, closing_ranges, kill_and_wait, kill_group, open_fds, opened_since
from .channel import EXITED, FDS_PER_TASK, ID, MAX_FDS, PIPELINE, SPAWNED, Channel

if TYPE_CHECKING:
    from ..taskio import SharedDict
    from ..worker import Attempt


def serve(fd: int) -> None:
    """Main loop of the server process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler coordinates Ctrl-C and SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (children get SIGTERM blocked, not ignored: see _fork)
    chan = Channel(socket.socket(fileno=fd))
    import faulthandler
    from importlib import import_module

    from ..taskio import SharedDict
    from ..worker import Attempt  # noqa: F401 - pydantic and the task machinery: the bulk of the start-up, done now

    faulthandler.enable(file=sys.__stderr__ or 2, all_threads=False)  # fd 2: each child's stderr pipe, once forked
    init = _first(chan)
    if init is None:
        return
    for _ in range(init["hold"]):  # the run's lock: left open (never closed) until this process exits
        chan.fds.popleft()
    sys.path[:] = init["path"]
    if init.get("siblings"):
        from ..collect import add_sibling_names

        add_sibling_names(init["siblings"], checked=True)
    os.environ.clear()  # the scheduler's environment when its first task started, as a fork of it would have
    os.environ.update(init["env"])

    loaded: dict[str, Optional[str]] = {}
    before = open_fds()
    for name in init["modules"]:
        try:
            loaded[name] = getattr(import_module(name), "__file__", None)
        except BaseException:  # noqa: BLE001 - the scheduler forks that module's tasks itself
            pass
    module_fds = opened_since(before)  # files the task modules opened: their task processes keep them
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock = chan.sock
    gc.freeze()  # children never scan (and so never copy-on-write) what the server imported
    _reply(sock, b"R" + pickle.dumps(loaded))
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    shared = SharedDict({}, None)  # the replica of job.shared_dict (changed through .data: see SharedDict)
    children: set[int] = set()
    files: dict[Optional[str], tuple[Any, ...]] = {}  # app root -> its modules' files (worker.module_files)
    try:
        while _serve_once(chan, sel, wake_r, shared, module_fds, children, files):
            pass
    except _SchedulerGone:
        pass
    _kill_children(children)  # the scheduler is done, or died: no task of its run may live on


def _serve_once(
    chan: Channel,
    sel: selectors.BaseSelector,
    wake_r: int,
    shared: SharedDict,
    module_fds: tuple[int, ...],
    children: set[int],
    files: dict[Optional[str], tuple[Any, ...]],
) -> bool:
    """Handle one wake-up: requests from the scheduler, children that ended. ``False`` once it is gone."""
    sock = chan.sock
    for key, _ in sel.select():
        if key.fd == wake_r:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            continue
        if not _fill(chan):
            return False
        try:  # a read stops after a message carrying fds (each request): take all that is there
            while len(chan.fds) < FDS_PER_TASK * PIPELINE and chan.fill(socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass
        batch: list[_Request] = []
        for rec in chan.records():
            if rec[:1] == b"D":
                _fork(sock, batch, module_fds, children)  # those children see shared_dict as it was before
                _apply(shared, rec)
                continue
            fds = chan.fds
            event_w, out_w, err_w = fds.popleft(), fds.popleft(), fds.popleft()
            go = fds.popleft() if rec[:1] == b"P" else None
            batch.append(_Request(rec, event_w, out_w, err_w, shared, files, go))
        _fork(sock, batch, module_fds, children)
    _reap(sock, children)
    return True


def _apply(shared: SharedDict, rec: bytes) -> None:
    """Apply a ``b"D"`` record (what changed in ``shared_dict``) to a replica."""
    cleared, changed, deleted = pickle.loads(rec[1:])
    if cleared:
        shared.data.clear()
    shared.data.update(changed)
    for k in deleted:
        shared.data.pop(k, None)


class _SchedulerGone(Exception):
    """Writing to the scheduler failed: it is gone."""


def _fill(chan: Channel) -> bool:
    """Read what the scheduler sent; ``False`` once it is gone (its end of the socket closed, or broken)."""
    try:
        return chan.fill()
    except OSError:
        return False


def _kill_children(children: set[int]) -> None:
    """The scheduler is gone: kill every task process still here, with its group, and reap them."""
    pidfds = {}
    for pid in children:
        try:
            pidfds[pid] = os.pidfd_open(pid)
        except OSError:
            pass
    kill_and_wait(pidfds)
    for pid in children:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _first(chan: Channel) -> Optional[dict[str, Any]]:
    """The init record (the scheduler sends nothing else before the server is ready)."""
    while True:
        records = chan.records()
        if records:
            return pickle.loads(records[0][1:])  # type: ignore[no-any-return]
        if not chan.fill():
            return None


def _reply(sock: socket.socket, record: bytes, fds: tuple[int, ...] = ()) -> None:
    _reply_framed(sock, Channel.frame(record), fds)


def _reply_framed(sock: socket.socket, data: bytes, fds: tuple[int, ...] = ()) -> None:
    """Send framed records; ``fds`` ride with the first byte, so the reader files them with the first record."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        sent = sock.sendmsg([data], anc)  # a signal can cut a stream write short: send the rest
        if sent < len(data):
            sock.sendall(data[sent:])
    except OSError as exc:
        raise _SchedulerGone() from exc


class _Request:
    """One spawn request, made ready to fork: its ``Attempt`` is built here, not in the child (see ``Attempt``)."""

    def __init__(
        self,
        rec: bytes,
        event_w: int,
        out_w: int,
        err_w: int,
        shared: SharedDict,
        files: dict[Optional[str], tuple[Any, ...]],
        go: Optional[int] = None,
    ) -> None:
        from ..pipes import PipeWriter
        from ..worker import Attempt, module_files

        (self.req,) = ID.unpack_from(rec, 1)
        self.fds: tuple[int, ...] = (event_w, out_w, err_w) if go is None else (event_w, out_w, err_w, go)
        self.go = go
        self.shared = shared
        self.attempt: Optional[Attempt] = None
        self.workdir: Optional[str] = None
        try:
            instance, info, self.workdir, memory_limit_mb = pickle.loads(rec[1 + ID.size :])
            if self.workdir not in files:
                files[self.workdir] = module_files(self.workdir) if self.workdir else ()
            held = files[self.workdir]
            self.attempt = Attempt(PipeWriter(event_w), instance, info, shared, memory_limit_mb, held)
        except BaseException:  # noqa: BLE001 - the child exits without a result: the scheduler reports a crash
            pass


def _fork(sock: socket.socket, batch: list[_Request], module_fds: tuple[int, ...], children: set[int]) -> None:
    """Fork every request of ``batch`` back to back, then answer them all. A child keeps its own pipes and
    ``module_fds`` (what the task modules opened), none of the server's descriptors nor other requests' pipes.

    Why in batches: after a fork, the server's own pages are shared with the child, so each page the server
    writes next is copied (~200 pages per request when it prepared and answered one request between two
    forks). Preparing a batch first and forking it in a tight loop copies those pages once per batch."""
    if not batch:
        return
    pids: list[int] = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # see spawn.block_sigterm
    try:
        keep = [closing_ranges(r.fds + module_fds) for r in batch]  # made now: a child allocates nothing for it
        for r, ranges in zip(batch, keep, strict=True):
            pid = os.fork()
            if pid == 0:
                _child(r, ranges)
            pids.append(pid)
            children.add(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    answers: list[tuple[bytes, int]] = []
    try:
        for r, pid in zip(batch, pids, strict=False):
            try:
                os.setpgid(pid, pid)  # as the child does: no window in which a group signal misses it
            except OSError:
                pass
            answers.append((Channel.frame(b"S" + SPAWNED.pack(r.req, pid)), os.pidfd_open(pid)))  # before any reaping
            for f in r.fds:
                os.close(f)
        for i in range(0, len(answers), MAX_FDS):  # the scheduler takes at most MAX_FDS per read
            chunk = answers[i : i + MAX_FDS]
            _reply_framed(sock, b"".join(a[0] for a in chunk), tuple(a[1] for a in chunk))
    finally:
        for _, pidfd in answers:
            os.close(pidfd)
    batch.clear()
    _reap(sock, children)


def _reap(sock: socket.socket, children: set[int]) -> None:
    """Reap the task processes that ended, each after killing what it left in its group (see ``lifeline``)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or not info.si_pid:
            return
        pid = info.si_pid
        kill_group(pid)  # a zombie still holds its group's id: the signal cannot reach a recycled group
        _, status = os.waitpid(pid, 0)
        children.discard(pid)
        _reply(sock, b"X" + EXITED.pack(pid, os.waitstatus_to_exitcode(status)))


def _child(r: _Request, ranges: tuple[tuple[int, int], ...]) -> None:
    code = 1
    try:
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # the task's own subprocesses need the default
        close_ranges(ranges)
        if r.attempt is not None:
            r.attempt.setup(r.fds[1], r.fds[2], r.workdir, faulthandler_on=True)
            if r.go is not None and not _told_to_go(r.go, r.shared):
                code = 0  # not needed after all: gone without a word
                return
            code = r.attempt.execute()
    finally:
        os._exit(code)


def _told_to_go(fd: int, shared: SharedDict) -> bool:
    """A prepared task process waits here: the scheduler writes the changes to ``shared_dict`` made since
    the request (``b"D"`` records), then ``b"G"``, and closes the pipe; closed without ``b"G"``, the task is
    not to run here."""
    data = bytearray()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    records = Channel.split(data)
    if not records or records[-1] != b"G":
        return False
    for rec in records[:-1]:
        _apply(shared, rec)
    return True
