"""Built-in plugin ``schema``: ``flowmancer --schema`` prints the JSON Schema of the job YAML.

It includes the parameters of every collected ``@task`` class (a task's ``parameters`` are checked
against the class named in its ``task`` key), so YAML editors can complete and check job files.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Annotated, Any, Dict, Literal, Optional, Union

from pydantic import Field, create_model

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


def _task_variant(name: str, cls: type[Any]) -> type[Any]:
    required = any(f.is_required() for f in cls.model_fields.values())
    params: Any = (cls, ...) if required else (Optional[cls], None)
    task_key: Any = (Literal[name], ...)
    model: type[Any] = create_model(f"Task_{name}", __base__=TaskDef, task=task_key, parameters=params)
    return model


def job_schema(tasks: Registry, config_schema: Optional[ConfigSchema] = None) -> dict[str, Any]:
    root = (config_schema or ConfigSchema()).job_model()
    variants = [_task_variant(n, c) for n, c in sorted(tasks.classes.items()) if not inspect.isabstract(c)]
    if variants:
        task_type: Any = Annotated[Union[tuple(variants)], Field(discriminator="task")]
        root = create_model("JobDefinition", __base__=root, tasks=(Dict[str, task_type], ...))
    schema: dict[str, Any] = {"$schema": SCHEMA_DIALECT, **root.model_json_schema()}
    schema["title"] = "Flowmancer job definition"
    schema["properties"]["include"] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "YAML files merged before this one, in order (paths relative to the app root)",
    }
    return schema


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
