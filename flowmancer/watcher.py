"""The scheduler's epoll set: which handle watches which waitable, kept in line with what each one wants.

A wake-up costs O(ready), not O(running): the set is persistent, and each ready descriptor maps to the
handles that watch it. A waitable may be shared by several handles (a fork server's socket, while they wait
for its answer): it is registered once and wakes them all.
"""

from __future__ import annotations

import selectors
from typing import Any, Optional

from .executor import TaskHandle
from .job import TaskRun


class Watcher:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        #: watched fd -> {id(handle): (waitable, task, handle)}
        self.by_fd: dict[int, dict[int, tuple[Any, TaskRun, TaskHandle]]] = {}
        self.registered: dict[int, dict[Any, int]] = {}  # id(handle) -> its watched waitables -> their fd
        self.waiting: dict[int, tuple[TaskRun, TaskHandle]] = {}  # handles whose waitables may change unseen

    def add(self, handle: TaskHandle) -> None:
        self.registered[id(handle)] = {}

    def knows(self, handle: TaskHandle) -> bool:
        return id(handle) in self.registered

    def watch(self, task: TaskRun, handle: TaskHandle) -> None:
        """Bring the epoll set in line with what ``handle`` wants watched now."""
        mine = self.registered[id(handle)]
        live = handle.waitables()
        for w in [w for w in mine if w not in live]:
            self.unwatch(handle, w)
        for w in live:
            if w not in mine:
                fd = w if isinstance(w, int) else w.fileno()
                watchers = self.by_fd.get(fd)
                if watchers is None:
                    self.selector.register(fd, selectors.EVENT_READ)
                    watchers = self.by_fd[fd] = {}
                watchers[id(handle)] = (w, task, handle)
                mine[w] = fd
        waiting = getattr(handle, "waiting", None)  # optional for a handle not made from TaskHandle
        if waiting is not None and waiting():
            self.waiting[id(handle)] = (task, handle)
        else:
            self.waiting.pop(id(handle), None)

    def unwatch(self, handle: TaskHandle, w: Any) -> None:
        """Stop watching ``w``, then let the handle close it (in that order: see ``TaskHandle.release``)."""
        fd = self.registered[id(handle)].pop(w)
        watchers = self.by_fd[fd]
        del watchers[id(handle)]
        if not watchers:
            self.selector.unregister(fd)
            del self.by_fd[fd]
        release = getattr(handle, "release", None)
        if release is not None:
            release(w)

    def forget(self, handle: TaskHandle) -> None:
        """The attempt is over: stop watching (and release) everything of ``handle``."""
        for w in list(self.registered[id(handle)]):
            self.unwatch(handle, w)
        del self.registered[id(handle)]
        self.waiting.pop(id(handle), None)

    def select(
        self, timeout: Optional[float], skip: int
    ) -> tuple[set[Any], dict[int, tuple[TaskRun, TaskHandle]], bool]:
        """Wait; return the ready waitables, the handles they wake, and whether ``skip`` (a descriptor of the
        caller's own: the signal pipe) was ready."""
        ready: set[Any] = set()
        handles: dict[int, tuple[TaskRun, TaskHandle]] = {}
        own = False
        for key, _ in self.selector.select(timeout):
            if key.fd == skip:
                own = True
                continue
            for w, task, handle in self.by_fd[key.fd].values():
                ready.add(w)
                handles[id(handle)] = (task, handle)
        return ready, handles, own


def fd_budget() -> int:
    """How many tasks may run at once before file descriptors run out (each takes about 5: its event pipe, two
    output pipes, its sentinel, a spare), after raising
    the soft limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):
                pass
        limit = soft if soft != resource.RLIM_INFINITY else 65536
    except ImportError:  # not on POSIX
        limit = 2048
    return max(1, (limit - 64) // 5)
