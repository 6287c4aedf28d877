"""Live validation for the editor (no Qt): the engine's resolve() decides what is wrong;
this module only locates each error on a node or edge and collects port shapes to show.

resolve() stops at the first error. A graph being built usually has several, so each
node's params are also checked on their own with the engine's check_params, and when the
whole graph does not resolve, shapes are still inferred node by node (with the node
types' own infer()) wherever the inputs are known, so the inspector has something to show.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

from deephtm.graph import registry
from deephtm.errors import GraphError
from deephtm.graph.graphfile import Graph
from deephtm.graph.resolve import check_params, resolve

_NODE_RE = re.compile(r"node '([^']+)'")
_EDGE_RE = re.compile(r"edge '([^'.]+)\.([^' ]+) -> ([^'.]+)\.([^']+)'")
_GROUP_RE = re.compile(r"group '([^']+)'")


@dataclass
class Problem:
    text: str  # the engine's one-line message (without the file name)
    node: str | None = None
    edge: tuple | None = None  # (src, src_port, dst, dst_port)
    group: str | None = None


@dataclass
class Analysis:
    problems: list[Problem] = field(default_factory=list)
    # (node id, "in"|"out", port) -> per-sample shape, or None when unknown
    shapes: dict[tuple[str, str, str], tuple | None] = field(default_factory=dict)
    ok: bool = False
    total_values: int = 0

    def node_problems(self, node_id: str) -> list[Problem]:
        return [p for p in self.problems if p.node == node_id or (p.edge and node_id in (p.edge[0], p.edge[2]))]


def locate(exc: GraphError) -> Problem:
    where = exc.where or ""
    text = f"{where}: {exc.message}" if where else exc.message
    m = _EDGE_RE.search(where)
    if m:
        return Problem(text, node=None, edge=m.groups())
    m = _NODE_RE.search(where)
    if m:
        return Problem(text, node=m.group(1))
    m = _GROUP_RE.search(where)
    return Problem(text, group=m.group(1) if m else None)


def analyze(graph: Graph) -> Analysis:
    a = Analysis()
    saved_path, graph.path = graph.path, None  # messages name nodes; the file is in the title
    try:
        resolved = resolve(graph)
    except GraphError as exc:
        a.problems.append(locate(exc))
        _best_effort_shapes(graph, a)
    else:
        a.ok = True
        a.total_values = resolved.total_values
        for nid, rn in resolved.nodes.items():
            for port, shape in rn.in_shapes.items():
                a.shapes[(nid, "in", port)] = shape
            for port, shape in rn.out_shapes.items():
                a.shapes[(nid, "out", port)] = shape
    finally:
        graph.path = saved_path
    unique = {}
    for p in a.problems:  # resolve() and the per-node pass can find the same error
        unique.setdefault(p.text, p)
    a.problems = list(unique.values())
    seen = set(unique)
    for spec in graph.nodes:  # every node's own params, not only the first bad one
        cls = registry.get(spec.type)
        try:
            if cls is None:
                raise GraphError(f"unknown node type '{spec.type}' (run 'deephtm nodes' for the list)",
                                 where=f"node '{spec.id}'")
            check_params(cls, spec.id, spec.params)
        except GraphError as exc:
            p = locate(exc)
            if p.text not in seen:
                seen.add(p.text)
                a.problems.append(p)
    return a


def _best_effort_shapes(graph: Graph, a: Analysis) -> None:
    params = {}
    for spec in graph.nodes:
        cls = registry.get(spec.type)
        if cls is None:
            continue
        try:
            params[spec.id] = (cls, check_params(cls, spec.id, spec.params))
        except GraphError:
            continue
    dag = nx.DiGraph()
    dag.add_nodes_from(params)
    feeds: dict[tuple[str, str], tuple[str, str]] = {}
    for e in graph.edges:
        if e.src in params and e.dst in params:
            feeds.setdefault((e.dst, e.dst_port), (e.src, e.src_port))
            if e.delay == 0 and e.src != e.dst:
                dag.add_edge(e.src, e.dst)
    try:
        order = list(nx.topological_sort(dag))
    except nx.NetworkXUnfeasible:
        order = list(params)
    for nid in order:
        cls, p = params[nid]
        shapes = {}
        for port in cls.inputs:
            src = feeds.get((nid, port.name))
            shapes[port.name] = a.shapes.get((src[0], "out", src[1])) if src else None
            a.shapes[(nid, "in", port.name)] = shapes[port.name]
        try:
            out = cls.infer(p, shapes)
        except GraphError as exc:
            if all(shapes[q.name] is not None or (nid, q.name) not in feeds for q in cls.inputs):
                # every wired input is known, so this is a real shape error of this node
                where = f"node '{nid}'" + (f": {exc.where}" if exc.where else "")
                a.problems.append(locate(GraphError(exc.message, where=where)))
            continue
        except Exception:  # an input it needs is not known yet
            continue
        for port, shape in out.items():
            a.shapes[(nid, "out", port)] = tuple(shape)
