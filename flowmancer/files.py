"""Files named or read on a user's behalf: safe, distinct, short file names, and reads that cannot hang.

A name made only of ASCII letters, digits, ``-``, ``_`` and ``.`` (not leading) is its own file name. Any
other name, or one longer than ``MAX_STEM``, becomes its safe part followed by ``+`` and a hash of the whole
name: ``+`` never appears in a name kept as it is, so two names never share a file (``a/b``, ``a_b`` and
``a b`` get three), and no name exceeds the file system's 255 bytes.

``read_regular`` reads a file that must be a regular one of bounded size: a FIFO (which would block), a
device such as ``/dev/zero`` (which never ends) or a folder is refused before anything is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_STEM = 100


def file_name(name: str, suffix: str = "") -> str:
    """The file name for ``name`` (``suffix`` such as ``.log`` appended)."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    if stem.startswith("."):  # not hidden, never "." or ".."
        stem = "_" + stem[1:]
    if stem and stem == name and len(stem) <= MAX_STEM:
        return stem + suffix
    import hashlib  # here: only unusual names need it (importing it loads OpenSSL: ~4 ms)

    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{stem[:MAX_STEM]}+{digest}{suffix}"


class NotRegular(OSError):
    """The path is not a regular file (``kind`` says what it is) or is larger than allowed."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}")
        self.kind = kind


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def read_regular(path: Path, max_bytes: int, follow: bool = True) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``; ``NotRegular`` if it is not one (or is
    larger), ``FileNotFoundError``/``OSError`` as ``open`` raises them (``ELOOP`` for a link with ``follow``
    off)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # a FIFO opens at once, then is refused
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, kind_of(st.st_mode))
        if st.st_size > max_bytes:
            raise NotRegular(path, f"{st.st_size / 1e6:.0f} MB, larger than the {max_bytes / 1e6:.0f} MB allowed")
        chunks: list[bytes] = []
        left = max_bytes + 1  # a file that grows while it is read stops here too
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
