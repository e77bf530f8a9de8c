"""Import the modules that hold ``@task`` (and logger/extension/checkpointer) classes.

Folders are searched recursively, with or without ``__init__.py``, the way pytest's ``prepend``
import mode does it: a file inside a package chain is imported by its dotted name with the folder
above the topmost package on ``sys.path``; a file in a plain folder is imported by its stem with its
own folder on ``sys.path``. Import failures become ``Problem``s naming the file and line.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

from .errors import Location, Problem

DEFAULT_DIRS = ("tasks", "extensions", "loggers")
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", "logs", ".flowmancer"}


def _module_name(path: Path, top: Optional[Path] = None) -> tuple[Path, str]:
    """(folder to put on sys.path, dotted module name) for a .py file.

    Inside a package chain that reaches above ``top`` (the collected folder): its dotted name from above the
    topmost package. Else, under ``top``: a name from ``top``'s parent, ``top`` and the folders below it being
    namespace packages (``tasks/sub/x.py`` is ``tasks.sub.x``), so ``from .helper import y`` works in a folder
    without ``__init__.py``. Outside any (or with a part that is no identifier): its stem, its folder on sys.path."""
    parts = [path.stem] if path.name != "__init__.py" else []
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if top is not None and (folder == top or top in folder.parents):
        names = path.relative_to(top.parent).with_suffix("").parts
        names = names[:-1] if names[-1] == "__init__" else names
        if all(n.isidentifier() for n in names):
            return top.parent, ".".join(names)
    return folder, ".".join(parts)


class _Siblings(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import helper`` in a module of a folder without ``__init__.py`` (which worked when such modules were
    named by their stem) gives the collected ``tasks.helper`` itself, not a second copy of it. Only for bare
    names no other module on ``sys.path`` has (see ``add_sibling_names``)."""

    names: dict[str, str] = {}  # bare name -> the collected module's name

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        real = self.names.get(fullname) if path is None else None  # top-level names only
        if real is None or (real not in sys.modules and importlib.util.find_spec(real) is None):
            return None  # not ours, or left from a run of another project in this process
        return importlib.machinery.ModuleSpec(fullname, self, origin=real)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.names[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # executed already, under its collected name


_SIBLINGS = _Siblings()
#: folders without ``__init__.py`` whose modules were collected under namespace names: also at the end of
#: ``sys.path``, so a process without the finder (a spawned interpreter, a Dask worker) still finds a bare
#: ``import helper`` (as a copy of its own)
_PLAIN: list[str] = []


def _add_siblings(files: list[tuple[Path, Path, str]]) -> None:
    """Let each bare name of a namespace-collected module (``helper`` for ``tasks.helper``) import it."""
    add_sibling_names(
        {
            path.stem: name
            for path, _, name in reversed(files)  # the first file of a stem wins
            if "." in name and path.name != "__init__.py" and not (path.parent / "__init__.py").is_file()
        }
    )


def add_sibling_names(names: dict[str, str], checked: bool = False) -> None:
    """Make ``names`` (bare name -> collected name) importable. A bare name some other module on ``sys.path``
    has (the standard library's ``copy``) is left to it; ``checked``: the caller did that (the fork server
    gets the scheduler's names)."""
    plain = {str(Path(p).resolve()) for p in _PLAIN}
    elsewhere = [p for p in sys.path if p and str(Path(p).resolve()) not in plain]
    for bare, name in names.items():
        if bare not in _SIBLINGS.names and (
            checked or importlib.machinery.PathFinder.find_spec(bare, elsewhere) is None
        ):
            _SIBLINGS.names[bare] = name
    if _SIBLINGS.names and _SIBLINGS not in sys.meta_path:
        sys.meta_path.insert(0, _SIBLINGS)  # before the path: the plain folders are on it too (see import_file)


def sibling_names() -> dict[str, str]:
    return dict(_SIBLINGS.names)


def forget_siblings() -> None:
    """Drop the bare names and plain folders collected so far (a later run in this process collects anew)."""
    _SIBLINGS.names.clear()
    _PLAIN.clear()


def _is_user_code(filename: str) -> bool:
    """Code of the user's project: not the standard library, an installed package or flowmancer itself."""
    import sysconfig  # only on this error path

    paths = sysconfig.get_paths()
    skip = {os.path.join(os.path.realpath(paths[k]), "") for k in ("stdlib", "platstdlib")}
    skip.add(os.path.join(os.path.dirname(os.path.realpath(__file__)), ""))
    real = os.path.realpath(filename)
    return not real.startswith(tuple(skip)) and f"-packages{os.sep}" not in real


def _describe_import_error(path: Path, exc: BaseException) -> Problem:
    if isinstance(exc, SyntaxError):
        loc = Location(exc.filename or str(path), exc.lineno or 1, exc.offset or 1)
        return Problem(
            f"syntax error in task module: {exc.msg}",
            loc,
            hint="fix the Python syntax; `python -m py_compile` checks it",
        )
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if "importlib" not in f.filename and not f.filename.startswith("<frozen")]
    user = [f for f in frames if _is_user_code(f.filename)]
    last = user[-1] if user else (frames[-1] if frames else None)  # the user's line, not json/decoder.py's
    loc = Location(last.filename, last.lineno or 1) if last else Location(str(path), 1)
    hint = "fix the error above: the module's top-level code runs when Flowmancer collects it"
    inner = frames[-1] if frames else None
    if inner is not None and last is not None and inner is not last:
        hint += f" (raised in {inner.filename}:{inner.lineno}, called from the line shown)"
    if isinstance(exc, ModuleNotFoundError):
        hint = f"install the package that provides '{exc.name}', or check the import spelling"
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return Problem(f"cannot import task module {path}: {detail}", loc, hint=hint)


def import_file(path: Path, top: Optional[Path] = None) -> list[Problem]:
    base, name = _module_name(path.resolve(), top.resolve() if top is not None else None)
    if not name or not all(p.isidentifier() for p in name.split(".")):
        return []  # not importable by name (e.g. "my-script.py"): not a task module
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    plain = str(path.parent.resolve())
    if "." in name and not (path.parent / "__init__.py").is_file() and plain not in sys.path:
        _PLAIN.append(plain)
        sys.path.append(plain)
    taken_file = getattr(sys.modules.get(name), "__file__", None)
    if taken_file and Path(taken_file).resolve() != path.resolve():
        # e.g. tasks/copy.py in a folder without __init__.py, while the stdlib's copy is imported:
        # import this file by its location, under a name of its own.
        return _import_by_location(path)
    try:
        module = importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - any import failure is the user's to see
        if isinstance(exc, KeyboardInterrupt):
            raise
        if "." in name and _shadowed(name):  # an installed package has the folder's name: import by location
            return _import_by_location(path)
        return [_describe_import_error(path, exc)]
    got = getattr(module, "__file__", None)
    if got and Path(got).resolve() != path.resolve():
        if "." in name and _shadowed(name):
            return _import_by_location(path)
        return [
            Problem(
                f"module name clash: {path} imports as '{name}', which is already {got}",
                Location(str(path), 1),
                hint="rename one of the files, or add an __init__.py so each gets a distinct package name",
            )
        ]
    return []


def _shadowed(name: str) -> bool:
    """Is the namespace package ``name`` starts with (``tasks``) a regular package or module from elsewhere?"""
    top = sys.modules.get(name.split(".")[0])
    return top is not None and getattr(top, "__file__", None) is not None


def import_by_location(path: Path, name: str, what: str = "task module") -> tuple[Optional[ModuleType], list[Problem]]:
    """Import a file under ``name`` (not by its path on sys.path); failures become a ``Problem``."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name], []
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        problem = _describe_import_error(path, exc)
        return None, [Problem(problem.message.replace("task module", what), problem.location, hint=problem.hint)]
    return module, []


def _import_by_location(path: Path) -> list[Problem]:
    import hashlib

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return import_by_location(path, f"flowmancer_collected_{path.stem}_{digest}")[1]


def iter_py_files(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                yield Path(dirpath) / fn


def collect_directories(
    rootdir: Path, extra: Iterable[str], where: str = "config.extension_directories"
) -> list[Problem]:
    """Import every module under the default folders and ``extra`` (relative to ``rootdir``)."""
    problems: list[Problem] = []
    folders: list[Path] = [rootdir / d for d in DEFAULT_DIRS if (rootdir / d).is_dir()]
    for i, d in enumerate(extra):
        folder = (rootdir / os.path.expanduser(d)).resolve()
        if not folder.is_dir():
            problems.append(
                Problem(
                    f"extension directory not found: {folder}",
                    where=f"{where}[{i}]",
                    hint="paths are relative to the app root; create the folder or fix the path",
                )
            )
            continue
        folders.append(folder)
    files = [(f, top) for top in folders for f in iter_py_files(top)]
    _add_siblings([(f, *_module_name(f.resolve(), top.resolve())) for f, top in files])
    for f, top in files:
        problems += import_file(f, top)
    return problems


def collect_packages(packages: Iterable[str], where: str = "config.extension_packages") -> list[Problem]:
    problems: list[Problem] = []
    for i, pkg in enumerate(packages):
        try:
            mod = importlib.import_module(pkg)
        except ModuleNotFoundError as exc:
            problems.append(
                Problem(
                    f"package '{pkg}' is not installed ({exc})",
                    where=f"{where}[{i}]",
                    hint=f"pip install it, or check the name '{pkg}'",
                )
            )
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(_describe_import_error(Path(getattr(exc, "filename", None) or pkg), exc))
            continue
        paths = getattr(mod, "__path__", None)
        if not paths:
            continue
        import pkgutil  # only now: most jobs name no package (start-up)

        for info in pkgutil.walk_packages(paths, prefix=f"{pkg}.", onerror=lambda _n: None):
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # noqa: BLE001
                problems.append(_describe_import_error(Path(info.name), exc))
    return problems
