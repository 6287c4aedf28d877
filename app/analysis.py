"""Live validation for the editor (no Qt): the engine's analyse() finds every problem and
every shape it can infer; this module only turns its errors into what the editor shows.
Each error carries its place (node, edge or group) as fields."""
from __future__ import annotations

from dataclasses import dataclass, field

from deephtm.errors import GraphError
from deephtm.graph import resolve as engine
from deephtm.graph.graphfile import Graph


@dataclass
class Problem:
    text: str  # the problem in words, without the file name (the file is in the title)
    node: str | None = None
    edge: tuple | None = None  # (src, src_port, dst, dst_port)
    group: str | None = None
    level: str = "error"  # or "warning": the graph still trains


@dataclass
class Analysis:
    problems: list[Problem] = field(default_factory=list)  # errors: the graph does not resolve
    warnings: list[Problem] = field(default_factory=list)  # probably mistakes; training is allowed
    # (node id, "in"|"out", port) -> per-sample shape, or None when unknown
    shapes: dict[tuple[str, str, str], tuple | None] = field(default_factory=dict)
    ok: bool = False
    empty: bool = False  # no nodes yet: nothing to resolve, nothing to praise
    total_values: int = 0

    def node_problems(self, node_id: str) -> list[Problem]:
        return [p for p in self.problems if p.node == node_id or (p.edge and node_id in (p.edge[0], p.edge[2]))]


def problem(exc: GraphError) -> Problem:
    return Problem(exc.summary, node=exc.node, edge=exc.edge, group=exc.group, level=exc.level)


def analyze(graph: Graph) -> Analysis:
    saved_path, graph.path = graph.path, None  # messages name nodes; the file is in the title
    try:
        found = engine.analyse(graph)
    finally:
        graph.path = saved_path
    r = found.resolved
    return Analysis(problems=[problem(e) for e in found.errors], warnings=[problem(w) for w in found.warnings],
                    shapes=dict(found.shapes), ok=r is not None, empty=not graph.nodes,
                    total_values=r.total_values if r is not None else 0)
