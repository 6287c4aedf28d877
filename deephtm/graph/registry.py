"""The node registry: built-in node types plus plugins from the 'deephtm.nodes' entry points.

Plugins come only from installed entry points; a graph file can never name code to import.
"""
from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points

from ..node import Node

ENTRY_POINT_GROUP = "deephtm.nodes"
_registry: dict[str, type[Node]] | None = None


def _builtin_types() -> list[type[Node]]:
    from ..nodes import BUILTIN_MODULES

    found = []
    for mod_name in BUILTIN_MODULES:
        mod = importlib.import_module(f"deephtm.nodes.{mod_name}")
        found.append(mod.NODE)
    return found


def _plugin_types() -> list[type[Node]]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the tool down
            warnings.warn(f"deephtm: plugin {ep.name!r} failed to load: {exc}")
            continue
        obj = getattr(obj, "NODE", obj)
        if isinstance(obj, type) and issubclass(obj, Node) and obj.type_name:
            found.append(obj)
        else:
            warnings.warn(f"deephtm: plugin {ep.name!r} is not a Node subclass with a type_name")
    return found


def register(cls: type[Node]) -> type[Node]:
    """Add a node type at run time (tests, notebooks). Returns cls so it works as a decorator."""
    types()[cls.type_name] = cls
    return cls


def types() -> dict[str, type[Node]]:
    global _registry
    if _registry is None:
        reg: dict[str, type[Node]] = {}
        for cls in _builtin_types() + _plugin_types():
            reg.setdefault(cls.type_name, cls)  # built-ins win over a plugin of the same name
        _registry = reg
    return _registry


def get(type_name: str) -> type[Node] | None:
    return types().get(type_name)


def describe_all() -> list[dict]:
    return [cls.describe() for _, cls in sorted(types().items())]
