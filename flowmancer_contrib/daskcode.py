"""The project's code, shipped to Dask workers: a zip of the app root's modules, keyed by their digest.

Imported only by runs on Dask (it imports ``distributed``), and on the workers by Dask when it unpickles
``ShipCode``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import sys
import threading
import zipfile
from typing import Any, Optional

from distributed.diagnostics.plugin import WorkerPlugin

CODE_PREFIX = "flowmancer-code-"


def code_archive(root: str) -> tuple[bytes, str]:
    """The app root's imported modules as a zip importable by module name, and the digest of their sources
    (the same sources give the same digest, whatever the files' times)."""
    prefix = os.path.join(os.path.realpath(root), "")
    files: dict[str, bytes] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name == "__main__" or not isinstance(file, str) or not file.endswith(".py"):
            continue
        if name.split(".")[0] in ("flowmancer", "flowmancer_contrib"):  # the workers' own install, never shadowed
            continue
        real = os.path.realpath(file)
        if not real.startswith(prefix) or "-packages" + os.sep in real:
            continue
        arc = name.replace(".", "/") + ("/__init__.py" if hasattr(module, "__path__") else ".py")
        try:
            with open(real, "rb") as f:
                files[arc] = f.read()
        except OSError:
            continue
    for arc in list(files):  # a folder without __init__.py (a namespace package) becomes a package in the zip
        parts = arc.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            files.setdefault("/".join(parts[:i]) + "/__init__.py", b"")
    h = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(files):
            h.update(arc.encode() + b"\0" + hashlib.sha256(files[arc]).digest())
            zf.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), files[arc])
    return buf.getvalue(), h.hexdigest()[:20]


class ShipCode(WorkerPlugin):
    """A Dask worker plugin that stores the project's code archive on each worker (those that join later
    too). ``run_attempt`` puts it on ``sys.path`` for the run that shipped it."""

    def __init__(self, data: bytes, digest: str) -> None:
        self.data = data
        self.digest = digest
        self.name = CODE_PREFIX + digest

    def setup(self, worker: Any) -> None:
        path = os.path.join(worker.local_directory, f"{self.name}.zip")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(self.data)
            os.replace(tmp, path)

    def teardown(self, worker: Any) -> None:
        pass


def ship_code(client: Any, root: str) -> str:
    """Register the project's code with the cluster unless the same code is there already; its digest."""
    data, digest = code_archive(root)
    name = CODE_PREFIX + digest

    def registered(dask_scheduler: Any) -> list[str]:
        return list(getattr(dask_scheduler, "worker_plugins", {}))

    try:
        known = client.run_on_scheduler(registered)
    except Exception:  # noqa: BLE001 - a scheduler that will not run it: send the code anyway
        known = []
    if name not in known:
        client.register_plugin(ShipCode(data, digest), name=name)
    return digest


IMPORT_LOCK = threading.Lock()


def use_code(worker: Any, digest: Optional[str]) -> None:
    """Put the run's code archive first on ``sys.path`` and forget modules imported from another one (the
    same worker may have run another version of the project)."""
    if digest is None:
        return
    path = os.path.join(worker.local_directory, f"{CODE_PREFIX}{digest}.zip")
    if not os.path.exists(path):
        raise RuntimeError(f"worker {worker.address}: the project's code ({CODE_PREFIX}{digest}) did not arrive")
    if sys.path and sys.path[0] == path:
        return
    others = [p for p in sys.path if os.path.basename(p).startswith(CODE_PREFIX) and p != path]
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if any(file.startswith(p + os.sep) for p in others):
            del sys.modules[name]
    sys.path[:] = [path] + [p for p in sys.path if p != path and p not in others]
    importlib.invalidate_caches()
