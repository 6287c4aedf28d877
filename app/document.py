"""The editor's document: a deephtm Graph plus invertible editing operations. No Qt here.

Every edit is a list of small operations (tuples). Applying an operation returns its exact
inverse, so an undo command only has to replay inverses in reverse order; comparing
Graph.to_dict() before and after an undo is therefore exact by construction.

Operations:
  ("add_node", node_dict, index|None)      ("remove_node", node_id)
  ("add_edge", edge_dict, index|None)      ("remove_edge", edge_key)
  ("set_params", node_id, params)          ("set_ui", node_id, ui)
  ("set_delay", edge_key, delay)           ("rename", old_id, new_id)
  ("set_groups", groups)                   ("set_training", training_dict)
  ("set_meta", name, description)
An edge_key is (src, src_port, dst, dst_port).
"""
from __future__ import annotations

import copy
import math
import re
from typing import Callable

from deephtm.graph import registry
from deephtm.graph.graphfile import ID_RE, EdgeSpec, Graph, NodeSpec
from deephtm.graph.spec import Port
from deephtm.graph.training import TrainingConfig

EdgeKey = tuple  # (src, src_port, dst, dst_port)
Op = tuple


def edge_key(e: EdgeSpec) -> EdgeKey:
    return (e.src, e.src_port, e.dst, e.dst_port)


def edge_from_dict(d: dict) -> EdgeSpec:
    src, src_port = d["from"].split(".")
    dst, dst_port = d["to"].split(".")
    return EdgeSpec(src, src_port, dst, dst_port, int(d.get("delay", 0)))


def new_graph() -> Graph:
    return Graph(name="untitled")


class Document:
    """Owns the Graph being edited. Views subscribe with add_listener(fn(op_name))."""

    def __init__(self, graph: Graph | None = None):
        self.graph = graph if graph is not None else new_graph()
        self._listeners: list[Callable[[str], None]] = []
        self.revision = 0  # bumps on every applied operation (autosave, run panel)
        self._index: dict[str, NodeSpec] | None = None  # id -> node; rebuilt after each change

    # ---- observers ----------------------------------------------------------
    def add_listener(self, fn: Callable[[str], None]) -> None:
        self._listeners.append(fn)

    def _notify(self, what: str) -> None:
        self._index = None
        self.revision += 1
        for fn in list(self._listeners):
            fn(what)

    def replace_graph(self, graph: Graph) -> None:
        """Load another graph (open, new, recovery); not an undoable edit."""
        self.graph = graph
        self._notify("reset")

    # ---- queries ------------------------------------------------------------
    def node(self, node_id: str) -> NodeSpec | None:
        # Graph.node() is a linear search; the canvas asks per edge and port, so index
        if self._index is None:
            self._index = {}
            for n in self.graph.nodes:
                self._index.setdefault(n.id, n)
        return self._index.get(node_id)

    def edge(self, key: EdgeKey) -> EdgeSpec | None:
        for e in self.graph.edges:
            if edge_key(e) == key:
                return e
        return None

    def edges_of(self, node_ids) -> list[EdgeSpec]:
        ids = set(node_ids)
        return [e for e in self.graph.edges if e.src in ids or e.dst in ids]

    def inbound(self, node_id: str, port: str) -> EdgeSpec | None:
        for e in self.graph.edges:
            if e.dst == node_id and e.dst_port == port:
                return e
        return None

    def ports(self, node_id: str) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        """(inputs, outputs) of a node. An unknown type gets the ports its edges name, so
        the node can still be drawn and its edges repaired."""
        spec = self.node(node_id)
        cls = registry.get(spec.type) if spec else None
        if cls is not None:
            return cls.inputs, cls.outputs
        ins = tuple(dict.fromkeys(e.dst_port for e in self.graph.edges if e.dst == node_id))
        outs = tuple(dict.fromkeys(e.src_port for e in self.graph.edges if e.src == node_id))
        return tuple(Port(p) for p in ins), tuple(Port(p) for p in outs)

    def port(self, node_id: str, port: str, direction: str) -> Port | None:
        ins, outs = self.ports(node_id)
        for p in ins if direction == "in" else outs:
            if p.name == port:
                return p
        return None

    def position(self, node_id: str) -> tuple[float, float]:
        ui = self.node(node_id).ui
        return coordinate(ui.get("x")), coordinate(ui.get("y"))

    def unique_id(self, base: str, also_taken=()) -> str:
        """base if it is free, else base_2, base_3...; a copy of sp_2 becomes sp_3."""
        base = "".join(c if c.isalnum() or c in "_-" else "_" for c in base)[:56] or "node"
        if not ID_RE.match(base):
            base = "n_" + base
        taken = {n.id for n in self.graph.nodes} | {g["id"] for g in self.graph.groups} | set(also_taken)
        if base not in taken:
            return base
        stem = re.sub(r"_\d+$", "", base) or base
        i = 2
        while f"{stem}_{i}" in taken:
            i += 1
        return f"{stem}_{i}"

    # ---- applying operations ------------------------------------------------
    def apply(self, op: Op, notify: bool = True) -> Op:
        """Apply one operation and return the operation that undoes it exactly."""
        inverse = getattr(self, "_op_" + op[0])(*op[1:])
        if notify:
            self._notify(op[0])
        else:
            self._index = None
        return inverse

    def apply_all(self, ops: list[Op]) -> list[Op]:
        """Apply ops in order; returns their inverses in the order they must be applied.
        Listeners hear once, after the last: an auto-layout of 27 nodes redraws once."""
        inverses = [self.apply(op, notify=False) for op in ops]
        if ops:
            self.revision += len(ops) - 1
            self._notify(ops[-1][0] if len({op[0] for op in ops}) == 1 else "batch")
        return inverses[::-1]

    def _op_add_node(self, d: dict, index: int | None) -> Op:
        spec = NodeSpec(d["id"], d["type"], copy.deepcopy(d.get("params", {})), copy.deepcopy(d.get("ui", {})))
        if self.graph.node(spec.id) is not None:
            raise ValueError(f"node '{spec.id}' exists")
        self.graph.nodes.insert(len(self.graph.nodes) if index is None else index, spec)
        return ("remove_node", spec.id)

    def _op_remove_node(self, node_id: str) -> Op:
        i = next(i for i, n in enumerate(self.graph.nodes) if n.id == node_id)
        spec = self.graph.nodes.pop(i)
        return ("add_node", spec.to_dict(), i)

    def _op_add_edge(self, d: dict, index: int | None) -> Op:
        e = edge_from_dict(d)
        self.graph.edges.insert(len(self.graph.edges) if index is None else index, e)
        return ("remove_edge", edge_key(e))

    def _op_remove_edge(self, key: EdgeKey) -> Op:
        i = next(i for i, e in enumerate(self.graph.edges) if edge_key(e) == tuple(key))
        e = self.graph.edges.pop(i)
        return ("add_edge", e.to_dict(), i)

    def _op_set_params(self, node_id: str, params: dict) -> Op:
        spec = self.graph.node(node_id)
        old, spec.params = spec.params, copy.deepcopy(params)
        return ("set_params", node_id, old)

    def _op_set_ui(self, node_id: str, ui: dict) -> Op:
        spec = self.graph.node(node_id)
        old, spec.ui = spec.ui, copy.deepcopy(ui)
        return ("set_ui", node_id, old)

    def _op_set_delay(self, key: EdgeKey, delay: int) -> Op:
        e = self.edge(tuple(key))
        old, e.delay = e.delay, int(delay)
        return ("set_delay", key, old)

    def _op_rename(self, old: str, new: str) -> Op:
        self.graph.node(old).id = new
        for e in self.graph.edges:
            if e.src == old:
                e.src = new
            if e.dst == old:
                e.dst = new
        for g in self.graph.groups:
            g["nodes"] = [new if m == old else m for m in g.get("nodes", [])]
        return ("rename", new, old)

    def _op_set_groups(self, groups: list) -> Op:
        old, self.graph.groups = self.graph.groups, copy.deepcopy(groups)
        return ("set_groups", old)

    def _op_set_training(self, d: dict) -> Op:
        old, self.graph.training = self.graph.training.to_dict(), TrainingConfig.from_dict(d)
        return ("set_training", old)

    def _op_set_meta(self, name: str, description: str) -> Op:
        old = ("set_meta", self.graph.name, self.graph.description)
        self.graph.name, self.graph.description = name, description
        return old


def is_coordinate(value) -> bool:
    """A usable ui position: a finite number (a hand-edited file may hold "left" or null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def coordinate(value) -> float:
    return float(value) if is_coordinate(value) else 0.0


def type_base_id(type_name: str) -> str:
    """'htm.sp' -> 'sp': the short part of a type name makes a readable default id; where
    two types share it ('encoder.mlp', 'decoder.mlp'), the first part says more."""
    head, _, short = type_name.rpartition(".")
    if head and any(t != type_name and t.rpartition(".")[2] == short for t in registry.types()):
        return head
    return short

