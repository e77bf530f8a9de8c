"""File names for user-given names (task names, job names): safe, distinct, and short enough.

A name made only of ASCII letters, digits, ``-``, ``_`` and ``.`` (not leading) is its own file name. Any
other name, or one longer than ``MAX_STEM``, becomes its safe part followed by ``+`` and a hash of the whole
name: ``+`` never appears in a name kept as it is, so two names never share a file (``a/b``, ``a_b`` and
``a b`` get three), and no name exceeds the file system's 255 bytes.
"""

from __future__ import annotations

import hashlib

MAX_STEM = 100


def file_name(name: str, suffix: str = "") -> str:
    """The file name for ``name`` (``suffix`` such as ``.log`` appended)."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    if stem.startswith("."):  # not hidden, never "." or ".."
        stem = "_" + stem[1:]
    if stem and stem == name and len(stem) <= MAX_STEM:
        return stem + suffix
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{stem[:MAX_STEM]}+{digest}{suffix}"
