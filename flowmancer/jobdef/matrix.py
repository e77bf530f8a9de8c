"""``matrix:``: a task written once and run once per combination of parameter values, expanded at load time.

    count:
      task: Count
      matrix:
        chunk: [0, 1, 2]
        size: [small, big]
        exclude: [{chunk: 0, size: big}]
        include: [{chunk: 9, size: small}]

makes ``count[chunk=0,size=small]``, ``count[chunk=1,size=small]``, ... (the cartesian product, the last key
varying fastest, as GitHub Actions orders it), each with its values over the entry's ``parameters``.
``exclude`` removes the combinations that match every key it gives; each ``include`` is added to every
combination whose matrix keys match those it gives (its other keys become parameters of those), or becomes a
combination of its own when none matches (GitHub Actions' rule). A dependency on ``count`` means every
instance. Expanded before anything else looks at the job, so ``--list``, ``-n``, ``--graph``, ``-k``, the
checkpoint and incremental runs all see the instances. A value ``$SHARED{key}`` (a list an upstream task puts
in ``shared_dict``) leaves the entry one task until the run, which expands it when it is ready
(``runtime_combinations``). The ``matrix`` plugin (``flowmancer/matrix.py``) does both.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, Iterator, MutableMapping

from ..errors import Problem
from .yamlfile import Marks, Path_, dotted, locate

#: keys of a matrix that are not parameters
RESERVED = ("include", "exclude")
#: a matrix value that names a list an upstream task puts in ``shared_dict``: expanded when it completes
SHARED = re.compile(r"^\$SHARED\{([^}]+)\}$")


def shared_keys(matrix: Any) -> dict[str, str]:
    """The matrix keys whose values come from ``shared_dict`` at run time: key -> shared_dict key."""
    if not isinstance(matrix, dict):
        return {}
    found = {k: SHARED.match(v) for k, v in matrix.items() if k not in RESERVED and isinstance(v, str)}
    return {k: m.group(1) for k, m in found.items() if m}


def deferred(tdef: Any) -> bool:
    """Is this task entry a run-time fan-out (expanded when its dependencies are done)?"""
    return bool(shared_keys(tdef.matrix))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def instance_name(task: str, combo: dict[str, Any], keys: list[str]) -> str:
    """``task[key=value,...]`` over ``keys``: strings as written, other values as JSON (``true``, ``1.5``)."""
    return f"{task}[{','.join(f'{k}={_shown(combo[k])}' for k in keys)}]"


def _at(problems: list[Problem], marks: Marks, path: Path_, message: str, hint: str) -> None:
    problems.append(Problem(message, locate(marks, path), where=dotted(path), hint=hint))


class _Expansion:
    """The combinations of one task's ``matrix:``, with a problem at its line for each thing wrong."""

    def __init__(self, task: str, matrix: dict[str, Any], marks: Marks, problems: list[Problem]) -> None:
        self.task = task
        self.base: Path_ = ("tasks", task, "matrix")
        self.marks = marks
        self.problems = problems
        self.before = len(problems)  # the problems of other tasks
        self.axes: dict[str, list[Any]] = {}
        self.shared = shared_keys(matrix)
        for key, values in matrix.items():
            if key in RESERVED:
                continue
            if key in self.shared:
                self.axes[key] = [None]  # a stand-in until the run fills it in (see runtime_combinations)
                continue
            if not isinstance(values, list) or not values:
                self._problem(
                    (key,),
                    f"matrix key '{key}' needs a non-empty list of values",
                    f"write `{key}: [a, b]`; a single value belongs in parameters",
                )
                continue
            self.axes[key] = values
        self.exclude = self._entries(matrix.get("exclude"), "exclude", check_keys=True)
        self.include = self._entries(matrix.get("include"), "include", check_keys=False)

    def _problem(self, rel: Path_, message: str, hint: str = "") -> None:
        _at(self.problems, self.marks, (*self.base, *rel), message, hint)

    def _entries(self, raw: Any, kind: str, check_keys: bool) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(e, dict) and e for e in raw):
            self._problem((kind,), f"matrix {kind} must be a list of mappings", f"write `{kind}: [{{key: value}}]`")
            return []
        out = []
        for i, entry in enumerate(raw):
            unknown = [k for k in entry if k not in self.axes] if check_keys else []
            if unknown:
                self._problem(
                    (kind, i),
                    f"matrix exclude names '{unknown[0]}', which is not a key of this matrix",
                    f"matrix keys: {', '.join(self.axes) or 'none'}",
                )
                continue
            out.append(entry)
        return out

    def combinations(self) -> list[tuple[dict[str, Any], list[str]]]:
        """Each combination, with the keys its name shows (the matrix keys; all of an ``include`` of its own)."""
        keys = list(self.axes)
        combos: list[tuple[dict[str, Any], list[str]]] = []
        if keys:
            for values in itertools.product(*self.axes.values()):
                combo = dict(zip(keys, values, strict=True))
                if not any(all(combo[k] == v for k, v in ex.items()) for ex in self.exclude):
                    combos.append((combo, keys))
        original = len(combos)
        for entry in self.include:
            matched = False
            for combo, _ in combos[:original]:
                if all(combo[k] == v for k, v in entry.items() if k in self.axes):
                    combo.update({k: v for k, v in entry.items() if k not in self.axes})
                    matched = True
            if not matched:
                combos.append((dict(entry), list(entry)))
        if not combos and len(self.problems) == self.before:
            self._problem((), "this matrix makes no task: every combination is excluded", "remove an exclude entry")
        return combos


def expand(tasks: dict[str, Any], marks: Marks, problems: list[Problem]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``tasks`` (name -> ``TaskDef``) with each matrix task replaced, in its place, by its instances, and
    the instances of each matrix task (for dependencies on it). Problems are added to ``problems``."""
    if not any(t.matrix is not None for t in tasks.values()):
        return tasks, {}
    out: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for name, tdef in tasks.items():
        if tdef.matrix is None:
            _add(out, name, tdef, name, marks, problems)
            continue
        count = len(problems)
        expansion = _Expansion(name, tdef.matrix, marks, problems)
        clash = [k for k in expansion.axes if k in tdef.parameters]
        for key in clash:
            path = ("tasks", name, "matrix", key)
            _at(
                problems,
                marks,
                path,
                f"parameter '{key}' is given both in parameters and in matrix",
                "keep one: the matrix gives each instance its own value",
            )
        combos = expansion.combinations()
        if len(problems) > count:
            continue
        if expansion.shared:  # a run-time fan-out: one placeholder task until then
            if not tdef.dependencies:
                path = ("tasks", name, "matrix", next(iter(expansion.shared)))
                _at(
                    problems,
                    marks,
                    path,
                    f"$SHARED{{{next(iter(expansion.shared.values()))}}} is filled in when this task's "
                    "dependencies are done, and it has none",
                    "add the task that puts the list in shared_dict to its dependencies",
                )
            _add(out, name, tdef, name, marks, problems)
            continue
        names = groups[name] = []
        for combo, keys in combos:
            inst = instance_name(name, combo, keys)
            copy = tdef.model_copy(update={"parameters": {**tdef.parameters, **combo}, "matrix": None})
            if _add(out, inst, copy, name, marks, problems):
                names.append(inst)
    return out, groups


def _add(out: dict[str, Any], name: str, tdef: Any, entry: str, marks: Marks, problems: list[Problem]) -> bool:
    if name not in out:
        out[name] = tdef
        return True
    path: Path_ = ("tasks", entry)
    _at(
        problems,
        marks,
        path,
        f"two tasks are named '{name}' once the matrix is expanded",
        "rename the task, or change the matrix values that make the same name",
    )
    return False


class InstanceMarks(MutableMapping[Path_, int]):
    """The file's marks, where an instance's paths lead into its matrix task's entry (and a parameter the
    matrix gives to that key of ``matrix:``): its problems are reported at the lines that made it."""

    def __init__(self, marks: Marks, groups: dict[str, list[str]], keys: dict[str, set[str]]) -> None:
        self.marks = marks
        self.entry = {inst: name for name, insts in groups.items() for inst in insts}
        self.matrix_keys = keys  # matrix task -> its matrix's keys

    def _path(self, path: Path_) -> Path_:
        if len(path) < 2 or path[0] != "tasks" or path[1] not in self.entry:
            return path
        entry = self.entry[path[1]]  # type: ignore[index]
        rest = path[2:]
        if len(rest) >= 2 and rest[0] == "parameters" and rest[1] in self.matrix_keys.get(entry, ()):
            rest = ("matrix", *rest[1:])
        return ("tasks", entry, *rest)

    def get(self, key: Path_, default: Any = None) -> Any:
        return self.marks.get(self._path(key), default)

    def __getitem__(self, key: Path_) -> int:
        return self.marks[self._path(key)]

    def __setitem__(self, key: Path_, value: int) -> None:
        self.marks[key] = value

    def __delitem__(self, key: Path_) -> None:
        del self.marks[key]

    def __iter__(self) -> Iterator[Path_]:
        return iter(self.marks)

    def __len__(self) -> int:
        return len(self.marks)


def runtime_combinations(
    task: str, matrix: dict[str, Any], shared: dict[Any, Any]
) -> tuple[list[tuple[str, dict[str, Any]]], list[Problem]]:
    """A run-time fan-out's instances now that ``shared`` holds its lists: (name, the values it sets) each,
    or the problems that make it impossible (a missing key, a value that is not a list)."""
    problems: list[Problem] = []
    filled = dict(matrix)
    for key, name in shared_keys(matrix).items():
        value = shared.get(name)
        if not isinstance(value, list):
            got = "missing" if name not in shared else f"a {type(value).__name__}"
            problems.append(Problem(f"matrix key '{key}': shared_dict[{name!r}] should be a list, but it is {got}"))
            continue
        filled[key] = value
    if problems:
        return [], problems
    if any(v == [] for k, v in filled.items() if k not in RESERVED):  # an empty list: no instance, no error
        return [], []
    expansion = _Expansion(task, filled, {}, problems)
    out = [(instance_name(task, combo, keys), combo) for combo, keys in expansion.combinations()]
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        problems.append(Problem(f"two instances would be named '{dup}': the list holds the same value twice"))
    return ([] if problems else out), problems
