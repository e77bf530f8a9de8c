"""What a task's result depends on, as digests: its code, its parameters, its input and output files.

Code is compared as syntax trees with docstrings removed, so comments, blank lines, formatting and
docstrings never count as a change. A task's code is its class's module and every module of the app root
that module imports, transitively (found from the ``import`` statements, resolved through ``sys.modules``:
the collector imported them all already). Installed packages are not hashed; the distributions they come
from are recorded by version.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, SecretBytes, SecretStr

_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))
#: how much of a parameter's value an explanation shows
SHOWN = 60
_CHUNK = 1 << 20


def _sha256() -> Any:
    """A new SHA-256; hashlib is imported on first use, not with this module: importing it loads OpenSSL
    (~4 ms), and every run imports this plugin, incremental or not."""
    import hashlib

    return hashlib.sha256()


def digest(data: bytes) -> str:
    h = _sha256()
    h.update(data)
    return str(h.hexdigest()[:32])


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]


def source_digest(source: bytes) -> tuple[str, ast.Module]:
    """The digest of a module's normalised syntax tree (no docstrings, no positions), and the tree."""
    tree = ast.parse(source)
    _strip_docstrings(tree)
    return digest(ast.dump(tree, annotate_fields=False, include_attributes=False).encode()), tree


def _imported_names(tree: ast.Module, package: str) -> list[str]:
    """Every module name an ``import`` anywhere in ``tree`` may load (``a.b.c`` also means ``a`` and ``a.b``)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names += [".".join(parts[: i + 1]) for i in range(len(parts))]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod:
                continue
            parts = mod.split(".")
            names += [".".join(parts[: i + 1]) for i in range(len(parts))]
            names += [f"{mod}.{alias.name}" for alias in node.names]  # a submodule imported by name
    return names


class CodeIndex:
    """Digests and import closures of the app root's modules, each file read and parsed once per run."""

    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        self.prefix = os.path.join(self.root, "")
        self._files: dict[str, tuple[str, list[str], list[str]]] = {}  # module -> (digest, app imports, libraries)
        self._closure: dict[str, dict[str, str]] = {}
        self._dists: Optional[dict[str, list[str]]] = None

    def _mine(self, file: Optional[str]) -> bool:
        return bool(file) and str(file).startswith(self.prefix) and "-packages" + os.sep not in str(file)

    def rel(self, file: str) -> str:
        return os.path.relpath(file, self.root)

    def _scan(self, name: str) -> tuple[str, list[str], list[str]]:
        got = self._files.get(name)
        if got is not None:
            return got
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        app: list[str] = []
        libs: list[str] = []
        try:
            with open(str(file), "rb") as f:
                dig, tree = source_digest(f.read())
        except (OSError, SyntaxError, ValueError, TypeError):
            dig, tree = "unreadable", None
        if tree is not None:
            package = getattr(module, "__package__", None) or ""
            for imported in dict.fromkeys(_imported_names(tree, package)):
                other = sys.modules.get(imported)
                if other is None or other is module:
                    continue
                ofile = getattr(other, "__file__", None)
                if self._mine(ofile):
                    app.append(imported)
                elif "." not in imported and imported not in _STDLIB and imported != "flowmancer":
                    libs.append(imported)
        got = self._files[name] = (dig, app, libs)
        return got

    def closure(self, module: str) -> dict[str, str]:
        """``{file relative to the app root: digest}`` of ``module`` and the app modules it imports, transitively."""
        done = self._closure.get(module)
        if done is not None:
            return done
        out: dict[str, str] = {}
        seen = {module}
        stack = [module]
        while stack:
            name = stack.pop()
            file = getattr(sys.modules.get(name), "__file__", None)
            if not file:
                continue
            dig, app, _ = self._scan(name)
            out[self.rel(file)] = dig
            for other in app:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        self._closure[module] = out = dict(sorted(out.items()))
        return out

    def libraries(self, module: str) -> dict[str, str]:
        """``{distribution: version}`` of the installed packages imported by ``module``'s code closure."""
        tops: set[str] = set()
        names = [module]
        seen = {module}
        while names:
            name = names.pop()
            _, app, libs = self._scan(name)
            tops.update(libs)
            for other in app:
                if other not in seen:
                    seen.add(other)
                    names.append(other)
        if not tops:
            return {}
        from importlib import metadata

        if self._dists is None:
            self._dists = dict(metadata.packages_distributions())
        out: dict[str, str] = {}
        for top in sorted(tops):
            for dist in self._dists.get(top, ()):
                try:
                    out[dist] = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    pass
        return out


def _plain(value: Any) -> Any:
    """A parameter value as JSON can hold it, secrets included (they are only ever digested)."""
    if isinstance(value, (SecretStr, SecretBytes)):
        return {"secret": digest(str(value.get_secret_value()).encode())}
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _shown(value: Any) -> str:
    if isinstance(value, (SecretStr, SecretBytes)):
        return "**********"
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def parameters(instance: BaseModel) -> dict[str, list[str]]:
    """``{parameter: [digest, how an explanation shows it]}`` of a validated task instance."""
    out: dict[str, list[str]] = {}
    for name in type(instance).model_fields:
        value = getattr(instance, name, None)
        data = json.dumps(_plain(value), sort_keys=True, default=repr).encode()
        out[name] = [digest(data), _shown(value)]
    return out


def expand(root: Path, patterns: list[str]) -> dict[str, list[str]]:
    """``{pattern: [files, relative to the app root where inside it]}``; a folder stands for its files."""
    out: dict[str, list[str]] = {}
    base = str(root)
    for pattern in patterns:
        full = os.path.join(base, os.path.expanduser(pattern))
        files: set[str] = set()
        for hit in glob.glob(full, recursive=True):
            if os.path.isdir(hit):
                for d, _, names in os.walk(hit):
                    files.update(os.path.join(d, n) for n in names)
            elif os.path.isfile(hit):
                files.add(hit)
        out[pattern] = sorted(os.path.relpath(f, base) if f.startswith(os.path.join(base, "")) else f for f in files)
    return out


def file_digest(root: Path, rel: str, known: Optional[list[Any]] = None) -> Optional[list[Any]]:
    """``[digest, size, mtime_ns]`` of a file (``None``: it does not exist). ``known``: what was recorded;
    when size and modification time still match it, the file is not read again."""
    path = os.path.join(str(root), rel)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if known is not None and len(known) == 3 and known[1] == st.st_size and known[2] == st.st_mtime_ns:
        return list(known)
    h = _sha256()
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
    except OSError:
        return None
    return [h.hexdigest()[:32], st.st_size, st.st_mtime_ns]


def files(root: Path, patterns: list[str], known: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, Any]:
    """``{pattern: {file: [digest, size, mtime_ns]}}`` of what the patterns match now."""
    out: dict[str, Any] = {}
    for pattern, matched in expand(root, patterns).items():
        before = (known or {}).get(pattern) or {}
        here: dict[str, Any] = {}
        for rel in matched:
            d = file_digest(root, rel, before.get(rel))
            if d is not None:
                here[rel] = d
        out[pattern] = here
    return out
