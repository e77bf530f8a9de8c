"""``$ENV{NAME}``, ``$VAR{NAME}`` and ``$SYS{NAME}`` in string values, with ``:default``; keys are left alone."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from ..errors import Problem
from .yamlfile import Marks, Path_, dotted, locate

_SUBST = re.compile(r"\$(ENV|VAR|SYS)\{([^}:]*)(?::([^}]*))?\}")


def substitute(
    data: Any,
    paths: Iterable[Path_],
    marks: Marks,
    sources: Mapping[str, Mapping[str, str]],
    problems: list[Problem],
) -> None:
    """Replace ``$KIND{NAME}`` / ``$KIND{NAME:default}`` in place, in the string values at ``paths`` (those
    that hold a ``$``, as ``read_yaml`` found them: the rest of a big job is never walked)."""
    for path in paths:
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        value = parent[path[-1]]
        if isinstance(value, str):  # a duplicate key's later value may have replaced the one found
            parent[path[-1]] = _substitute(value, path, marks, sources, problems)


def _substitute(
    data: str, path: Path_, marks: Marks, sources: Mapping[str, Mapping[str, str]], problems: list[Problem]
) -> str:
    def repl(m: re.Match[str]) -> str:
        kind, name, default = m.group(1), m.group(2), m.group(3)
        value = sources[kind].get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        hint = {
            "ENV": f"export {name}=... before running, or write $ENV{{{name}:default}}",
            "VAR": f"pass --var {name}=..., or write $VAR{{{name}:default}}",
            "SYS": f"known names: {', '.join(sorted(sources['SYS']))}",
        }[kind]
        problems.append(Problem(f"{m.group(0)} is not set", locate(marks, path), where=dotted(path), hint=hint))
        return m.group(0)

    return _SUBST.sub(repl, data)
