"""Why a task runs or is up to date: its own fingerprint against its record, then its dependencies' results.

Each function returns the reasons a task must run, worded for the user and specific to the field
(``parameter n: 3 -> 4``, ``code changed: tasks/helpers.py``); no reason means up to date.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import fingerprint as fpr


@dataclass
class Fingerprint:
    """What a task's result depends on, taken just before it would start."""

    cls: str
    params: dict[str, list[str]]
    code: dict[str, str]
    libs: dict[str, str]
    inputs: dict[str, Any]
    outputs: list[str] = field(default_factory=list)  # the declared patterns


def when(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def _files(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if set(old) != set(new):
        out.append(f"{what} patterns changed in the job")
        return out
    for pattern in new:
        before, now = old.get(pattern) or {}, new.get(pattern) or {}
        for f in sorted(set(before) | set(now)):
            if f not in before:
                out.append(f"{what} {f} added")
            elif f not in now:
                out.append(f"{what} {f} removed")
            elif before[f][0] != now[f][0]:
                out.append(f"{what} {f} changed")
    return out


def own_reasons(fp: Fingerprint, rec: Optional[dict[str, Any]], root: Path) -> list[str]:
    """What in the task itself changed since its recorded run (``cache: false`` and ``--force`` are the
    caller's)."""
    if rec is None:
        return ["never ran"]
    if rec.get("started"):
        return [f"its last run did not complete (started {when(rec['started'])})"]
    if rec.get("uncacheable"):
        return [str(rec["uncacheable"])]
    out: list[str] = []
    if rec.get("cls") != fp.cls:
        out.append(f"task class changed: {rec.get('cls')} -> {fp.cls}")
    params = rec.get("params") or {}
    for name in list(fp.params) + [n for n in params if n not in fp.params]:
        old, new = params.get(name), fp.params.get(name)
        if old is None:
            out.append(f"parameter {name} added")
        elif new is None:
            out.append(f"parameter {name} removed")
        elif old[0] != new[0]:
            out.append(f"parameter {name}: {old[1]} -> {new[1]}")
    code = rec.get("code") or {}
    changed = sorted(f for f in set(code) | set(fp.code) if code.get(f) != fp.code.get(f))
    if changed:
        out.append(f"code changed: {', '.join(changed)}")
    libs = rec.get("libs") or {}
    for dist in sorted(set(libs) | set(fp.libs)):
        if libs.get(dist) != fp.libs.get(dist):
            out.append(f"library {dist}: {libs.get(dist) or 'none'} -> {fp.libs.get(dist) or 'none'}")
    out += _files("input", rec.get("inputs") or {}, fp.inputs)
    outputs = rec.get("outputs") or {}
    if sorted(outputs) != sorted(fp.outputs):
        out.append("output patterns changed in the job")
    else:
        for pattern, files in outputs.items():
            if not files:
                out.append(f"output {pattern} matched no file when it ran")
            for f, known in files.items():
                now = fpr.file_digest(root, f, known)
                if now is None:
                    out.append(f"output {f} missing")
                elif now[0] != known[0]:
                    out.append(f"output {f} changed since the task wrote it")
    return out


def summary(rec: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """What dependents compare: the values a task wrote and its outputs (``None``: nothing recorded)."""
    if rec is None or rec.get("started") or rec.get("uncacheable"):
        return None
    return {"keys": rec.get("keys") or {}, "out": rec.get("outdigest", "")}


def dep_reasons(deps: list[str], seen: dict[str, Any], now: dict[str, Optional[dict[str, Any]]]) -> list[str]:
    """Which dependencies' results differ from those the task's recorded run saw (early cutoff: a
    dependency that reran and wrote the same values and outputs is no reason)."""
    out: list[str] = []
    if set(seen) - set(deps):
        out.append(f"dependencies changed: {', '.join(sorted(set(seen) - set(deps)))} removed")
    for d in deps:
        cur = now.get(d)
        old = seen.get(d)
        if cur is None:
            out.append(f"dependency {d} has no completed run recorded")
        elif old is None:
            out.append(f"dependency {d} is new")
        else:
            ok, nk = old.get("keys") or {}, cur.get("keys") or {}
            keys = sorted(k for k in set(ok) | set(nk) if ok.get(k) != nk.get(k))
            if keys:
                out.append(f"dependency {d} wrote new values: {', '.join(keys)}")
            if old.get("out") != cur.get("out"):
                out.append(f"dependency {d} wrote new outputs")
    return out
