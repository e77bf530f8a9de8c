"""``include:``: other job files merged under this one (dicts key by key, the rest replaced), each read once,
substituted, and refused when it is not a job file (never echoed).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import Location, Problem
from .models import _JOB_KEYS, _not_a_job
from .substitution import substitute
from .yamlfile import Marks, locate, read_yaml


def deep_merge(base: dict[Any, Any], over: Mapping[Any, Any]) -> dict[Any, Any]:
    """Dicts merge key by key; anything else (lists included) is replaced by the later value."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


class _Loader:
    def __init__(self, rootdir: Path, sources: Mapping[str, Mapping[str, str]]) -> None:
        self.rootdir = rootdir
        self.sources = sources
        self.problems: list[Problem] = []
        self.files: list[Path] = []
        self.outside: list[str] = []  # includes from outside the app root (the header of the run names them)
        self._cache: dict[Path, tuple[dict[Any, Any], Marks]] = {}

    def _resolve(self, raw: str, including: Path) -> Optional[Path]:
        """The file an include names (``read_yaml`` then refuses what is not a regular file)."""
        p = Path(os.path.expanduser(raw))
        if p.is_absolute():
            return p if p.exists() else None
        for base in (self.rootdir, including.parent):
            if (base / p).exists():
                return (base / p).resolve()
        return None

    def load(self, path: Path, stack: tuple[Path, ...] = ()) -> tuple[dict[Any, Any], Marks]:
        path = path.resolve()
        if path in self._cache:  # included twice (a diamond): hand out a copy
            data, marks = self._cache[path]
            return copy.deepcopy(data), dict(marks)
        if path not in self.files:
            self.files.append(path)
        raw, marks, dollars = read_yaml(path, self.problems)
        if raw is None:
            return {}, {}
        if raw and _not_a_job(raw):  # say so, and never echo what such a file holds
            self.problems.append(
                Problem(
                    f"{path} is not a job definition: it has none of the keys of one ({', '.join(sorted(_JOB_KEYS))})",
                    Location(str(path), 1),
                    hint="check -j, or the include that names it",
                )
            )
            return {}, {}
        substitute(raw, dollars, marks, self.sources, self.problems)
        includes = raw.pop("include", None) or []
        if isinstance(includes, str):
            includes = [includes]
        merged: dict[Any, Any] = {}
        merged_marks: Marks = {}
        if not isinstance(includes, list):
            self.problems.append(
                Problem(
                    "`include` must be a list of YAML file paths",
                    locate(marks, ("include",)),
                    hint="write `include: [a.yaml, b.yaml]`",
                )
            )
            includes = []
        for i, inc in enumerate(includes):
            if not isinstance(inc, str):
                self.problems.append(
                    Problem("include entries must be file paths", locate(marks, ("include", i)), where=f"include[{i}]")
                )
                continue
            target = self._resolve(inc, path)
            if target is None:
                self.problems.append(
                    Problem(
                        f"included file not found: {inc}",
                        locate(marks, ("include", i)),  # only for a problem: see yamlfile.LazyMarks
                        where=f"include[{i}]",
                        hint=f"include paths are relative to the app root ({self.rootdir})",
                    )
                )
                continue
            if target in stack or target == path:
                chain = " -> ".join(str(p) for p in (*stack, path, target))
                self.problems.append(
                    Problem(
                        f"include cycle: {chain}",
                        locate(marks, ("include", i)),  # only for a problem: see yamlfile.LazyMarks
                        where=f"include[{i}]",
                        hint="remove one of the includes that closes the loop",
                    )
                )
                continue
            if self.rootdir.resolve() not in target.resolve().parents:
                self.outside.append(f"{inc} ({target}), included by {path}")
            data, inc_marks = self.load(target, (*stack, path))
            deep_merge(merged, data)
            merged_marks.update(inc_marks)
        if merged:
            deep_merge(merged, raw)
            merged_marks.update(marks)
        else:  # no includes: nothing to merge, nothing to copy
            merged, merged_marks = raw, marks
        self._cache[path] = (merged, merged_marks)
        return merged, merged_marks
