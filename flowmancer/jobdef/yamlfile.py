"""A job file's YAML: read safely, with the file and line of every key and list item (``Marks``).

Only the safe subset of YAML is read (tags such as ``!!python/object`` are refused, at their line). A file
must be a regular one of at most ``MAX_JOB_BYTES``; YAML aliases and merge keys may add at most
``MAX_ALIAS_VALUES`` values (or ten times what the file spells out) beyond the file itself, so a few hundred
bytes of nested aliases (an "alias bomb") cannot take gigabytes: it is refused at its anchor's line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml

from ..errors import Location, Problem
from ..files import NotRegular, read_regular

Path_ = tuple[Union[str, int], ...]
Marks = Dict[Path_, tuple[str, int, int]]  # path -> (file, line, column), made into a Location on demand
#: the largest job file read (a 100,000-task job is a few MB)
MAX_JOB_BYTES = 64_000_000
#: values YAML aliases and merge keys may add beyond what the file spells out (an alias bomb stops here):
#: this many, or 10 times the values the file spells out if that is more
MAX_ALIAS_VALUES = 100_000


def locate(marks: Marks, path: Path_) -> Optional[Location]:
    for n in range(len(path), -1, -1):
        mark = marks.get(tuple(path[:n]))
        if mark is not None:
            return Location(*mark)
    return None


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# libyaml's parser when present: the same safe loading, many times faster on big files.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Turns a composed (safe) node tree into plain data, recording where each key was written."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.marks: Marks = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self._stack: set[int] = set()
        self._built = 0  # values built, aliases counted each time they are expanded
        self._nodes: set[int] = set()  # distinct nodes: what the file spells out
        self._merged: dict[int, int] = {}  # node -> pairs its merge keys (<<) flatten into
        self._over = False
        self._alias: Optional[yaml.Node] = None  # the outermost anchored node being expanded again

    def loc(self, node: yaml.Node) -> Location:
        return Location(*self.mark(node))

    def mark(self, node: yaml.Node) -> tuple[str, int, int]:
        return (self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _budget(self, node: yaml.Node, more: int = 1) -> bool:
        """Count ``more`` values; ``False`` (and one problem) once aliases have expanded past the bound."""
        if not self._over:
            self._built += more
            limit = max(MAX_ALIAS_VALUES, 10 * len(self._nodes))
            if self._built - len(self._nodes) > limit:
                self._over = True
                self.problems.append(
                    Problem(
                        f"YAML aliases expand to more than {limit:,} values (an alias bomb?): the anchor here "
                        "is expanded again and again",
                        self.loc(self._alias if self._alias is not None else node),
                        hint="an alias (*name) of an anchor that itself holds aliases multiplies; use fewer levels",
                    )
                )
        return not self._over

    def _merge_size(self, node: yaml.MappingNode) -> int:
        """The pairs flattening the merge keys (<<) of ``node`` makes, worked out without making them."""
        got = self._merged.get(id(node))
        if got is not None:
            return got
        self._merged[id(node)] = 0  # a cycle adds nothing (it is reported as a recursive alias)
        total = 0
        for knode, vnode in node.value:
            if knode.tag != _MERGE_TAG:
                total += 1
                continue
            for sub in vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]:
                if isinstance(sub, yaml.MappingNode):
                    total += self._merge_size(sub)
        self._merged[id(node)] = total
        return total

    def build(self, node: yaml.Node, path: Path_) -> Any:
        """Marks are kept for the root, every key and every list item: enough to point at any value."""
        if not path:
            self.marks[path] = self.mark(node)
        outermost = self._alias is None and id(node) in self._nodes  # an alias, not inside another
        if outermost:
            self._alias = node
        try:
            return self._build(node, path)
        finally:
            if outermost:
                self._alias = None

    def _build(self, node: yaml.Node, path: Path_) -> Any:
        self._nodes.add(id(node))
        if not self._budget(node):
            return None
        if id(node) in self._stack:
            self.problems.append(
                Problem("recursive YAML alias", self.loc(node), hint="an anchor cannot contain itself")
            )
            return None
        if node.tag not in yaml.constructor.SafeConstructor.yaml_constructors:
            self.problems.append(
                Problem(f"YAML tag {node.tag} is not allowed", self.loc(node), hint="write plain values, without tags")
            )
            return None
        if isinstance(node, yaml.MappingNode):
            if any(k.tag == _MERGE_TAG for k, _ in node.value):
                extra = self._merge_size(node) - len(node.value)
                if not self._budget(node, max(0, extra)):  # flattening would make them all at once
                    return None
            self._stack.add(id(node))
            self.constructor.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    self.problems.append(Problem("a mapping key must be a plain value", self.loc(knode)))
                    continue
                key = self.constructor.construct_object(knode)
                kpath = (*path, key)
                if key in out:
                    first = self.marks.get(kpath)
                    self.problems.append(
                        Problem(
                            f"duplicate key '{key}' (first defined at line {first[1] if first else '?'})",
                            self.loc(knode),
                            where=dotted(path),
                            hint="YAML keeps only one of them; remove or rename the other",
                        )
                    )
                self.marks[kpath] = self.mark(knode)
                out[key] = self.build(vnode, kpath)
            self._stack.discard(id(node))
            return out
        if isinstance(node, yaml.SequenceNode):
            self._stack.add(id(node))
            items = []
            for i, v in enumerate(node.value):
                self.marks[(*path, i)] = self.mark(v)
                items.append(self.build(v, (*path, i)))
            self._stack.discard(id(node))
            return items
        if node.tag == _STR_TAG:  # the common case, without the constructor's machinery
            return node.value
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            self.problems.append(Problem(f"invalid value: {exc}", self.loc(node)))
            return None


def _yaml_problem(file: str, exc: yaml.YAMLError, text: str = "") -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1)
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    cmark = getattr(exc, "context_mark", None)
    if context and cmark is not None and mark is not None and cmark.line != mark.line:
        context += f" that starts at line {cmark.line + 1}"
    msg = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    hint = "check indentation and quoting on this line or the one above"
    line_text = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
    if "\t" in what or "\\t" in what or "\t" in line_text[: len(line_text) - len(line_text.lstrip())]:
        hint = "YAML does not allow tabs for indentation: use spaces"
    elif "could not determine a constructor" in what:
        hint = "tags such as !!python/object are not allowed; write plain values"
    return Problem(msg, loc, hint=hint)


def _read_text(path: Path, problems: list[Problem]) -> Optional[str]:
    """The text of a job file: a regular file of at most ``MAX_JOB_BYTES`` (see ``files.read_regular``)."""
    try:
        return read_regular(path, MAX_JOB_BYTES).decode("utf-8")
    except FileNotFoundError:
        problems.append(Problem(f"job definition file not found: {path}", hint="check the path given with -j"))
    except NotRegular as exc:
        problems.append(
            Problem(f"{exc}, not a job definition file", hint="give a YAML file (-j path/to/job.yaml, or include:)")
        )
    except UnicodeDecodeError as exc:
        problems.append(Problem(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})", hint="save as UTF-8"))
    except OSError as exc:
        problems.append(Problem(f"cannot read job definition {path}: {exc.strerror}"))
    return None


def read_yaml(path: Path, problems: list[Problem]) -> tuple[Any, Marks]:
    file = str(path)
    text = _read_text(path, problems)
    if text is None:
        return None, {}
    if len(text) > 2_000_000:
        print(f"reading {path} ({len(text) / 1e6:.1f} MB): large YAML files take a while", file=sys.stderr)
    try:
        node = yaml.compose(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(file, exc, text))
        return None, {}
    if node is None:
        problems.append(
            Problem(
                "the job definition is empty",
                Location(file, 1),
                hint="add a `tasks:` mapping; see the README's Job Definition section",
            )
        )
        return None, {}
    builder = _Builder(file, problems)
    try:
        data = builder.build(node, ())
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(file, exc))
        return None, {}
    if not isinstance(data, dict):
        problems.append(
            Problem(
                f"the job definition must be a mapping (key: value), not a {type(data).__name__}",
                builder.loc(node),
                hint="start the file with `tasks:`",
            )
        )
        return None, {}
    return data, builder.marks
