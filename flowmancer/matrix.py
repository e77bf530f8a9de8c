"""Built-in plugin ``matrix``: a task entry run once per combination of parameter values.

At load time (``flowmancer_jobdef_loaded``, first of all plugins) each ``matrix:`` entry becomes its
instances (``jobdef.matrix``: see ``jobdef/matrix.py``), so every other plugin, ``--list``, ``-n``, the
checkpoint and incremental runs see them. At run time (``flowmancer_task_expand``) a matrix over a list an
upstream task made expands when its task is ready:

    list:  {task: ListChunks}                       # self.shared_dict["chunks"] = [0, 1, 2, 3, 4]
    count: {task: CountWords, dependencies: [list], matrix: {chunk: '$SHARED{chunks}'}}  # quoted in {...}
    merge: {task: Merge, dependencies: [count]}     # every instance of count

When ``count``'s dependencies are done, ``shared_dict["chunks"]`` gives the values: one task per combination
(with the matrix's other keys, ``include`` and ``exclude`` as at load time), named as load-time instances
(``count[chunk=0]``), validated against the class then (an invalid value fails ``count`` with the
parameter's error), run like any task; ``merge`` waits for all of them (none, for an empty list). ``count``
itself ends COMPLETED, "expanded into N tasks". A restart (``-r``) expands again from the checkpointed
``shared_dict``: the same names, so completed instances are restored and the failed ones rerun.
"""

from __future__ import annotations

from typing import Optional

from pydantic import ValidationError

from .config import Config
from .errors import ExpandError, Problem
from .job import Job, TaskRun
from .jobdef import LoadedJobDef
from .jobdef.matrix import InstanceMarks, expand, runtime_combinations
from .markers import hookimpl

#: the most tasks one fan-out may make (a runaway list is an error, not a million processes)
MAX_INSTANCES = 100_000


@hookimpl(tryfirst=True)
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> Optional[list[Problem]]:
    """Expand the load-time matrices first: the other plugins check the instances."""
    model = jobdef.model
    problems: list[Problem] = []
    keys = {name: set(t.matrix) for name, t in model.tasks.items() if t.matrix is not None}
    model.tasks, jobdef.matrix = expand(model.tasks, jobdef.marks, problems)
    if jobdef.matrix:  # an instance's problems at the lines of the entry that made it
        jobdef.marks = InstanceMarks(jobdef.marks, jobdef.matrix, keys)
    jobdef.matrix_expanded = True
    return problems


@hookimpl
def flowmancer_task_expand(job: Job, task: TaskRun) -> Optional[list[TaskRun]]:
    tdef = task.definition
    if not tdef.deferred:
        return None
    combos, problems = runtime_combinations(task.name, tdef.matrix or {}, job.shared_dict)
    if problems:
        raise ExpandError("; ".join(p.message for p in problems))
    if len(combos) > MAX_INSTANCES:
        raise ExpandError(f"the matrix makes {len(combos)} tasks, more than {MAX_INSTANCES}")
    new = []
    for i, (name, combo) in enumerate(combos):
        if name in job.tasks:
            raise ExpandError(f"an instance would be named '{name}', like another task of the job")
        params = {**tdef.parameters, **combo}
        try:
            instance = task.cls.model_validate(params)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            raise ExpandError(f"{name}: parameter {where}: {err['msg']} (got {err.get('input')!r})") from None
        definition = tdef.model_copy(update={"parameters": params, "matrix": None})
        index = len(job.tasks) + i
        new.append(TaskRun(name, definition, task.cls, instance, index, task.settings))
    return new
