"""The small boolean language of ``-k`` and ``-m`` (as in pytest): names, ``and``, ``or``, ``not``, parentheses.

    expr     := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" expr ")" | NAME

A NAME is any run of characters other than whitespace and parentheses; what it means is up to the
caller's matcher (``-k``: a substring of the task's name or class; ``-m``: one of its tags).
"""

from __future__ import annotations

import re
from typing import Callable, Union

from .errors import UsageError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
Node = Union[str, tuple]  # type: ignore[type-arg]


class Expression:
    def __init__(self, text: str, flag: str = "-k") -> None:
        self.text = text
        self.flag = flag
        self.tokens: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or not m.group(1):
                break
            self.tokens.append((m.group(1), m.start(1)))
            pos = m.end()
        self.i = 0
        if not self.tokens:
            self._error("empty expression", 0)
        self.tree = self._or()
        if self.i < len(self.tokens):
            tok, at = self.tokens[self.i]
            self._error(f"unexpected '{tok}'", at)

    def _error(self, what: str, at: int) -> None:
        raise UsageError(
            f"{self.flag} {self.text!r}: {what}\n  {self.text}\n  {' ' * at}^\n"
            "  expressions combine names with and, or, not and parentheses"
        )

    def _peek(self) -> str:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else ""

    def _take(self) -> str:
        tok = self._peek()
        self.i += 1
        return tok

    def _or(self) -> Node:
        node = self._and()
        while self._peek() == "or":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._peek() == "and":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> Node:
        at = self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)
        tok = self._take()
        if tok == "not":
            return ("not", self._not())
        if tok == "(":
            node = self._or()
            if self._take() != ")":
                self._error("missing ')'", len(self.text))
            return node
        if tok in ("", ")", "and", "or"):
            self._error("expected a name" if tok else "unexpected end of expression", at)
        return tok

    def evaluate(self, matches: Callable[[str], bool]) -> bool:
        def ev(node: Node) -> bool:
            if isinstance(node, str):
                return matches(node)
            op = node[0]
            if op == "not":
                return not ev(node[1])
            if op == "and":
                return ev(node[1]) and ev(node[2])
            return ev(node[1]) or ev(node[2])

        return ev(self.tree)
