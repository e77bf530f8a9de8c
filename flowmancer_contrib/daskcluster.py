"""Starting a cluster class named in ``config.dask``, and checking that its workers offer what tasks ask for."""

from __future__ import annotations

import importlib
from typing import Any

from flowmancer.errors import UsageError


def start_cluster(path: str, kwargs: dict[str, Any]) -> Any:
    """An instance of the cluster class at import path ``path`` (``pkg.mod.Class`` or ``pkg.mod:Class``)."""
    module, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not attr:
        raise UsageError(f"dask cluster '{path}': give the class by import path, such as dask_jobqueue.SLURMCluster")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise UsageError(
            f"dask cluster '{path}': cannot import {module} ({exc}); install the package that provides it "
            f"(pip install {module.split('.')[0].replace('_', '-')})"
        ) from None
    except AttributeError:
        raise UsageError(f"dask cluster '{path}': {module} has no {attr}") from None
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the cluster class's own complaint, said as such
        raise UsageError(f"dask cluster '{path}' could not start: {type(exc).__name__}: {exc}") from None


def check_resources(client: Any, elastic: bool, job: Any) -> None:
    """Refuse to start when no worker offers what a task's ``resources:`` ask for (it would wait forever).
    Not for a cluster that scales: the workers that will offer it may not have joined yet."""
    needs = {t.name: dict(t.definition.resources) for t in job if t.definition.resources and not t.state.is_final}
    if not needs or elastic:
        return
    workers = client.scheduler_info().get("workers", {})
    offered = [dict(w.get("resources") or {}) for w in workers.values()]
    if not offered:
        return
    unmet = [
        f"{name} ({', '.join(f'{r}={n:g}' for r, n in res.items())})"
        for name, res in needs.items()
        if not any(all(o.get(r, 0) >= n for r, n in res.items()) for o in offered)
    ]
    if unmet:
        kinds = sorted({f"{r}={n:g}" for res in needs.values() for r, n in res.items()})
        have = sorted({f"{r}={n:g}" for o in offered for r, n in o.items()}) or ["nothing"]
        raise UsageError(
            f"no Dask worker offers what these tasks need: {', '.join(unmet)}; the {len(offered)} workers offer "
            f'{", ".join(have)}. Start workers with `dask worker ADDRESS --resources "{" ".join(kinds)}"` (or give '
            "the cluster class resources, e.g. config.dask.kwargs.resources for a LocalCluster)"
        )
