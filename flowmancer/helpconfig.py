"""Built-in plugin ``helpconfig``: ``--plugins``, ``--trace-config`` and ``--debug-hooks``."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from .config import Config
from .markers import hookimpl


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("plugins")
    g.add_argument("--plugins", action="store_true", help="list the loaded plugins, where each came from, and exit")
    g.add_argument("--trace-config", action="store_true", help="list the loaded plugins, then run")
    g.add_argument("--debug-hooks", action="store_true", help="trace every hook call to stderr")


def plugin_lines(config: Config) -> list[str]:
    pm = config.pluginmanager
    plugins = [(n, p) for n, p in pm.list_name_plugin() if p is not None]
    width = max(len(n) for n, _ in plugins)
    lines = []
    for name, plugin in plugins:
        hooks = sorted(h.name.removeprefix("flowmancer_") for h in pm.get_hookcallers(plugin) or ())
        lines.append(f"{name:<{width}}  {pm.origins.get(name, 'registered at run time')}")
        lines.append(f"{'':<{width}}    hooks: {', '.join(hooks) or '-'}")
    return lines


@hookimpl
def flowmancer_configure(config: Config) -> None:
    if config.getoption("debug_hooks"):
        config.pluginmanager.trace.root.setwriter(sys.stderr.write)
        config.pluginmanager.enable_tracing()
    if config.getoption("trace_config"):
        print("\n".join(config.settings.describe()))
        print("plugins:\n" + "\n".join("  " + ln for ln in plugin_lines(config)))


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    if config.getoption("plugins"):
        print("\n".join(plugin_lines(config)))
        return 0
    return None
