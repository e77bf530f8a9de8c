"""A job file's YAML: read safely, with the file and line of every key and list item (``Marks``).

Only the safe subset of YAML is read (tags such as ``!!python/object`` are refused, at their line). A file
must be a regular one of at most ``MAX_JOB_BYTES``; YAML aliases and merge keys may add at most
``MAX_ALIAS_VALUES`` values (or ten times what the file spells out) beyond the file itself, so a few hundred
bytes of nested aliases (an "alias bomb") cannot take gigabytes: it is refused at its anchor's line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from sys import intern  # a key written 100,000 times (task:, dependencies:) is kept once
from typing import Any, Iterator, MutableMapping, Optional, Union

import yaml

from ..errors import Location, Problem
from ..files import NotRegular, read_regular

Path_ = tuple[Union[str, int], ...]
#: path -> where it was written: file, line and column packed in one int (``pack``), made into a Location on
#: demand. A 100,000-task job has 400,000 marks; a (file, line, column) tuple each took ~60 bytes more.
Marks = MutableMapping[Path_, int]
_BITS = 27  # a line or column number below 2**27 (MAX_JOB_BYTES is smaller)
_FILES: list[str] = []  # the files marks point into, by number
_FILE_IDS: dict[str, int] = {}


def pack(file: str, line: int, column: int) -> int:
    fid = _FILE_IDS.get(file)
    if fid is None:
        fid = _FILE_IDS[file] = len(_FILES)
        _FILES.append(file)
    return (((fid << _BITS) | line) << _BITS) | column


def unpack(mark: int) -> Location:
    mask = (1 << _BITS) - 1
    return Location(_FILES[mark >> (2 * _BITS)], (mark >> _BITS) & mask, mark & mask)


class LazyMarks(MutableMapping[Path_, int]):
    """The marks of a file that was read without them: made the first time one is looked up, by reading
    the file's text (kept here) again. Only an error message needs a line, and recording 400,000 marks was a
    third of the time a 100,000-task job took to read; a file with a problem is read with its marks."""

    __slots__ = ("_text", "_file", "_marks", "_root")

    def __init__(self, text: str, file: str, root: int) -> None:
        self._text = text
        self._file = file
        self._marks: Optional[dict[Path_, int]] = None
        self._root = root

    def _made(self) -> dict[Path_, int]:
        marks = self._marks
        if marks is None:
            from .yamlevents import EventReader

            reader = EventReader(self._text, self._file)
            reader.document()
            marks = self._marks = reader.marks
            self._text = ""
        return marks

    def get(self, key: Path_, default: Any = None) -> Any:
        if key == () and self._marks is None:
            return self._root
        return self._made().get(key, default)

    def __getitem__(self, key: Path_) -> int:
        return self._made()[key]

    def __setitem__(self, key: Path_, value: int) -> None:
        self._made()[key] = value

    def __delitem__(self, key: Path_) -> None:
        del self._made()[key]

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())


#: the largest job file read (a 100,000-task job is a few MB)
MAX_JOB_BYTES = 64_000_000
#: values YAML aliases and merge keys may add beyond what the file spells out (an alias bomb stops here):
#: this many, or 10 times the values the file spells out if that is more
MAX_ALIAS_VALUES = 100_000
#: values nested deeper than this are refused (a job file nests a handful of levels; thousands would
#: exhaust Python's recursion limit)
MAX_DEPTH = 100


def locate(marks: Marks, path: Path_) -> Optional[Location]:
    """Where ``path`` was written, or the nearest enclosing key that was (a default has no line)."""
    mark = marks.get(path)
    if mark is not None:
        return unpack(mark)
    for n in range(len(path) - 1, -1, -1):
        mark = marks.get(tuple(path[:n]))
        if mark is not None:
            return unpack(mark)
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
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _Builder:
    """Turns a composed (safe) node tree into plain data, recording where each key was written: for a file
    with anchors and aliases (``yamlevents.EventReader`` reads the others), counting what aliases expand to."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.marks: dict[Path_, int] = {}
        self.dollars: list[Path_] = []  # where a string value holds a "$" (substitution looks only there)
        self.constructor = yaml.constructor.SafeConstructor()
        self._stack: set[int] = set()
        self._built = 0  # values built, aliases counted each time they are expanded
        self._nodes: set[int] = set()  # distinct nodes: what the file spells out
        self._merged: dict[int, int] = {}  # node -> pairs its merge keys (<<) flatten into
        self._over = False
        self._alias: Optional[yaml.Node] = None  # the outermost anchored node being expanded again

    def loc(self, node: yaml.Node) -> Location:
        return unpack(self.mark(node))

    def mark(self, node: yaml.Node) -> int:
        return pack(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _key(self, knode: yaml.Node, path: Path_, out: dict[Any, Any]) -> Any:
        """The key a mapping's ``knode`` makes (a duplicate is reported), its mark recorded."""
        key = intern(knode.value) if knode.tag == _STR_TAG else self.constructor.construct_object(knode)
        self.keyed(key, path, out, knode)
        return key

    def keyed(self, key: Any, path: Path_, out: dict[Any, Any], at: Any) -> None:
        """Record the mark of ``key`` (written at ``at``, a node or an event) in the mapping at ``path``."""
        kpath = (*path, key)
        if key in out:
            first = self.marks.get(kpath)
            line = unpack(first).line if first is not None else "?"
            self.problems.append(
                Problem(
                    f"duplicate key '{key}' (first defined at line {line})",
                    self.loc(at),
                    where=dotted(path),
                    hint="YAML keeps only one of them; remove or rename the other",
                )
            )
        self.marks[kpath] = self.mark(at)

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag == _STR_TAG:  # the common case, without the constructor's machinery
            if "$" in node.value:
                self.dollars.append(path)
            return node.value
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            self.problems.append(Problem(f"invalid value: {exc}", self.loc(node)))
            return None

    def _allowed(self, node: yaml.Node) -> bool:
        if node.tag in yaml.constructor.SafeConstructor.yaml_constructors:
            return True
        self.problems.append(
            Problem(f"YAML tag {node.tag} is not allowed", self.loc(node), hint="write plain values, without tags")
        )
        return False

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

    def too_deep(self, path: Path_, at: Any) -> bool:
        if len(path) <= MAX_DEPTH:
            return False
        if not any(p.message.startswith("YAML nested more") for p in self.problems):  # once
            self.problems.append(
                Problem(
                    f"YAML nested more than {MAX_DEPTH} levels deep",
                    self.loc(at),
                    where=dotted(path[:3]),
                    hint="flatten the structure, or read deep data from a file in the task",
                )
            )
        return True

    def build(self, node: yaml.Node, path: Path_) -> Any:
        """Marks are kept for the root, every key and every list item: enough to point at any value."""
        if self.too_deep(path, node):
            return None
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
        if not self._allowed(node):
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
                key = self._key(knode, path, out)
                out[key] = self.build(vnode, (*path, key))
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
        return self._scalar(node, path)


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
    elif "nesting depth" in what:  # libyaml's own limit (1,000 levels in newer releases)
        hint = "flatten the structure, or read deep data from a file in the task"
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


def _may_share(text: str) -> bool:
    """Anchors, aliases or merge keys may be in ``text``: compose it, then count what aliases expand to."""
    return "&" in text or "*" in text or "<<" in text


def read_yaml(path: Path, problems: list[Problem]) -> tuple[Any, Marks, list[Path_]]:
    """The data of a job file, the marks of its keys and items, and the paths of its string values that
    hold a ``$`` (for ``substitution``). ``None`` data: unreadable (the problem recorded)."""
    file = str(path)
    text = _read_text(path, problems)
    if text is None:
        return None, {}, []
    if len(text) > 2_000_000:
        print(f"reading {path} ({len(text) / 1e6:.1f} MB): large YAML files take a while", file=sys.stderr)
    builder: _Builder
    lazy = False
    try:
        if _may_share(text):
            builder = _Builder(file, problems)
            node = yaml.compose(text, Loader=_SAFE_LOADER)
            found = node is not None
            if node is not None:
                builder.marks[()] = builder.mark(node)
                data = builder.build(node, ())
        else:
            from .yamlevents import EventReader  # it builds on _Builder, defined here

            builder = EventReader(text, file, marking=False)
            found, data = builder.document()
            lazy = not builder.problems
            if not lazy:  # their lines, and the lines of what they refer to (a duplicate's first)
                builder = EventReader(text, file)
                found, data = builder.document()
            problems.extend(builder.problems)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(file, exc, text))
        return None, {}, []
    if not found:
        problems.append(
            Problem(
                "the job definition is empty",
                Location(file, 1),
                hint="add a `tasks:` mapping; see the README's Job Definition section",
            )
        )
        return None, {}, []
    if not isinstance(data, dict):
        problems.append(
            Problem(
                f"the job definition must be a mapping (key: value), not a {type(data).__name__}",
                unpack(builder.marks[()]),
                hint="start the file with `tasks:`",
            )
        )
        return None, {}, []
    if lazy:
        return data, LazyMarks(text, file, builder.marks[()]), builder.dollars
    return data, builder.marks, builder.dollars
