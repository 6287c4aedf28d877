"""Auto-layout in topological layers (no Qt): sources on the left, each node one column
right of its furthest undelayed predecessor; within a column, nodes are ordered by the
mean row of their predecessors so wires cross less."""
from __future__ import annotations

import networkx as nx

from deephtm.graph.graphfile import Graph

COLUMN_WIDTH = 240.0
ROW_HEIGHT = 40.0  # plus the node's own height
NODE_BASE_HEIGHT = 44.0
PORT_ROW = 20.0


def layered_positions(graph: Graph, heights: dict[str, float] | None = None,
                      only: set[str] | None = None) -> dict[str, tuple[float, float]]:
    """x, y for each node (or for the nodes in `only`, laid out among themselves)."""
    ids = [n.id for n in graph.nodes if only is None or n.id in only]
    idset = set(ids)
    dag = nx.DiGraph()
    dag.add_nodes_from(ids)
    for e in graph.edges:
        if e.delay == 0 and e.src in idset and e.dst in idset and e.src != e.dst:
            dag.add_edge(e.src, e.dst)
    if not nx.is_directed_acyclic_graph(dag):  # an invalid graph: lay out what we can
        dag.remove_edges_from(list(nx.find_cycle(dag)))
        while not nx.is_directed_acyclic_graph(dag):
            dag.remove_edges_from(list(nx.find_cycle(dag)))
    layer: dict[str, int] = {}
    for nid in nx.topological_sort(dag):
        layer[nid] = max((layer[p] + 1 for p in dag.predecessors(nid)), default=0)
    columns: dict[int, list[str]] = {}
    for nid in ids:
        columns.setdefault(layer[nid], []).append(nid)
    order = {nid: i for i, nid in enumerate(ids)}
    row: dict[str, float] = {}
    start_x = min((float(n.ui.get("x", 0)) for n in graph.nodes if n.id in idset), default=0.0) if only else 0.0
    start_y = min((float(n.ui.get("y", 0)) for n in graph.nodes if n.id in idset), default=0.0) if only else 0.0
    pos: dict[str, tuple[float, float]] = {}
    for c in sorted(columns):
        members = columns[c]
        members.sort(key=lambda n: (_mean([row[p] for p in dag.predecessors(n) if p in row], order[n]), order[n]))
        y = start_y
        for i, nid in enumerate(members):
            row[nid] = i
            pos[nid] = (start_x + c * COLUMN_WIDTH, y)
            y += (heights or {}).get(nid, NODE_BASE_HEIGHT + 2 * PORT_ROW) + ROW_HEIGHT
    return pos


def _mean(values: list[float], fallback: float) -> float:
    return sum(values) / len(values) if values else fallback
