"""The marker for hook implementations: ``@flowmancer.hookimpl``."""

from pluggy import HookimplMarker

hookimpl = HookimplMarker("flowmancer")
