"""Resolve a Graph against the node registry with networkx: check every name, param,
edge and shape, and find the execution order. Nothing is allocated here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from . import registry
from ..errors import GraphError, node_where
from .graphfile import EdgeSpec, Graph
from .training import TrainingConfig
from ..node import Node, Shape, flat_size
from .spec import kind_accepts

# Weights and state values a graph may allocate (float32: 4 bytes each, x4 with Adam's
# moments and gradients), plus the node outputs of every stream of a batch (times bptt in
# tbptt mode, whose steps stay in memory for the backward pass). Checked before anything
# is allocated.
MAX_GRAPH_VALUES = 60_000_000


@dataclass
class ResolvedNode:
    id: str
    cls: type[Node]
    params: dict[str, Any]
    in_shapes: dict[str, Shape | None] = field(default_factory=dict)
    out_shapes: dict[str, Shape] = field(default_factory=dict)


@dataclass
class Resolved:
    graph: Graph
    nodes: dict[str, ResolvedNode]
    order: list[str]  # execution order within one time step
    inbound: dict[str, dict[str, EdgeSpec]]  # node -> input port -> the edge feeding it
    dag: nx.DiGraph  # the graph without its delayed edges
    total_values: int = 0

    def shape_of(self, node_id: str, port: str) -> Shape | None:
        n = self.nodes[node_id]
        return n.out_shapes.get(port, n.in_shapes.get(port))


def check_params(cls: type[Node], node_id: str, given: dict[str, Any]) -> dict[str, Any]:
    declared = {p.name: p for p in cls.params}
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise GraphError(f"unknown param (known: {known})", where=node_where(node_id, param=name))
    return {name: (p.check(given[name], node_where(node_id, param=name)) if name in given else p.default)
            for name, p in declared.items()}


def resolve(graph: Graph, max_values: int = MAX_GRAPH_VALUES, training: TrainingConfig | None = None) -> Resolved:
    """training: the settings a run will use (default: the file's), for the batch budget."""
    try:
        return _resolve(graph, max_values, training or graph.training)
    except GraphError as exc:
        raise exc.located(graph.path)


def _resolve(graph: Graph, max_values: int, training: TrainingConfig) -> Resolved:
    nodes: dict[str, ResolvedNode] = {}
    position = {}
    for i, spec in enumerate(graph.nodes):
        if spec.id in nodes:
            raise GraphError("duplicate node id", where=node_where(spec.id))
        cls = registry.get(spec.type)
        if cls is None:
            raise GraphError(f"unknown node type '{spec.type}' (run 'deephtm nodes' for the list)",
                             where=node_where(spec.id))
        nodes[spec.id] = ResolvedNode(spec.id, cls, check_params(cls, spec.id, spec.params))
        position[spec.id] = i

    inbound: dict[str, dict[str, EdgeSpec]] = {nid: {} for nid in nodes}
    seen = set()
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    for e in graph.edges:
        _check_edge(e, nodes)
        key = (e.src, e.src_port, e.dst, e.dst_port)
        if key in seen:
            raise GraphError("duplicate edge", where=e.label())
        seen.add(key)
        if e.dst_port in inbound[e.dst]:
            other = inbound[e.dst][e.dst_port]
            raise GraphError(f"input already fed by '{other.from_ref}'", where=e.label())
        inbound[e.dst][e.dst_port] = e
        if e.delay == 0:
            dag.add_edge(e.src, e.dst)

    for nid, rn in nodes.items():
        for port in rn.cls.inputs:
            if not port.optional and port.name not in inbound[nid]:
                raise GraphError("input is not connected", where=node_where(nid, port=port.name))

    if not nx.is_directed_acyclic_graph(dag):
        cycle = [u for u, _ in nx.find_cycle(dag)]
        path = " -> ".join(cycle + [cycle[0]])
        raise GraphError(f"cycle {path} has no 'delay: 1' edge to break it", where=node_where(cycle[0]))

    order = list(nx.lexicographical_topological_sort(dag, key=lambda n: position[n]))
    resolved = Resolved(graph, nodes, order, inbound, dag)
    _infer_shapes(resolved, delayed_known=False)
    _infer_shapes(resolved, delayed_known=True)
    _check_groups(graph, nodes)

    total = 0
    for nid in order:
        rn = nodes[nid]
        total += int(rn.cls.param_count(rn.params, rn.in_shapes))
        if total > max_values:
            raise GraphError(f"the graph would allocate over {max_values:,} values; reduce its sizes",
                             where=node_where(nid))
    resolved.total_values = total
    per_stream = sum(flat_size(s) for rn in nodes.values() for s in rn.out_shapes.values())
    kept_steps = training.bptt if training.mode == "tbptt" else 1
    activations = training.batch_size * kept_steps * per_stream
    if total + activations > max_values:
        raise GraphError(f"the graph would allocate over {max_values:,} values ({total:,} weights and state, "
                         f"{activations:,} for batch_size {training.batch_size}); reduce batch_size or sizes",
                         where="training")
    return resolved


def _check_edge(e: EdgeSpec, nodes: dict[str, ResolvedNode]) -> None:
    for node_id in (e.src, e.dst):
        if node_id not in nodes:
            raise GraphError(f"unknown node '{node_id}'", where=e.label())
    out_port = nodes[e.src].cls.port(e.src_port, "out")
    if out_port is None:
        hint = " (it is an input)" if nodes[e.src].cls.port(e.src_port, "in") else ""
        raise GraphError(f"node '{e.src}' has no output port '{e.src_port}'{hint}", where=e.label())
    in_port = nodes[e.dst].cls.port(e.dst_port, "in")
    if in_port is None:
        hint = " (it is an output)" if nodes[e.dst].cls.port(e.dst_port, "out") else ""
        raise GraphError(f"node '{e.dst}' has no input port '{e.dst_port}'{hint}", where=e.label())
    if not kind_accepts(in_port.kind, out_port.kind):
        raise GraphError(f"a {out_port.kind} output cannot feed a {in_port.kind} input", where=e.label())
    if e.src == e.dst and e.delay == 0:
        raise GraphError(f"cycle {e.src} -> {e.src} has no 'delay: 1' edge to break it", where=e.label())


def _infer_shapes(r: Resolved, delayed_known: bool) -> None:
    """First pass: delayed inputs unknown (None). Second pass: with them, which must not
    change any output shape."""
    for nid in r.order:
        rn = r.nodes[nid]
        shapes: dict[str, Shape | None] = {}
        for port in rn.cls.inputs:
            e = r.inbound[nid].get(port.name)
            if e is None or (e.delay and not delayed_known):
                shapes[port.name] = None
            else:
                shapes[port.name] = tuple(r.nodes[e.src].out_shapes[e.src_port])
        try:
            out = rn.cls.infer(rn.params, shapes)
        except GraphError as exc:
            raise GraphError(exc.message, where=f"{node_where(nid)}: {exc.where}" if exc.where else node_where(nid)) from None
        out = {k: tuple(v) for k, v in out.items()}
        if delayed_known and out != rn.out_shapes:
            raise GraphError("output shapes change when the delayed inputs are known", where=node_where(nid))
        rn.in_shapes, rn.out_shapes = shapes, out


def _check_groups(graph: Graph, nodes: dict) -> None:
    group_ids = {g["id"] for g in graph.groups}
    if len(group_ids) != len(graph.groups):
        raise GraphError("duplicate group id", where="groups")
    for g in graph.groups:
        for member in g.get("nodes", []):
            if member not in nodes and member not in group_ids:
                raise GraphError(f"unknown member '{member}'", where=f"group '{g['id']}'")
