"""A lean process that forks the task processes (used by the ``spawn`` plugin on Linux for bigger jobs).

Why: ``fork()`` costs in proportion to what the forking process has mapped, and every child then pays
copy-on-write faults on it. The scheduler carries pluggy, PyYAML, the job model, the plugins and a
``TaskRun`` per task; a fresh interpreter that has imported only the task modules forks about twice as
fast, and its children copy less. The scheduler starts it at the first spawn, forks tasks itself until
it is ready, and falls back to forking itself for anything it cannot hand over (a task class it could not
import, parameters pickle cannot take) or when it dies.

Protocol: length-prefixed records over a Unix stream socket pair (a datagram socket's queue holds only
``net.unix.max_dgram_qlen`` messages, often 10, which would serialise the two processes). File
descriptors ride with the record that needs them and, arriving in order, are taken in order.

- scheduler -> server: ``b"I"`` + pickled init (``sys.path``, the modules to import), then spawn requests
  ``b"F" + id + pickled arguments`` carrying three file descriptors (the task's event pipe and its
  stdout and stderr pipes, write ends), each preceded when needed by ``b"D"`` + the changes to ``shared_dict`` since the
  last request (the server keeps a replica, which children see by fork: no copy of it per task).
  Requests are pipelined: the scheduler keeps working while the server forks. ``b"P"`` (prepare) is a spawn
  request with a fourth descriptor, the read end of a go pipe: the child sets itself up, then waits on it for
  the changes to ``shared_dict`` since and ``b"G"`` (``prepared``); closed without them, it exits.
- server -> scheduler: ``b"R" + pickled {module: file}`` once ready; ``b"S" + id + pid`` carrying the
  child's pidfd (the scheduler's sentinel, opened by the server before the child can be reaped);
  ``b"X" + pid + exit code`` after reaping it.
"""

from .channel import PIPELINE
from .client import ForkServer, ServedChild, ServerGone, prestart, take_early

__all__ = ["PIPELINE", "ForkServer", "ServedChild", "ServerGone", "prestart", "take_early"]
