"""Built-in plugin ``schema``: ``flowmancer --schema`` prints the JSON Schema of the job YAML.

It includes the parameters of every collected ``@task`` class (a task's ``parameters`` are checked
against the class named in its ``task`` key), so YAML editors can complete and check job files.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any, Optional

from pydantic.json_schema import models_json_schema

from .collect import collect_directories, collect_packages
from .config import Config
from .errors import JobDefinitionError
from .jobdef import ConfigSchema, JobDefinition, TaskDef, read_jobdef
from .markers import hookimpl
from .registry import Registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON Schema of job files (with the collected task classes' parameters) and exit",
    )


#: a whole value that the loader replaces before validating it (so an int parameter may say ``$VAR{n:3}``)
SUBSTITUTION = {
    "type": "string",
    "pattern": r"\$(ENV|VAR|SYS)\{[^}]*\}",
    "description": "$ENV{NAME}, $VAR{NAME} or $SYS{NAME}, with an optional :default, replaced when the job loads",
}
_SUBST_REF = {"$ref": "#/$defs/flowmancer.Substitution"}
#: the blocks whose class key selects the schema of their ``parameters``: (def, class key, registry kind)
_BLOCKS = (
    ("TaskDef", "task", "task"),
    ("LoggerDef", "logger", "logger"),
    ("ExtensionDef", "extension", "extension"),
    ("CheckpointerDef", "checkpointer", "checkpointer"),
)


def job_schema(tasks: Registry, config_schema: Optional[ConfigSchema] = None) -> dict[str, Any]:
    """The JSON Schema of a job file: pydantic's, made to accept what the loader accepts before it validates
    (an empty key, a substitution where a number goes), with each block's ``parameters`` checked against the
    class its ``task:`` (``logger:``, ...) names (``if``/``then``: an error then points at that class's field,
    not at the closest field of all classes, as a bare ``oneOf`` would)."""
    root = (config_schema or ConfigSchema()).job_model()
    registries = {kind: tasks if kind == "task" else Registry(kind) for _, _, kind in _BLOCKS}
    classes = {
        kind: {n: c for n, c in sorted(reg.classes.items()) if not inspect.isabstract(c)}
        for kind, reg in registries.items()
    }
    wanted = [(root, "validation")] + [(c, "validation") for cs in classes.values() for c in cs.values()]
    refs, top = models_json_schema(wanted)  # one namespace: a class named like one of ours gets a distinct name
    defs: dict[str, Any] = top["$defs"]
    schema: dict[str, Any] = {"$schema": SCHEMA_DIALECT, **defs.pop(refs[(root, "validation")]["$ref"].split("/")[-1])}
    schema["title"] = "Flowmancer job definition"
    schema["properties"]["include"] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "YAML files merged before this one, in order (paths relative to the app root)",
    }
    schema["properties"]["tasks"]["minProperties"] = 1
    ours = {m.__name__ for m in _blocks()}
    uses = _ref_counts({**schema, "$defs": defs})
    for node in [schema, *(d for d in defs.values() if d.get("title") in ours)]:
        _empty_is_default(node, defs, uses)
    for def_name, key, kind in _BLOCKS:
        if def_name in defs and classes[kind]:
            params = {n: refs[(c, "validation")] for n, c in classes[kind].items()}
            required = {n: _needs_parameters(c) for n, c in classes[kind].items()}
            _select_by_class(defs[def_name], key, params, required, defs)
    schema = _allow_substitution({**schema, "$defs": defs})
    for def_name, key, kind in _BLOCKS:  # the class name selects the rules: never a substitution
        if def_name in defs and classes[kind]:
            schema["$defs"][def_name]["properties"][key] = {"type": "string", "enum": list(classes[kind])}
    _task_entry(schema["$defs"].get("TaskDef"))
    schema["$defs"]["flowmancer.Substitution"] = SUBSTITUTION
    return schema


def _task_entry(block: Any) -> None:
    """A task entry needs ``task:`` or ``command:``; a ``matrix:`` gives parameters their class checks only
    once expanded (its keys are parameters the entry's own ``parameters:`` may lack)."""
    if not isinstance(block, dict):
        return
    if "task" in block.get("required", ()):
        block["required"] = [k for k in block["required"] if k != "task"]
        block["anyOf"] = [{"required": ["task"]}, {"required": ["command"]}]
    for rule in block.get("allOf", ()):
        rule["if"]["not"] = {"required": ["matrix"]}


def _needs_parameters(cls: type[Any]) -> bool:
    return any(f.is_required() for f in cls.model_fields.values())


def _blocks() -> list[type[Any]]:
    """The models of the YAML's own blocks (``jobdef.models._Strict``'s), whose empty keys mean their defaults."""
    out, todo = [], [TaskDef.__mro__[1]]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def _empty_is_default(node: dict[str, Any], defs: dict[str, Any], uses: dict[str, int]) -> None:
    """Let every optional key of one of our blocks be null (YAML's empty value), as the loader does."""
    required = set(node.get("required", ()))
    for key, prop in node.get("properties", {}).items():
        if key not in required:
            node["properties"][key] = _or_null(prop, defs, uses)


def _or_null(prop: dict[str, Any], defs: dict[str, Any], uses: dict[str, int]) -> dict[str, Any]:
    """``prop`` or null, said without ``anyOf`` where possible: a validator then reports what is wrong with
    the value given instead of "is not of type 'null'"."""
    alts = prop.get("anyOf")
    if alts and len(alts) == 2 and {"type": "null"} in alts:  # pydantic's Optional[X]
        prop = {**[a for a in alts if a != {"type": "null"}][0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    ref = prop.get("$ref", "")
    target = defs.get(ref.split("/")[-1]) if ref.startswith("#/$defs/") else None
    if target is not None and uses.get(ref) == 1 and target.get("type") == "object":
        target["type"] = ["object", "null"]  # referenced only here: the block itself may be empty
        return prop
    typ = prop.get("type")
    if isinstance(typ, str) and not {"$ref", "anyOf", "oneOf", "allOf", "const"} & prop.keys():
        out = {**prop, "type": [typ, "null"]} if typ != "null" else prop
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(typ, list):
        return prop if "null" in typ else {**prop, "type": [*typ, "null"]}
    return {"anyOf": [prop, {"type": "null"}]}


def _ref_counts(node: Any, counts: Optional[dict[str, int]] = None) -> dict[str, int]:
    counts = {} if counts is None else counts
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            counts[node["$ref"]] = counts.get(node["$ref"], 0) + 1
        for value in node.values():
            _ref_counts(value, counts)
    elif isinstance(node, list):
        for value in node:
            _ref_counts(value, counts)
    return counts


def _select_by_class(
    block: dict[str, Any], key: str, params: dict[str, Any], required: dict[str, bool], defs: dict[str, Any]
) -> None:
    """``if KEY == NAME then parameters: NAME's schema`` for each class of the block's kind."""
    block["properties"][key] = {"type": "string", "enum": list(params)}
    rules = []
    for name, ref in params.items():
        params_schema = ref if required[name] else _or_null(ref, defs, {ref["$ref"]: 1})  # a class: only here
        then: dict[str, Any] = {"properties": {"parameters": params_schema}}
        if required[name]:
            then["required"] = ["parameters"]
        rules.append({"if": {"properties": {key: {"const": name}}, "required": [key]}, "then": then})
    block["allOf"] = rules


def _allow_substitution(node: Any) -> Any:
    """Let every scalar that is not free text be a substitution too (``$ENV{MC:2}`` for an int)."""
    if isinstance(node, list):
        return [_allow_substitution(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {k: _allow_substitution(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "then", "else", "prefixItems"):
            out[key] = _allow_substitution(value)
        else:
            out[key] = value
    types = out.get("type", [])
    types = set(types if isinstance(types, list) else [types])
    constrained = "string" in types and any(k in out for k in ("enum", "const", "pattern", "format", "maxLength"))
    if types & {"integer", "number", "boolean"} or constrained or ("enum" in out and not types):
        return {"anyOf": [out, _SUBST_REF]}
    return out


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    if not config.getoption("schema"):
        return None
    dirs: list[str] = []
    pkgs: list[str] = []
    cfg = ConfigSchema()
    config.hook.flowmancer_addconfig(schema=cfg)
    if config.jobdef_path is not None:  # its extension_directories/_packages say where more tasks are
        loaded = read_jobdef(config)
        dirs, pkgs = loaded.model.config.extension_directories, loaded.model.config.extension_packages
    problems = collect_directories(config.rootdir, dirs) + collect_packages(pkgs)
    if problems:
        raise JobDefinitionError(problems)
    print(json.dumps(job_schema(Registry("task"), cfg), indent=2))
    return 0


__all__ = ["JobDefinition", "job_schema"]
