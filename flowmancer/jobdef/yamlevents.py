"""A job file read straight from libyaml's events, for a file without anchors, aliases or merge keys (no
``&``, ``*`` or ``<<`` in its text, the usual case): no node tree is made, so a 100,000-task job (900,000
events) loads in about half the memory and time of composing one first. ``yamlfile.read_yaml`` chooses."""

from __future__ import annotations

from sys import intern  # a key written 100,000 times (task:, dependencies:) is kept once
from typing import Any, Optional

import yaml

from ..errors import Problem
from .yamlfile import _MAP_TAG, _SAFE_LOADER, _SEQ_TAG, _STR_TAG, Path_, _Builder


class EventReader(_Builder):
    """``_Builder``'s checks and marks, fed by the parser's events instead of a node tree."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(file, [])
        self.loader = _SAFE_LOADER(text)
        self.get = self.loader.get_event

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
        if ev.__class__ is yaml.ScalarEvent:
            return yaml.ScalarNode(tag, ev.value, start, end, ev.style)
        return yaml.Node(tag, None, start, end)

    def value(self, ev: Any, path: Path_) -> Any:
        if self.too_deep(path, ev):
            return self._skip(ev)
        cls = ev.__class__
        if cls is yaml.ScalarEvent:
            node = self._tagged(ev, _STR_TAG)
            if node is None:
                if "$" in ev.value:
                    self.dollars.append(path)
                return ev.value
            return self._scalar(node, path) if self._allowed(node) else None
        if cls is yaml.MappingStartEvent:
            node = self._tagged(ev, _MAP_TAG)
            if node is not None and not self._allowed(node):
                return self._skip(ev)
            return self._mapping(path)
        if cls is yaml.SequenceStartEvent:
            node = self._tagged(ev, _SEQ_TAG)
            if node is not None and not self._allowed(node):
                return self._skip(ev)
            return self._sequence(path)
        raise yaml.composer.ComposerError(None, None, f"unexpected {cls.__name__}", ev.start_mark)

    def _mapping(self, path: Path_) -> dict[Any, Any]:
        get = self.get
        out: dict[Any, Any] = {}
        while True:
            kev = get()
            if kev.__class__ is yaml.MappingEndEvent:
                return out
            if kev.__class__ is not yaml.ScalarEvent:
                self.problems.append(Problem("a mapping key must be a plain value", self.loc(kev)))
                self._skip(kev)
                self._skip(get())
                continue
            node = self._tagged(kev, _STR_TAG)
            key = intern(kev.value) if node is None else self.constructor.construct_object(node)
            self.keyed(key, path, out, kev)
            out[key] = self.value(get(), (*path, key))

    def _sequence(self, path: Path_) -> list[Any]:
        get, marks, mark = self.get, self.marks, self.mark
        items: list[Any] = []
        while True:
            ev = get()
            if ev.__class__ is yaml.SequenceEndEvent:
                return items
            ipath = (*path, len(items))
            marks[ipath] = mark(ev)
            items.append(self.value(ev, ipath))

    def _skip(self, ev: Any) -> None:
        """Consume the rest of the value ``ev`` starts."""
        depth = 1 if ev.__class__ in (yaml.MappingStartEvent, yaml.SequenceStartEvent) else 0
        while depth:
            cls = self.get().__class__
            if cls in (yaml.MappingStartEvent, yaml.SequenceStartEvent):
                depth += 1
            elif cls in (yaml.MappingEndEvent, yaml.SequenceEndEvent):
                depth -= 1
