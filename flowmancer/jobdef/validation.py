"""pydantic's validation errors as ``Problem``s: the file and line of the value, what was expected, a fix;
secret values never shown.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import BaseModel, ValidationError

from ..errors import Problem, closest
from .models import _MODEL_AT, JobDefinition
from .yamlfile import Marks, Path_, dotted, locate


def _model_at(loc: Path_, root: type[BaseModel] = JobDefinition) -> Optional[type[BaseModel]]:
    for pattern, model in _MODEL_AT.items():
        if len(pattern) == len(loc) and all(p == "*" or p == q for p, q in zip(pattern, loc, strict=True)):
            if pattern == ("config",):
                return root.model_fields["config"].annotation  # type: ignore[return-value]
            return root if pattern == () else model
    return None


_EXPECTED = {
    "dict": "a mapping (key: value lines, or {key: value})",
    "model": "a mapping (key: value lines, or {key: value})",
    "list": "a list (- item lines, or [a, b])",
    "string": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
}


def _fix_for(kind: str, ctx: Mapping[str, Any]) -> str:
    """A hint saying what to write instead, from pydantic's error type."""
    for prefix, what in _EXPECTED.items():
        if kind.startswith(prefix):
            return f"write {what} here"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"use a value {bounds[kind]} {limit}"
    if kind == "literal_error":
        return f"use one of: {ctx.get('expected', '')}"
    if kind == "enum":
        return f"use one of: {ctx.get('expected', '')}"
    return "see the README's job definition reference"


def _is_secret(model: Optional[type[BaseModel]], loc: Any) -> bool:
    """Is the value at ``loc`` (inside ``model``) a ``SecretStr``/``SecretBytes``? Then it is never shown."""
    for part in loc:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        if field is None:
            return False
        text = str(field.annotation)
        if "Secret" in text:
            return True
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return False


def _friendly(
    err: Mapping[str, Any], noun: str, loc: Path_, model: Optional[type[BaseModel]], root: type[BaseModel]
) -> tuple[str, str]:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = model if model is not None and len(err["loc"]) == 1 else _model_at(loc[:-1], root)
        known = list(model.model_fields) if model else []
        close = closest(str(loc[-1]), known)
        hint = f"did you mean '{close}'?" if close else (f"known {noun}s: {', '.join(known)}" if known else "")
        return f"unknown {noun} '{loc[-1]}'", hint
    if kind == "missing":
        return f"missing required {noun} '{loc[-1]}'", f"add `{loc[-1]}: ...` here"
    got = err.get("input")
    if _is_secret(model, err["loc"]):
        return f"{err['msg']} (value hidden: a secret)", ""
    shown = type(got).__name__ if isinstance(got, (dict, list)) else repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{err['msg']} (got {shown})", _fix_for(kind, err.get("ctx") or {})


def problems_from_validation(
    exc: ValidationError,
    marks: Marks,
    prefix: Path_ = (),
    noun: str = "key",
    hint: str = "",
    model: Optional[type[BaseModel]] = None,
    root: type[BaseModel] = JobDefinition,
) -> list[Problem]:
    """One ``Problem`` per pydantic error; ``model`` is what was validated at ``prefix``."""
    out = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        msg, own_hint = _friendly(err, noun, loc, model, root)
        own_hint = "; ".join(h for h in (own_hint, hint) if h)
        out.append(Problem(msg, locate(marks, loc), where=dotted(loc), hint=own_hint))
    return out


def _prune(data: dict[Any, Any], errors: list[Any]) -> dict[Any, Any]:
    """Drop the parts that failed schema validation so the rest can still be checked."""
    bad_top: set[Any] = set()
    bad_tasks: set[Any] = set()
    for err in errors:
        loc = err["loc"]
        if loc and loc[0] == "tasks" and len(loc) >= 2:
            bad_tasks.add(loc[1])
        elif loc:
            bad_top.add(loc[0])
    pruned = {k: v for k, v in data.items() if k not in bad_top}
    tasks = data.get("tasks")
    pruned["tasks"] = (
        {k: v for k, v in tasks.items() if k not in bad_tasks}
        if isinstance(tasks, dict) and "tasks" not in bad_top
        else {}
    )
    return pruned
