"""``$ENV{NAME}``, ``$VAR{NAME}`` and ``$SYS{NAME}`` in string values, with ``:default``; keys are left alone."""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import Problem
from .yamlfile import Marks, Path_, dotted, locate

_SUBST = re.compile(r"\$(ENV|VAR|SYS)\{([^}:]*)(?::([^}]*))?\}")


def substitute(
    data: Any, marks: Marks, sources: Mapping[str, Mapping[str, str]], problems: list[Problem], path: Path_ = ()
) -> Any:
    """Replace ``$KIND{NAME}`` / ``$KIND{NAME:default}`` in every string scalar, keys excluded."""
    if isinstance(data, dict):
        return {k: substitute(v, marks, sources, problems, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, marks, sources, problems, (*path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

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
