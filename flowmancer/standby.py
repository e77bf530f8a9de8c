"""``--watch``'s reruns: each a fresh interpreter, started before its turn and waiting, warm.

A rerun must be a new process (edited task code is really reloaded; nothing of the last run survives), but
a new interpreter spends most of its first half second importing flowmancer, pydantic and PyYAML. So the
watcher keeps one interpreter started ahead: it imports those (nothing of the user's: task modules,
``flowmancerconf.py`` and plugins load when it runs, as in any run), then waits on a pipe for its turn (the
command line and the changes, one JSON line). The watcher starts the next one as soon as it hands a run
over, so the imports happen while the user edits. Started with ``subprocess``, never forked: the watcher
has watchfiles' thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Optional

#: flowmancer's own modules a run imports before any of the user's (the built-in plugins among them)
_WARM = ("flowmancer.cli", "flowmancer.pluginmanager", "flowmancer.jobdef", "flowmancer.forkserver")


class Standby:
    """One interpreter started and waiting for its run."""

    def __init__(self) -> None:
        read, self._write = os.pipe()
        # Started with Ctrl-C blocked (the mask survives exec): one pressed while the interpreter starts waits
        # for ``main`` to take it up, instead of breaking an import with a KeyboardInterrupt traceback.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowmancer.standby", str(read)], pass_fds=(read,))
        except BaseException:
            os.close(self._write)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read)

    def go(self, argv: list[str], changes: str) -> subprocess.Popen[bytes]:
        """Run ``flowmancer ARGV`` in it (``changes``: watchfiles' JSON of what changed, for the rerun's line)."""
        try:
            os.write(self._write, json.dumps({"argv": argv, "changes": changes}).encode() + b"\n")
        except BrokenPipeError:  # it died waiting (killed by someone): run in a new one
            self.discard()
            return Standby().go(argv, changes)
        self._close()
        return self.proc

    def _close(self) -> None:
        if self._write >= 0:
            os.close(self._write)
            self._write = -1

    def discard(self) -> None:
        """End it unused: the pipe closes, it sees end-of-file and exits."""
        self._close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop(proc: subprocess.Popen[bytes], sigint_timeout: float = 10) -> None:
    """Stop a run as Ctrl-C would (its tasks get ``on_abort``); SIGKILL if it is still there after the wait."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(sigint_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for_turn(fd: int) -> Optional[dict[str, object]]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return None  # the watcher ended (or discarded this one)
        data += chunk
    os.close(fd)
    message: dict[str, object] = json.loads(data)
    return message


def main(fd: int) -> None:
    import importlib

    # Ours alone: a process started from here (its fork server, a task) holding the pipe open would keep a
    # write to a killed standby from failing, and the run handed to it would be lost.
    os.set_inheritable(fd, False)
    # Ctrl-C stays blocked (see Standby) through the imports: one raised inside pydantic_core's Rust import
    # panics there and prints its own traceback. Pressed meanwhile, it is taken up when unblocked.
    for name in _WARM:
        importlib.import_module(name)
    from .pluginmanager import BUILTINS

    for module in BUILTINS.values():
        importlib.import_module(module)
    from .forkserver import prestart

    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending Ctrl-C raises here
        prestart([])  # the run's fork server starts (imports pydantic) now too, not when the run begins
        message = _wait_for_turn(fd)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the watcher is stopping too
        os._exit(0)
    if message is None:
        os._exit(0)
    argv = message["argv"]
    assert isinstance(argv, list)
    sys.argv = ["flowmancer", *argv]
    os.environ["WATCHFILES_CHANGES"] = str(message["changes"])
    from .__main__ import main as run

    run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
