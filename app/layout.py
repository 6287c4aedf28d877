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
    """x, y for each node (or for the nodes in `only`, laid out among themselves). A
    collapsed group is laid out as the one box it is drawn as; its members keep their places
    relative to each other, as they are when it is expanded."""
    ids = [n.id for n in graph.nodes if only is None or n.id in only]
    idset = set(ids)
    chains = _chains(graph)
    unit = _units(graph, ids, chains)
    units = list(dict.fromkeys(unit[n] for n in ids))
    dag = nx.DiGraph()
    dag.add_nodes_from(units)
    for e in graph.edges:
        if e.delay == 0 and e.src in idset and e.dst in idset and unit[e.src] != unit[e.dst]:
            dag.add_edge(unit[e.src], unit[e.dst])
    while not nx.is_directed_acyclic_graph(dag):  # an invalid graph: lay out what we can
        dag.remove_edges_from(list(nx.find_cycle(dag)))
    columns = [list(gen) for gen in nx.topological_generations(dag)]
    order = {u: i for i, u in enumerate(units)}
    for col in columns:
        col.sort(key=order.__getitem__)
    group = {u: chains[u][0] for u in units if chains.get(u)}  # outermost group around each
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        for col in (columns[1:] if down else columns[-2::-1]):
            rank = {u: i for c in columns for i, u in enumerate(c)}
            neighbours = dag.predecessors if down else dag.successors
            bary = {u: _mean([rank[p] for p in neighbours(u)], rank[u]) for u in col}
            by_group: dict = {}
            for u in col:
                by_group.setdefault(group.get(u), []).append(bary[u])
            col.sort(key=lambda u: (_mean(by_group[group.get(u)], 0) if group.get(u) else bary[u],
                                    group.get(u) or "", bary[u], order[u]))
    now = {n.id: (_num(n.ui.get("x")), _num(n.ui.get("y"))) for n in graph.nodes if n.id in idset}
    start_x = min((p[0] for p in now.values()), default=0.0) if only else 0.0
    start_y = min((p[1] for p in now.values()), default=0.0) if only else 0.0
    height = {u: (heights or {}).get(u, NODE_BASE_HEIGHT + 2 * PORT_ROW) for u in units}
    placer = _Placer(columns, dag, height, chains, start_x, start_y)
    placer.place(units, 0)
    pos: dict[str, tuple[float, float]] = {}
    for nid in ids:
        u = unit[nid]
        if u == nid:
            pos[nid] = placer.pos[nid]
            continue
        members = [now[m] for m in ids if unit[m] == u]
        x0, y0 = min(p[0] for p in members), min(p[1] for p in members)
        ux, uy = placer.pos[u]
        pos[nid] = (ux + now[nid][0] - x0, uy + now[nid][1] - y0)
    return pos


def _units(graph: Graph, ids: list[str], chains: dict[str, list[str]]) -> dict[str, str]:
    """Each node's box on the canvas: itself, or its outermost collapsed group."""
    collapsed = {g["id"] for g in graph.groups if g.get("collapsed")}
    return {n: next((g for g in chains.get(n, []) if g in collapsed), n) for n in ids}


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
    """The groups around each node and group, outermost first."""
    parent: dict[str, str] = {}
    for g in graph.groups:
        for m in g.get("nodes", []):
            parent.setdefault(m, g["id"])
    out = {}
    for x0 in [n.id for n in graph.nodes] + [g["id"] for g in graph.groups]:
        chain, x = [], x0
        while x in parent and parent[x] not in chain and parent[x] != x0:
            x = parent[x]
            chain.append(x)
        out[x0] = chain[::-1]
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _mean(values: list[float], fallback: float) -> float:
    return sum(values) / len(values) if values else fallback
