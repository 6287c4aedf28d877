"""Hierarchy: named regions of nodes (the file's top-level "groups"), without Qt.

A group is {"id", "title", "nodes": [member ids], "collapsed": bool}. Members are node ids
or ids of other groups, so regions nest. Training ignores groups; only the editor reads them.
A collapsed group is drawn as one node whose ports are the member ports wired to the outside.
"""
from __future__ import annotations

import copy
import re

from deephtm.graph import registry
from deephtm.graph.graphfile import Graph

from .document import Document, Op


def group(graph: Graph, gid: str) -> dict | None:
    for g in graph.groups:
        if g["id"] == gid:
            return g
    return None


def parent_map(graph: Graph) -> dict[str, str]:
    """member id (node or group) -> id of the group that directly contains it."""
    parents: dict[str, str] = {}
    for g in graph.groups:
        for m in g.get("nodes", []):
            parents.setdefault(m, g["id"])
    return parents


def leaf_nodes(graph: Graph, gid: str) -> list[str]:
    """Node ids inside a group, at any depth, in member order."""
    by_id = {g["id"]: g for g in graph.groups}
    out: list[str] = []
    seen: set[str] = set()

    def walk(x: str) -> None:
        if x in seen:  # a file could make groups contain each other; don't loop
            return
        seen.add(x)
        if x in by_id:
            for m in by_id[x].get("nodes", []):
                walk(m)
        elif graph.node(x) is not None:
            out.append(x)

    walk(gid)
    return out


def ancestors(graph: Graph, member: str, parents: dict[str, str] | None = None) -> list[str]:
    """Groups containing member, innermost first."""
    parents = parent_map(graph) if parents is None else parents
    out: list[str] = []
    x = member
    while x in parents and parents[x] not in out:
        x = parents[x]
        out.append(x)
    return out


def representatives(graph: Graph) -> dict[str, str]:
    """For every node and group id: the id of the item that shows it on the canvas, i.e.
    its outermost collapsed ancestor group, or itself when no ancestor is collapsed."""
    parents = parent_map(graph)
    collapsed = {g["id"] for g in graph.groups if g.get("collapsed")}
    reps: dict[str, str] = {}
    for x in [n.id for n in graph.nodes] + [g["id"] for g in graph.groups]:
        rep = x
        for a in ancestors(graph, x, parents):
            if a in collapsed:
                rep = a
        reps[x] = rep
    return reps


def external_ports(graph: Graph, gid: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(inputs, outputs) of a collapsed group, as (node id, port name): member ports wired
    across its boundary, in edge order, then members' required inputs that nothing feeds
    yet, so a collapsed group can still be wired up."""
    leaves = leaf_nodes(graph, gid)
    inside = set(leaves)
    ins: dict[tuple[str, str], None] = {}
    outs: dict[tuple[str, str], None] = {}
    fed = set()
    for e in graph.edges:
        fed.add((e.dst, e.dst_port))
        if e.dst in inside and e.src not in inside:
            ins[(e.dst, e.dst_port)] = None
        if e.src in inside and e.dst not in inside:
            outs[(e.src, e.src_port)] = None
    for node_id in leaves:
        cls = registry.get(graph.node(node_id).type)
        for port in cls.inputs if cls else ():
            if not port.optional and (node_id, port.name) not in fed:
                ins[(node_id, port.name)] = None
    return list(ins), list(outs)


def group_ops(doc: Document, members: list[str], title: str) -> tuple[list[Op], str]:
    """Make a new group of the given node/group ids. Each member leaves its old direct
    group; the new group goes where they all were (or to the top level if they differ)."""
    graph = doc.graph
    order = {x: i for i, x in enumerate([n.id for n in graph.nodes] + [g["id"] for g in graph.groups])}
    members = sorted(dict.fromkeys(members), key=lambda m: order.get(m, len(order)))  # file order
    gid = doc.unique_id(_slug(title) or "group")
    parents = parent_map(graph)
    old_parents = {parents.get(m) for m in members}
    common = old_parents.pop() if len(old_parents) == 1 else None
    groups = copy.deepcopy(graph.groups)
    member_set = set(members)
    for g in groups:
        if common is not None and g["id"] == common:
            # put the new group where the first member was, keep the others' order
            kept, placed = [], False
            for m in g["nodes"]:
                if m in member_set:
                    if not placed:
                        kept.append(gid)
                        placed = True
                else:
                    kept.append(m)
            g["nodes"] = kept
        else:
            g["nodes"] = [m for m in g.get("nodes", []) if m not in member_set]
    groups.append({"id": gid, "title": title or gid, "nodes": list(members), "collapsed": False})
    return [("set_groups", groups)], gid


def ungroup_ops(doc: Document, gid: str) -> list[Op]:
    """Dissolve a group: its members return to its parent group (or the top level)."""
    graph = doc.graph
    target = group(graph, gid)
    if target is None:
        return []
    groups = []
    for g in copy.deepcopy(graph.groups):
        if g["id"] == gid:
            continue
        new_members = []
        for m in g.get("nodes", []):
            new_members.extend(target.get("nodes", []) if m == gid else [m])
        g["nodes"] = new_members
        groups.append(g)
    return [("set_groups", groups)]


def set_group_ops(doc: Document, gid: str, **changes) -> list[Op]:
    """Change a group's title or collapsed flag."""
    groups = copy.deepcopy(doc.graph.groups)
    for g in groups:
        if g["id"] == gid:
            g.update(changes)
    return [("set_groups", groups)]


def without_members(groups: list[dict], removed: set[str]) -> list[dict]:
    """Groups after deleting nodes: members dropped; groups left empty disappear too."""
    groups = copy.deepcopy(groups)
    while True:
        empty = {g["id"] for g in groups if not [m for m in g.get("nodes", []) if m not in removed]}
        for g in groups:
            g["nodes"] = [m for m in g.get("nodes", []) if m not in removed and m not in empty]
        kept = [g for g in groups if g["id"] not in empty]
        if len(kept) == len(groups):
            return kept
        removed = removed | empty
        groups = kept


def _slug(title: str) -> str:
    """'Region 1 (lower)' -> 'region_1_lower': a readable group id from its title."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:40]
