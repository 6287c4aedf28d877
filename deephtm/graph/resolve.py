"""Resolve a Graph against the node registry with networkx: check every name, param,
edge and shape, and find the execution order. Nothing is allocated here.

resolve() raises the first problem. analyse() goes on past problems where it can, for the
editor: it returns every problem, every shape it could infer, and warnings about graphs
that resolve but will not train as meant. Both run the same checks in the same order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from . import registry
from ..errors import GraphError, GraphWarning, ShapeError, Where, edge_where, node_where
from .graphfile import EdgeSpec, Graph
from .training import TrainingConfig
from ..node import Node, Shape, flat_size
from .spec import kind_accepts

# Weights and state values a graph may allocate (float32: 4 bytes each, x4 with Adam's
# moments and gradients), plus the node outputs of every stream of a batch (times bptt in
# tbptt mode, whose steps stay in memory for the backward pass). Checked before anything
# is allocated.
MAX_GRAPH_VALUES = 60_000_000
# analyse() stops looking after this many problems: nobody reads a longer list, and a
# hostile file could otherwise hold a hundred thousand of them.
MAX_PROBLEMS = 200


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



@dataclass
class Analysis:
    """What analyse() found. problems: errors in the order resolve() meets them, then
    warnings; shapes: (node id, "in"|"out", port) -> per-sample shape, None when unknown;
    resolved: the resolved graph, None when there is an error."""
    problems: list[GraphError] = field(default_factory=list)
    shapes: dict[tuple[str, str, str], Shape | None] = field(default_factory=dict)
    resolved: Resolved | None = None

    @property
    def errors(self) -> list[GraphError]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[GraphError]:
        return [p for p in self.problems if p.level == "warning"]


class _Enough(Exception):
    """MAX_PROBLEMS found: analyse() looks no further."""


class _Problems:
    """Where the checks report: resolve() raises the first problem, analyse() keeps them all."""

    def __init__(self, collect: bool):
        self.collect = collect
        self.found: list[GraphError] = []

    def report(self, exc: GraphError) -> None:
        if not self.collect:
            raise exc
        self.found.append(exc.with_traceback(None))  # a kept traceback would keep its frames alive
        if len(self.found) >= MAX_PROBLEMS:
            raise _Enough


def check_params(cls: type[Node], node_id: str, given: dict[str, Any]) -> dict[str, Any]:
    return _check_params(cls, node_id, given, _Problems(collect=False))


def _check_params(cls: type[Node], node_id: str, given: dict[str, Any], problems: _Problems) -> dict | None:
    """The node's params with defaults filled in, or None if any is wrong (each reported)."""
    declared = {p.name: p for p in cls.params}
    ok = True
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            problems.report(GraphError(f"unknown param (known: {known})", where=node_where(node_id, param=name)))
            ok = False
    values = {}
    for name, p in declared.items():
        try:
            values[name] = p.check(given[name], node_where(node_id, param=name)) if name in given else p.default
        except GraphError as exc:
            problems.report(exc)
            ok = False
    return values if ok else None


def resolve(graph: Graph, max_values: int = MAX_GRAPH_VALUES, training: TrainingConfig | None = None) -> Resolved:
    """training: the settings a run will use (default: the file's), for the batch budget."""
    try:
        return _check(graph, max_values, training or graph.training, _Problems(collect=False)).resolved
    except GraphError as exc:
        raise exc.located(graph.path)


def analyse(graph: Graph, max_values: int = MAX_GRAPH_VALUES, training: TrainingConfig | None = None) -> Analysis:
    """Every problem at once, for the editor and `deephtm validate`. A node whose inputs are
    unknown because of a problem upstream is skipped, not blamed. The first error is the
    one resolve() raises."""
    problems = _Problems(collect=True)
    try:
        a = _check(graph, max_values, training or graph.training, problems)
    except _Enough:
        a = Analysis(problems=[GraphError(f"stopped after {MAX_PROBLEMS} problems; fix these first")])
    a.problems = [p.located(graph.path) for p in problems.found + a.problems]
    return a


def _check(graph: Graph, max_values: int, training: TrainingConfig, problems: _Problems) -> Analysis:
    """The checks in resolve()'s order. A problem is reported, then what depends on it is
    left out: a node of an unknown type or with bad params, a refused edge, a cycle."""
    declared, nodes, untyped, position = _check_nodes(graph, problems)
    inbound, blocked, dag = _check_edges(graph, declared, untyped, problems)
    _check_inputs(declared, inbound, blocked, problems)
    cyclic = _check_cycles(dag, position, problems)
    acyclic = dag.subgraph(set(dag) - cyclic) if cyclic else dag
    order = list(nx.lexicographical_topological_sort(acyclic, key=lambda n: position[n]))
    resolved = Resolved(graph, nodes, order, inbound, dag)
    unknown = cyclic | (set(declared) - set(nodes))  # nodes whose output shapes cannot be inferred
    _infer_shapes(resolved, False, problems, unknown, blocked)
    _infer_shapes(resolved, True, problems, unknown, blocked)
    _check_groups(graph, position, problems)
    analysis = Analysis(problems=_loss_warnings(graph, declared) if problems.collect else [],
                        shapes=_known_shapes(declared, nodes, inbound, unknown))
    if not problems.found and _check_budget(resolved, max_values, training, problems):
        analysis.resolved = resolved
    return analysis


def _check_nodes(graph: Graph, problems: _Problems):
    declared: dict[str, type[Node]] = {}  # nodes of a known type, whether or not their params are good
    nodes: dict[str, ResolvedNode] = {}  # nodes of a known type with good params
    untyped: set[str] = set()  # nodes of an unknown type: their ports are unknown
    position = {}  # node id -> its index in the file, which orders independent nodes
    for i, spec in enumerate(graph.nodes):
        if spec.id in position:
            problems.report(GraphError("duplicate node id", where=node_where(spec.id)))
            continue
        position[spec.id] = i
        cls = registry.get(spec.type)
        if cls is None:
            problems.report(GraphError(f"unknown node type '{spec.type}' (run 'deephtm nodes' for the list)",
                                       where=node_where(spec.id)))
            untyped.add(spec.id)
            continue
        declared[spec.id] = cls
        params = _check_params(cls, spec.id, spec.params, problems)
        if params is not None:
            nodes[spec.id] = ResolvedNode(spec.id, cls, params)
    return declared, nodes, untyped, position


def _check_edges(graph: Graph, declared: dict, untyped: set, problems: _Problems):
    inbound: dict[str, dict[str, EdgeSpec]] = {nid: {} for nid in declared}
    blocked = set()  # (node, input) fed by an edge with a problem: connected, but its shape is unknown
    seen = set()
    dag = nx.DiGraph()
    dag.add_nodes_from(declared)
    for e in graph.edges:
        if e.src in untyped or e.dst in untyped:  # already blamed on the node
            blocked.add((e.dst, e.dst_port))
            continue
        key = (e.src, e.src_port, e.dst, e.dst_port)
        try:
            _check_edge(e, declared)
            if key in seen:
                raise GraphError("duplicate edge", where=_edge_where(e))
            if e.dst_port in inbound[e.dst]:
                other = inbound[e.dst][e.dst_port]
                raise GraphError(f"input already fed by '{other.from_ref}'", where=_edge_where(e))
        except GraphError as exc:
            problems.report(exc)
            blocked.add((e.dst, e.dst_port))
            continue
        seen.add(key)
        inbound[e.dst][e.dst_port] = e
        if e.delay == 0:
            dag.add_edge(e.src, e.dst)
    return inbound, blocked, dag


def _check_inputs(declared: dict, inbound: dict, blocked: set, problems: _Problems) -> None:
    for nid, cls in declared.items():
        for port in cls.inputs:
            if not port.optional and port.name not in inbound[nid] and (nid, port.name) not in blocked:
                problems.report(GraphError("input is not connected", where=node_where(nid, port=port.name),
                                           summary=f"input '{port.name}' of node '{nid}' is not connected"))


def _check_budget(r: Resolved, max_values: int, training: TrainingConfig, problems: _Problems) -> bool:
    """Count what the graph would allocate; sets r.total_values. False if over max_values."""
    total = 0
    for nid in r.order:
        rn = r.nodes[nid]
        total += int(rn.cls.param_count(rn.params, rn.in_shapes))
        total += int(rn.cls.stream_state_count(rn.params, rn.in_shapes)) * training.batch_size
        if total > max_values:
            problems.report(GraphError(f"the graph would allocate over {max_values:,} values (its state is "
                                       f"per stream: batch_size {training.batch_size}); reduce its sizes or "
                                       "batch_size", where=node_where(nid)))
            return False
    r.total_values = total
    per_stream = sum(flat_size(s) for rn in r.nodes.values() for s in rn.out_shapes.values())
    kept_steps = training.bptt if training.mode == "tbptt" else 1
    activations = training.batch_size * kept_steps * per_stream
    if total + activations > max_values:
        problems.report(GraphError(
            f"the graph would allocate over {max_values:,} values ({total:,} weights and state, "
            f"{activations:,} for batch_size {training.batch_size}); reduce batch_size or sizes", where="training"))
        return False
    return True


def _edge_where(e: EdgeSpec) -> Where:
    return edge_where(e.src, e.src_port, e.dst, e.dst_port)


def _check_edge(e: EdgeSpec, declared: dict[str, type[Node]]) -> None:
    for node_id in (e.src, e.dst):
        if node_id not in declared:
            raise GraphError(f"unknown node '{node_id}'", where=_edge_where(e))
    out_port = declared[e.src].port(e.src_port, "out")
    if out_port is None:
        hint = " (it is an input)" if declared[e.src].port(e.src_port, "in") else ""
        raise GraphError(f"node '{e.src}' has no output port '{e.src_port}'{hint}", where=_edge_where(e))
    in_port = declared[e.dst].port(e.dst_port, "in")
    if in_port is None:
        hint = " (it is an output)" if declared[e.dst].port(e.dst_port, "out") else ""
        raise GraphError(f"node '{e.dst}' has no input port '{e.dst_port}'{hint}", where=_edge_where(e))
    if not kind_accepts(in_port.kind, out_port.kind):
        raise GraphError(f"{_a(out_port.kind)} output cannot feed {_a(in_port.kind)} input", where=_edge_where(e))
    if e.src == e.dst and e.delay == 0:
        raise GraphError(f"cycle {e.src} -> {e.src} has no 'delay: 1' edge to break it", where=_edge_where(e))


def _check_cycles(dag: nx.DiGraph, position: dict, problems: _Problems) -> set:
    """Report each cycle without a delay once (per strongly connected part); return its nodes."""
    if nx.is_directed_acyclic_graph(dag):
        return set()
    first = nx.find_cycle(dag)  # the one resolve() names
    parts = [c for c in nx.strongly_connected_components(dag) if len(c) > 1]
    parts.sort(key=lambda c: (first[0][0] not in c, min(position[n] for n in c)))
    for part in parts:
        edges = first if first[0][0] in part else nx.find_cycle(dag.subgraph(part))
        cycle = [u for u, _ in edges]
        path = " -> ".join(cycle + [cycle[0]])
        problems.report(GraphError(f"cycle {path} has no 'delay: 1' edge to break it", where=node_where(cycle[0])))
    return set().union(*parts)


def _infer_shapes(r: Resolved, delayed_known: bool, problems: _Problems, unknown: set, blocked: set) -> None:
    """First pass: delayed inputs unknown (None). Second pass: with them, which must not
    change any output shape. A node fed by an unknown node joins `unknown` unblamed."""
    for nid in r.order:
        if nid in unknown:
            continue
        rn = r.nodes[nid]
        shapes: dict[str, Shape | None] = {}
        known = True
        for port in rn.cls.inputs:
            e = r.inbound[nid].get(port.name)
            shapes[port.name] = None
            if e is None:
                known = known and port.optional and (nid, port.name) not in blocked
            elif e.delay and not delayed_known:
                pass
            elif e.src in unknown:
                known = False
            else:
                shapes[port.name] = tuple(r.nodes[e.src].out_shapes[e.src_port])
        if not known:
            if not delayed_known:
                unknown.add(nid)
            continue  # second pass: a delayed input stays unknown; the first pass's shapes stand
        try:
            out = rn.cls.infer(rn.params, shapes)
        except GraphError as exc:
            problems.report(_at_node(exc, nid))
            unknown.add(nid)
            continue
        out = {k: tuple(v) for k, v in out.items()}
        if delayed_known and out != rn.out_shapes:
            problems.report(GraphError("output shapes change when the delayed inputs are known",
                                       where=node_where(nid)))
            unknown.add(nid)
            continue
        rn.in_shapes, rn.out_shapes = shapes, out


def _at_node(exc: GraphError, nid: str) -> GraphError:
    """A node type's infer() error, placed on the node."""
    text = f"{node_where(nid)}: {exc.where}" if exc.where else node_where(nid)
    cls = ShapeError if isinstance(exc, ShapeError) else GraphError
    return cls(exc.message, where=Where(text, node=nid, param=exc.param, port=exc.port))


def _known_shapes(declared: dict, nodes: dict, inbound: dict, unknown: set) -> dict:
    def out_shape(nid: str, port: str) -> Shape | None:
        rn = nodes.get(nid)
        return rn.out_shapes.get(port) if rn is not None and nid not in unknown else None

    shapes = {}
    for nid, cls in declared.items():
        for port in cls.outputs:
            shapes[(nid, "out", port.name)] = out_shape(nid, port.name)
        for port in cls.inputs:
            e = inbound[nid].get(port.name)
            shapes[(nid, "in", port.name)] = out_shape(e.src, e.src_port) if e else None
    return shapes


def _check_groups(graph: Graph, position: dict, problems: _Problems) -> None:
    group_ids = {g["id"] for g in graph.groups}
    if len(group_ids) != len(graph.groups):
        problems.report(GraphError("duplicate group id", where="groups"))
    for g in graph.groups:
        for member in g.get("nodes", []):
            if member not in position and member not in group_ids:
                problems.report(GraphError(f"unknown member '{member}'", where=Where(group=g["id"])))


def _loss_warnings(graph: Graph, declared: dict[str, type[Node]]) -> list[GraphError]:
    """A loss output of a node that is not a loss node trains nothing until it reaches a
    loss node: the trainer adds up only the loss nodes' losses."""
    fed: dict[tuple[str, str], list[str]] = {}
    for e in graph.edges:
        fed.setdefault((e.src, e.src_port), []).append(e.dst)
    warnings = []
    for nid, cls in declared.items():
        if cls.is_loss:
            continue
        for port in cls.outputs:
            if port.kind != "loss":
                continue
            if not fed.get((nid, port.name)):
                message = f"its '{port.name}' output is not connected, so it will not learn"
            elif not _reaches_loss_node(nid, port.name, fed, declared):
                message = f"its '{port.name}' output reaches no loss node, so it will not learn"
            else:
                continue
            warnings.append(GraphWarning(message, where=node_where(nid), port=port.name))
    return warnings


def _reaches_loss_node(nid: str, port: str, fed: dict, declared: dict) -> bool:
    todo, seen = [(nid, port)], set()
    while todo:
        here = todo.pop()
        for dst in fed.get(here, ()):
            cls = declared.get(dst)
            if cls is None or dst in seen:
                continue
            if cls.is_loss:
                return True
            seen.add(dst)
            todo += [(dst, p.name) for p in cls.outputs if p.kind == "loss"]
    return False


def _a(kind: str) -> str:
    """'an sdr', 'an image', 'a tensor': the article goes by how the kind is spoken."""
    return f"{'an' if kind[:1] in 'aeiou' or kind == 'sdr' else 'a'} {kind}"
