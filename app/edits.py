"""Editing actions as lists of document operations (no Qt). The undo commands in
app/commands.py apply these lists; the canvas and inspector only decide which to build."""
from __future__ import annotations

import copy

import networkx as nx

from deephtm.graph.graphfile import ID_RE
from deephtm.graph.spec import kind_accepts

from . import grouping
from .document import Document, EdgeKey, Op, edge_key, type_base_id
from .layout import layered_positions

FRAGMENT_MIME = "application/x-deephtm-fragment"


def add_node_ops(doc: Document, type_name: str, x: float, y: float) -> tuple[list[Op], str]:
    node_id = doc.unique_id(type_base_id(type_name))
    d = {"id": node_id, "type": type_name, "params": {}, "ui": {"x": round(x), "y": round(y)}}
    return [("add_node", d, None)], node_id


def delete_ops(doc: Document, node_ids, edge_keys=()) -> list[Op]:
    """Delete nodes with every edge touching them, plus the given edges."""
    node_ids = [n for n in dict.fromkeys(node_ids) if doc.node(n) is not None]
    gone = set(node_ids)
    ops: list[Op] = []
    keys = [edge_key(e) for e in doc.graph.edges if e.src in gone or e.dst in gone]
    keys += [tuple(k) for k in edge_keys if tuple(k) not in keys and doc.edge(tuple(k)) is not None]
    ops += [("remove_edge", k) for k in keys]
    groups = grouping.without_members(doc.graph.groups, gone)
    if groups != doc.graph.groups:
        ops.append(("set_groups", groups))
    ops += [("remove_node", n) for n in node_ids]
    return ops


def connection_problem(doc: Document, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
    """Why this edge can't be made, in the engine's words, or None if it can."""
    out_port = doc.port(src, src_port, "out")
    in_port = doc.port(dst, dst_port, "in")
    if out_port is None or in_port is None:
        return "connect an output port to an input port"
    if not kind_accepts(in_port.kind, out_port.kind):
        return f"{_a(out_port.kind)} output cannot feed {_a(in_port.kind)} input"
    e = doc.inbound(dst, dst_port)
    if e is not None and (e.src, e.src_port) == (src, src_port):
        return "these ports are already connected"
    return None


def connect_ops(doc: Document, src: str, src_port: str, dst: str, dst_port: str) -> tuple[list[Op], str]:
    """Ops making the edge (replacing whatever fed that input), and a note for the user.
    An edge that would close a cycle becomes a delayed one (it carries the previous step's
    value), which is the only way the engine can run a cycle."""
    ops: list[Op] = []
    notes = []
    old = doc.inbound(dst, dst_port)
    if old is not None:
        ops.append(("remove_edge", edge_key(old)))
        notes.append(f"replaced {old.from_ref} -> {old.to_ref}")
    dag = nx.DiGraph()
    dag.add_edges_from((e.src, e.dst) for e in doc.graph.edges if e.delay == 0 and e is not old)
    delay = 0
    if src == dst or (dst in dag and src in dag and nx.has_path(dag, dst, src)):
        delay = 1
        notes.append("it closes a cycle, so it is delayed (carries the previous step's value)")
    ops.append(("add_edge", {"from": f"{src}.{src_port}", "to": f"{dst}.{dst_port}", "delay": delay}, None))
    return ops, "; ".join(notes)


def move_ops(doc: Document, positions: dict[str, tuple[float, float]]) -> list[Op]:
    ops = []
    for node_id, (x, y) in positions.items():
        spec = doc.node(node_id)
        if spec is None:
            continue
        x, y = round(x), round(y)
        if (spec.ui.get("x"), spec.ui.get("y")) != (x, y):
            ui = dict(spec.ui)
            ui["x"], ui["y"] = x, y
            ops.append(("set_ui", node_id, ui))
    return ops


def set_param_ops(doc: Document, node_id: str, name: str, value) -> list[Op]:
    params = dict(doc.node(node_id).params)
    params[name] = value
    return [("set_params", node_id, params)] if params != doc.node(node_id).params else []


def reset_param_ops(doc: Document, node_id: str, name: str) -> list[Op]:
    params = dict(doc.node(node_id).params)
    if name not in params:
        return []
    del params[name]
    return [("set_params", node_id, params)]


def rename_problem(doc: Document, old: str, new: str) -> str | None:
    if new == old:
        return None
    if not ID_RE.match(new):
        return "an id is letters, digits, '_' or '-', starting with a letter or '_'"
    if doc.node(new) is not None or grouping.group(doc.graph, new) is not None:
        return f"'{new}' is already taken"
    return None


def fragment(doc: Document, node_ids) -> dict:
    """The selected nodes with the edges among them and the groups wholly inside them,
    as a JSON-able dict (the clipboard format)."""
    ids = set(node_ids)
    nodes = [n.to_dict() for n in doc.graph.nodes if n.id in ids]
    edges = [e.to_dict() for e in doc.graph.edges if e.src in ids and e.dst in ids]
    groups = [copy.deepcopy(g) for g in doc.graph.groups
              if set(grouping.leaf_nodes(doc.graph, g["id"])) <= ids and grouping.leaf_nodes(doc.graph, g["id"])]
    return {"nodes": nodes, "edges": edges, "groups": groups}


def paste_ops(doc: Document, frag: dict, dx: float, dy: float) -> tuple[list[Op], list[str]]:
    """Ops adding a copy of a fragment, shifted by (dx, dy), with fresh ids."""
    ops: list[Op] = []
    rename: dict[str, str] = {}
    taken_now: list[str] = []
    for n in frag.get("nodes", []):
        if not isinstance(n, dict) or not isinstance(n.get("id"), str) or not isinstance(n.get("type"), str):
            continue
        new_id = _fresh(doc, n["id"], taken_now)
        rename[n["id"]] = new_id
        d = copy.deepcopy(n)
        d["id"] = new_id
        ui = dict(d.get("ui", {}))
        ui["x"] = round(float(ui.get("x", 0)) + dx)
        ui["y"] = round(float(ui.get("y", 0)) + dy)
        d["ui"] = ui
        ops.append(("add_node", d, None))
    for e in frag.get("edges", []):
        s, sp = e["from"].split(".")
        t, tp = e["to"].split(".")
        if s in rename and t in rename:
            ops.append(("add_edge", {"from": f"{rename[s]}.{sp}", "to": f"{rename[t]}.{tp}",
                                     "delay": e.get("delay", 0)}, None))
    new_groups = []
    for g in frag.get("groups", []):
        rename[g["id"]] = _fresh(doc, g["id"], taken_now)
    for g in frag.get("groups", []):
        members = [rename[m] for m in g.get("nodes", []) if m in rename]
        if members:
            new_groups.append({**copy.deepcopy(g), "id": rename[g["id"]], "nodes": members})
    if new_groups:
        ops.append(("set_groups", copy.deepcopy(doc.graph.groups) + new_groups))
    return ops, [rename[n["id"]] for n in frag.get("nodes", []) if n["id"] in rename]


def _fresh(doc: Document, base: str, taken_now: list[str]) -> str:
    # unique against the document and the ids this paste already handed out
    candidate = doc.unique_id(base, taken_now)
    taken_now.append(candidate)
    return candidate


def layout_ops(doc: Document, heights: dict[str, float] | None = None, only: set[str] | None = None) -> list[Op]:
    return move_ops(doc, layered_positions(doc.graph, heights, only))


def delay_ops(doc: Document, key: EdgeKey, delay: int) -> list[Op]:
    e = doc.edge(tuple(key))
    return [("set_delay", tuple(key), int(delay))] if e is not None and e.delay != int(delay) else []


def _a(kind: str) -> str:
    """'an sdr', 'an image', 'a tensor': the article goes by how the kind is spoken."""
    return f"{'an' if kind[:1] in 'aeiou' or kind == 'sdr' else 'a'} {kind}"
