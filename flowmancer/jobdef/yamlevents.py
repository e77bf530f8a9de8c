"""A job file read straight from libyaml's events, for a file without anchors, aliases or merge keys (no
``&``, ``*`` or ``<<`` in its text, the usual case): no node tree is made, so a 100,000-task job (900,000
events) loads in about half the memory and time of composing one first. ``yamlfile.read_yaml`` chooses."""

from __future__ import annotations

from sys import intern  # a key written 100,000 times (task:, dependencies:) is kept once
from typing import Any, Optional

import yaml

from ..errors import Problem
from .yamlfile import _BITS, _MAP_TAG, _SAFE_LOADER, _SEQ_TAG, _STR_TAG, MAX_DEPTH, Path_, _Builder, pack

_Scalar, _MapStart, _MapEnd = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent
_SeqStart, _SeqEnd = yaml.SequenceStartEvent, yaml.SequenceEndEvent
#: the loader's implicit resolvers (first character -> (tag, pattern) pairs): YAML 1.1's ints, floats, bools, null
_RESOLVERS: dict[Any, list[tuple[str, Any]]] = _SAFE_LOADER.yaml_implicit_resolvers
_ANY_FIRST = _RESOLVERS.get(None, [])  # resolvers for any first character (none in PyYAML's safe loader)


def _plain_str(value: str) -> bool:
    """Does an unquoted, untagged scalar stay a string? What ``loader.resolve`` decides, without its
    overhead (it ran 600,000 times for a 100,000-task job)."""
    for tag, pattern in _RESOLVERS.get(value[:1], ()):
        if pattern.match(value):
            return tag == _STR_TAG
    for tag, pattern in _ANY_FIRST:
        if pattern.match(value):
            return tag == _STR_TAG
    return True


class EventReader(_Builder):
    """``_Builder``'s checks and marks, fed by the parser's events instead of a node tree. The common case
    (an untagged string, a key that is new in its mapping) is handled inline: a 100,000-task job is 900,000
    events, and each function call per event costs about a tenth of a second."""

    def __init__(self, text: str, file: str, marking: bool = True) -> None:
        super().__init__(file, [])
        self.loader = _SAFE_LOADER(text)
        self.get = self.loader.get_event
        self._file_bits = pack(file, 0, 0)  # a mark is these | line << _BITS | column (see yamlfile.pack)
        self.marking = marking  # False: the root's mark only (see yamlfile.LazyMarks)
        self._plain: dict[str, bool] = {}  # plain scalar -> it stays a string (a big job repeats its words)

    def _is_str(self, text: str) -> bool:
        known = self._plain.get(text)
        if known is None:
            known = self._plain[text] = _plain_str(text)
        return known

    def mark(self, node: Any) -> int:
        m = node.start_mark
        return self._file_bits | ((int(m.line) + 1) << _BITS) | (int(m.column) + 1)

    def document(self) -> tuple[bool, Any]:
        """``(False, None)`` for an empty stream, else ``(True, data)``; raises ``yaml.YAMLError`` as
        ``yaml.compose`` does (syntax, more than one document)."""
        get, check = self.get, self.loader.check_event
        try:
            get()  # stream start
            if check(yaml.StreamEndEvent):
                return False, None
            get()  # document start
            first = get()
            self.marks[()] = self.mark(first)
            data = self.value(first, ())
            get()  # document end
            if not check(yaml.StreamEndEvent):
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream",
                    first.start_mark,
                    "but found another document",
                    get().start_mark,
                )
            return True, data
        finally:
            self.loader.dispose()

    def _tagged(self, ev: Any, default: str) -> Optional[yaml.Node]:
        """A node for ``ev`` when its tag is not ``default`` (``None`` when it is); a tag not allowed is a
        problem and the value is skipped."""
        tag = ev.tag
        if tag is None or tag == "!":
            tag = default if default != _STR_TAG else self.loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == default:
            return None
        start, end = ev.start_mark, ev.end_mark
        if ev.__class__ is _Scalar:
            return yaml.ScalarNode(tag, ev.value, start, end, ev.style)
        return yaml.Node(tag, None, start, end)

    def value(self, ev: Any, path: Path_) -> Any:
        if self.too_deep(path, ev):
            return self._skip(ev)
        cls = ev.__class__
        if cls is _Scalar:
            plain = ev.tag is None and (not ev.implicit[0] or self._is_str(ev.value))
            node = None if plain else self._tagged(ev, _STR_TAG)
            if node is None:
                if "$" in ev.value:
                    self.dollars.append(path)
                return ev.value
            return self._scalar(node, path) if self._allowed(node) else None
        if cls is _MapStart:
            node = self._tagged(ev, _MAP_TAG)
            if node is not None and not self._allowed(node):
                return self._skip(ev)
            return self._mapping(path)
        if cls is _SeqStart:
            node = self._tagged(ev, _SEQ_TAG)
            if node is not None and not self._allowed(node):
                return self._skip(ev)
            return self._sequence(path)
        raise yaml.composer.ComposerError(None, None, f"unexpected {cls.__name__}", ev.start_mark)

    def _mapping(self, path: Path_) -> dict[Any, Any]:
        get, marks, bits, dollars, marking = self.get, self.marks, self._file_bits, self.dollars, self.marking
        is_str = self._is_str
        nested = len(path) + 1 > MAX_DEPTH  # its values are too deep: value() reports them
        out: dict[Any, Any] = {}
        while True:
            kev = get()
            cls = kev.__class__
            if cls is _MapEnd:
                return out
            if cls is not _Scalar:
                self.problems.append(Problem("a mapping key must be a plain value", self.loc(kev)))
                self._skip(kev)
                self._skip(get())
                continue
            if kev.tag is None and (not kev.implicit[0] or is_str(kev.value)):
                key: Any = intern(kev.value)
            else:
                node = self._tagged(kev, _STR_TAG)
                key = intern(kev.value) if node is None else self.constructor.construct_object(node)
            kpath = (*path, key)
            if key in out:
                self.keyed(key, path, out, kev)  # a duplicate: reported
            elif marking:
                m = kev.start_mark
                marks[kpath] = bits | ((m.line + 1) << _BITS) | (m.column + 1)
            vev = get()
            if vev.__class__ is _Scalar and vev.tag is None and not nested:
                text = vev.value
                if not vev.implicit[0] or is_str(text):
                    if "$" in text:
                        dollars.append(kpath)
                    out[key] = text
                    continue
            out[key] = self.value(vev, kpath)

    def _sequence(self, path: Path_) -> list[Any]:
        get, marks, bits, dollars, marking = self.get, self.marks, self._file_bits, self.dollars, self.marking
        is_str = self._is_str
        nested = len(path) + 1 > MAX_DEPTH
        items: list[Any] = []
        while True:
            ev = get()
            if ev.__class__ is _SeqEnd:
                return items
            ipath = (*path, len(items))
            if marking:
                m = ev.start_mark
                marks[ipath] = bits | ((m.line + 1) << _BITS) | (m.column + 1)
            if ev.__class__ is _Scalar and ev.tag is None and not nested:
                text = ev.value
                if not ev.implicit[0] or is_str(text):
                    if "$" in text:
                        dollars.append(ipath)
                    items.append(text)
                    continue
            items.append(self.value(ev, ipath))

    def _skip(self, ev: Any) -> None:
        """Consume the rest of the value ``ev`` starts."""
        depth = 1 if ev.__class__ in (_MapStart, _SeqStart) else 0
        while depth:
            cls = self.get().__class__
            if cls in (_MapStart, _SeqStart):
                depth += 1
            elif cls in (_MapEnd, _SeqEnd):
                depth -= 1
