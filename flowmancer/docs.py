"""Built-in plugin ``docs``: ``flowmancer --docs [TOPIC]`` prints the README that was installed with the package.

The README is the package's long description, so every install has it (``importlib.metadata``), offline and
at the installed version: ``--docs`` lists its sections, ``--docs TOPIC`` prints the sections whose heading
contains TOPIC (``--docs "exit codes"``). ``--help`` points here and at the project's URL.
"""

from __future__ import annotations

import argparse
import re
from typing import Optional

from .config import Config
from .markers import hookimpl

URL = "https://github.com/natsunlee/flowmancer#readme"
_HEADING = re.compile(r"^(#{1,4}) (.+)$")


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--docs",
        nargs="?",
        const="",
        metavar="TOPIC",
        help="print the installed documentation: its sections, or those whose heading contains TOPIC; exit",
    )


def readme() -> str:
    """The installed README (the distribution's long description); empty if the metadata has none."""
    from importlib import metadata

    try:
        meta = metadata.metadata("flowmancer")
    except metadata.PackageNotFoundError:
        return ""
    return meta.get_payload() or meta.get("Description") or ""  # type: ignore[attr-defined,no-any-return]


def sections(text: str) -> list[tuple[int, str, str]]:
    """(level, heading, body with its heading) of each Markdown section, code blocks not mistaken for them."""
    out: list[tuple[int, str, list[str]]] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2).strip(), [line]))
        elif out:
            out[-1][2].append(line)
    return [(level, head, "\n".join(body).strip() + "\n") for level, head, body in out]


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    topic = config.getoption("docs")
    if topic is None:
        return None
    text = readme()
    if not text:
        print(f"the documentation is not installed with this copy of flowmancer; read it at {URL}")
        return 2
    found = sections(text)
    if not topic:
        print(f"Flowmancer documentation (the README installed with this version; online: {URL})\n")
        print("\n".join(f"{'  ' * (level - 1)}{head}" for level, head, _ in found if level <= 3))
        print('\nflowmancer --docs TOPIC prints the sections whose heading contains TOPIC, e.g. --docs "exit codes"')
        return 0
    hits = [body for _, head, body in found if topic.lower() in head.lower()]
    if not hits:
        print(f"no section heading contains {topic!r}; flowmancer --docs lists them")
        return 2
    print("\n".join(hits), end="")
    return 0
