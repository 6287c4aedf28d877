"""Auto-layout in topological layers (no Qt): sources on the left, each node one column
right of its furthest undelayed predecessor. Within a column, nodes are ordered by a few
barycenter sweeps (the mean row of their neighbours) so wires cross less, members of a group
stay next to each other, and each node sits level with its inputs where there is room. The
gaps between columns and rows leave channels for wires to go around the boxes."""
from __future__ import annotations

import networkx as nx

from deephtm.graph.graphfile import Graph

COLUMN_WIDTH = 270.0  # a box is 190 wide: the rest is the channel wires run through
ROW_HEIGHT = 60.0  # the gap under each node
NODE_BASE_HEIGHT = 44.0
PORT_ROW = 20.0
SWEEPS = 4
GROUP_TOP = 50.0  # room above a group's first row for its frame and title
GROUP_BOTTOM = 10.0  # added to the row gap under a group's last row


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
    while not nx.is_directed_acyclic_graph(dag):  # an invalid graph: lay out what we can
        dag.remove_edges_from(list(nx.find_cycle(dag)))
    columns = [list(gen) for gen in nx.topological_generations(dag)]
    order = {nid: i for i, nid in enumerate(ids)}
    for col in columns:
        col.sort(key=order.__getitem__)
    group = _group_of(graph)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        for col in (columns[1:] if down else columns[-2::-1]):
            rank = {nid: i for c in columns for i, nid in enumerate(c)}
            neighbours = dag.predecessors if down else dag.successors
            bary = {n: _mean([rank[p] for p in neighbours(n)], rank[n]) for n in col}
            by_group: dict = {}
            for n in col:
                by_group.setdefault(group.get(n), []).append(bary[n])
            col.sort(key=lambda n: (_mean(by_group[group.get(n)], 0) if group.get(n) else bary[n],
                                    group.get(n) or "", bary[n], order[n]))
    start_x = min((_num(n.ui.get("x")) for n in graph.nodes if n.id in idset), default=0.0) if only else 0.0
    start_y = min((_num(n.ui.get("y")) for n in graph.nodes if n.id in idset), default=0.0) if only else 0.0
    height = {nid: (heights or {}).get(nid, NODE_BASE_HEIGHT + 2 * PORT_ROW) for nid in ids}
    placer = _Placer(columns, dag, height, _chains(graph), start_x, start_y)
    placer.place(ids, 0)
    return placer.pos


class _Placer:
    """Places nodes column by column; a group is placed as one block below whatever is
    already in its columns, so group frames never overlap nodes outside them."""

    def __init__(self, columns, dag, height, chains, x0, y0):
        self.col = {n: c for c, col in enumerate(columns) for n in col}
        self.row = {n: r for col in columns for r, n in enumerate(col)}
        self.dag, self.height, self.chains, self.x0 = dag, height, chains, x0
        self.cursor = [y0] * len(columns)  # the next free y in each column
        self.pos: dict[str, tuple[float, float]] = {}

    def place(self, nodes: list[str], depth: int) -> None:
        blocks: dict[tuple, list[str]] = {}
        for n in nodes:
            chain = self.chains.get(n, [])
            blocks.setdefault(("group", chain[depth]) if len(chain) > depth else ("node", n), []).append(n)
        ranked = sorted(blocks.items(), key=lambda kv: (_mean([self.row[n] for n in kv[1]], 0), kv[0]))
        for (what, _), members in ranked:
            if what == "node":
                self._place_node(members[0])
                continue
            span = range(min(self.col[n] for n in members), max(self.col[n] for n in members) + 1)
            top = max(self.cursor[c] for c in span) + GROUP_TOP
            for c in span:
                self.cursor[c] = top
            self.place(sorted(members, key=lambda n: (self.col[n], self.row[n])), depth + 1)
            bottom = max(self.cursor[c] for c in span) + GROUP_BOTTOM
            for c in span:
                self.cursor[c] = bottom

    def _place_node(self, nid: str) -> None:
        c, h = self.col[nid], self.height[nid]
        # level with the inputs' middle when that leaves the nodes above their room
        ins = [self.pos[p][1] + self.height[p] / 2 for p in self.dag.predecessors(nid) if p in self.pos]
        top = max(self.cursor[c], _mean(ins, 0.0) - h / 2 if ins else self.cursor[c])
        self.pos[nid] = (self.x0 + c * COLUMN_WIDTH, round(top))
        self.cursor[c] = top + h + ROW_HEIGHT


def _chains(graph: Graph) -> dict[str, list[str]]:
    """Each node's groups, outermost first."""
    parent: dict[str, str] = {}
    for g in graph.groups:
        for m in g.get("nodes", []):
            parent.setdefault(m, g["id"])
    out = {}
    for n in graph.nodes:
        chain, x = [], n.id
        while x in parent and parent[x] not in chain:
            x = parent[x]
            chain.append(x)
        out[n.id] = chain[::-1]
    return out


def _group_of(graph: Graph) -> dict[str, str]:
    """Each node's outermost group, so a group's members sort together."""
    direct = {}
    parent = {}
    for g in graph.groups:
        for m in g.get("nodes", []):
            direct[m] = g["id"]
            parent[m] = g["id"]
    out = {}
    for nid in (n.id for n in graph.nodes):
        g, seen = direct.get(nid), set()
        while g is not None and g in parent and g not in seen:
            seen.add(g)
            g = parent[g]
        if g is not None:
            out[nid] = g
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _mean(values: list[float], fallback: float) -> float:
    return sum(values) / len(values) if values else fallback
