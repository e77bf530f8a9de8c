"""The job YAML: read each file with line marks (``yamlfile``), merge ``include``s (``includes``), substitute
``$ENV{}``/``$VAR{}``/``$SYS{}`` (``substitution``), validate against the models (``models``), and turn
pydantic's errors into problems at file and line (``validation``). ``load.read_jobdef`` is the one way in.
Every problem is reported at once.
"""

from .includes import deep_merge
from .load import load_jobdef, read_jobdef
from .models import (
    MAX_MEMORY_MB,
    MAX_SECONDS,
    CheckpointerDef,
    ConfigDef,
    ConfigSchema,
    ExtensionDef,
    JobDefinition,
    LoadedJobDef,
    LoggerDef,
    TaskDef,
    TaskSettings,
)
from .substitution import substitute
from .validation import problems_from_validation

__all__ = [
    "MAX_MEMORY_MB",
    "MAX_SECONDS",
    "CheckpointerDef",
    "ConfigDef",
    "ConfigSchema",
    "ExtensionDef",
    "JobDefinition",
    "LoadedJobDef",
    "LoggerDef",
    "TaskDef",
    "TaskSettings",
    "deep_merge",
    "load_jobdef",
    "problems_from_validation",
    "read_jobdef",
    "substitute",
]
