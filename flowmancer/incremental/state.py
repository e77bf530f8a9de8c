"""The state of one incremental run: fingerprints, the record, and what each task's dependents compare.

Its own module, imported only by an incremental run (``plugin.py`` is imported by every run): the
fingerprinting and the record cost ~2 ms of start-up to import.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from ..checkpointer.codec import _lossy, decode
from ..config import Config
from ..job import Job, TaskRun
from ..plan import ordered
from ..states import TaskResult
from . import fingerprint as fpr
from .decide import Fingerprint, dep_reasons, own_reasons, summary, when
from .record import Record

#: a task's recorded shared_dict writes larger than this (as JSON) are not recorded: it always reruns
MAX_WRITES = 1 << 20


class Incremental:
    """The state of one incremental run."""

    def __init__(self, config: Config, job: Job, record: Record) -> None:
        self.job = job
        self.root = config.rootdir
        self.code = fpr.CodeIndex(config.rootdir)
        self.record = record
        self.forced = set(config.getoption("force") or ())
        self.results: dict[str, Optional[dict[str, Any]]] = {}  # task -> what its dependents compare
        self.fps: dict[str, Fingerprint] = {}
        self.seen: dict[str, dict[str, Any]] = {}  # task -> its dependencies' results when it started
        self.writes: dict[str, dict[str, list[Any]]] = {}  # task -> key -> [key, value] as JSON (None: deleted)

    def settled(self, name: str, rec: Optional[dict[str, Any]]) -> None:
        """``name`` is over (or restored, or up to date): its dependents compare what ``rec`` says it wrote."""
        self.results[name] = summary(rec)

    def fingerprint(self, task: TaskRun) -> Fingerprint:
        module = task.cls.__module__
        d = task.definition
        rec = self.record.tasks.get(task.name) or {}
        fp = Fingerprint(
            cls=f"{module}:{task.cls.__qualname__}",
            params=fpr.parameters(task.instance),
            code=self.code.closure(module),
            libs=self.code.libraries(module),
            inputs=fpr.files(self.root, d.inputs, rec.get("inputs")),
            outputs=list(d.outputs),
        )
        self.fps[task.name] = fp
        return fp

    def own(self, task: TaskRun) -> list[str]:
        if not task.definition.cache:
            return ["cache: false"]
        if task.name in self.forced:
            return ["forced (--force)"]
        return own_reasons(self.fingerprint(task), self.record.tasks.get(task.name), self.root)

    def reasons(self, task: TaskRun) -> list[str]:
        """Why ``task`` must run now that its dependencies settled (empty: up to date)."""
        why = self.own(task)
        rec = self.record.tasks.get(task.name)
        if summary(rec) is not None:  # a completed run is recorded: every reason, not only the first kind
            why += dep_reasons(task.dependencies, rec.get("deps") or {}, self.results)  # type: ignore[union-attr]
        return why

    def plan(self) -> dict[str, tuple[bool, str]]:
        """Before anything runs: each task's decision as far as it is known (``--explain``, ``-n``)."""
        out: dict[str, tuple[bool, str]] = {}
        runs: dict[str, Optional[bool]] = {}  # True: runs; None: runs only if a dependency's result changes
        now: dict[str, Optional[dict[str, Any]]] = {}
        for t in ordered(self.job):
            if t.state.is_final:  # deselected, or restored by -r
                rec = self.record.tasks.get(t.name)
                now[t.name], runs[t.name] = summary(rec), False
                continue
            why = self.own(t)
            rec = self.record.tasks.get(t.name)
            waiting = [d for d in t.dependencies if runs.get(d) is not False]  # their results are not known yet
            if summary(rec) is not None:
                seen = {k: v for k, v in (rec.get("deps") or {}).items() if k not in waiting}  # type: ignore[union-attr]
                why += dep_reasons([d for d in t.dependencies if d not in waiting], seen, now)
            if why:
                runs[t.name], now[t.name] = True, None
                out[t.name] = (True, "; ".join(why))
            elif waiting:
                runs[t.name], now[t.name] = None, summary(rec)
                names = ", ".join(waiting)
                out[t.name] = (
                    True,
                    f"runs only if {names} write{'s' if len(waiting) == 1 else ''} new values or "
                    f"outputs; up to date otherwise (ran {when((rec or {}).get('ran'))})",
                )
            else:
                runs[t.name], now[t.name] = False, summary(rec)
                out[t.name] = (False, f"up to date (ran {when((rec or {}).get('ran'))})")
        return out

    def restore(self, task: TaskRun, rec: dict[str, Any]) -> None:
        """Replay the recorded ``shared_dict`` writes of an up-to-date task, as if it had run."""
        job = self.job
        for k_enc, v_enc in rec.get("writes") or []:
            key = decode(k_enc)
            if v_enc is None:
                job.shared_dict.pop(key, None)
                value = None
            else:
                value = job.shared_dict[key] = decode(v_enc)
            job.hook.flowmancer_task_shared_dict(job=job, task=task, key=key, value=value, deleted=v_enc is None)

    def new_record(self, task: TaskRun, result: TaskResult) -> dict[str, Any]:
        fp = self.fps.get(task.name) or self.fingerprint(task)
        writes = list(self.writes.pop(task.name, {}).values())
        outputs = fpr.files(self.root, task.definition.outputs)
        rec: dict[str, Any] = {
            "ran": result.end or time.time(),
            "cls": fp.cls,
            "params": fp.params,
            "code": fp.code,
            "libs": fp.libs,
            "inputs": fp.inputs,
            "outputs": outputs,
            "deps": self.seen.pop(task.name, {}),
            "writes": writes,
            "keys": {_shown_key(k): fpr.digest(json.dumps(v, sort_keys=True).encode()) for k, v in writes},
            "outdigest": fpr.digest(
                json.dumps({p: {f: d[0] for f, d in fs.items()} for p, fs in outputs.items()}, sort_keys=True).encode()
            ),
        }
        lost = next((x for x in (_lossy(v) for _, v in writes if v is not None) if x), "")
        size = len(json.dumps(writes))
        if lost:
            rec["uncacheable"] = f"its shared_dict writes cannot be recorded ({lost})"
        elif size > MAX_WRITES:
            rec["uncacheable"] = f"its shared_dict writes are too large to record ({size:,} bytes)"
        if rec.get("uncacheable"):
            rec["writes"] = []
        return rec


def _shown_key(k_enc: Any) -> str:
    key = decode(k_enc)
    return key if isinstance(key, str) else repr(key)
