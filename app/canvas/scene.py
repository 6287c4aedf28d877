"""The scene mirrors the document: after every change, sync() adds, removes and moves items
so they match the graph. Items never change the document themselves; they ask the Editor."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QGraphicsScene

from deephtm.graph import registry

from .. import grouping
from ..editor import Editor
from .edge_item import EdgeItem
from .group_item import GroupFrameItem
from .node_item import BoxItem, CollapsedGroupItem, NodeItem
from .port_item import PortItem
from .reroute import reroute_points


class GraphScene(QGraphicsScene):
    def __init__(self, editor: Editor, parent=None):
        super().__init__(parent)
        self.editor = editor
        self.nodes: dict[str, NodeItem] = {}
        self.collapsed: dict[str, CollapsedGroupItem] = {}
        self.frames: dict[str, GroupFrameItem] = {}
        self.edges: dict[tuple, EdgeItem] = {}
        self._syncing = False
        self.setSceneRect(QRectF(-50000, -50000, 100000, 100000))  # room to pan anywhere
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        editor.changed.connect(self._on_changed)
        editor.analysed.connect(self._on_analysed)
        self.sync()

    @property
    def doc(self):
        return self.editor.doc

    def _on_changed(self, _what: str) -> None:
        self.sync()

    def _on_analysed(self, analysis) -> None:
        self.show_analysis(analysis)
        for port in self.all_ports():  # every edit is followed by an analysis, so once here is enough
            port.show_shape(analysis.shapes.get((port.node_id, port.direction, port.port)))

    # ---- building items ---------------------------------------------------------
    def _node_ports(self, node_id: str):
        ins, outs = self.doc.ports(node_id)
        return ([(node_id, p.name, p.kind, p.name, p.doc) for p in ins],
                [(node_id, p.name, p.kind, p.name, p.doc) for p in outs])

    def _signature(self, spec) -> tuple:
        ins, outs = self.doc.ports(spec.id)
        return (spec.type, tuple(p.name for p in ins), tuple(p.name for p in outs))

    def _make_node(self, spec) -> NodeItem:
        cls = registry.get(spec.type)
        ins, outs = self._node_ports(spec.id)
        item = NodeItem(spec.id, *node_title(spec, known=cls is not None),
                        cls.category if cls else "", ins, outs,
                        param_summary(spec.params) if cls is not None and cls.params else None)
        item.type_name = spec.type
        item.signature = self._signature(spec)
        if cls is not None and cls.doc:
            item.set_tip(f"{spec.type}: {cls.doc}")
        self.addItem(item)
        return item

    def _make_collapsed(self, g: dict, leaves: list[str]) -> CollapsedGroupItem:
        ins, outs = grouping.external_ports(self.doc.graph, g["id"])

        def port_rows(refs, direction):
            rows = []
            for node_id, port in refs:
                p = self.doc.port(node_id, port, direction)
                rows.append((node_id, port, p.kind if p else "tensor", f"{node_id}.{port}", p.doc if p else ""))
            return rows

        item = CollapsedGroupItem(g["id"], group_title(g), f"group · {len(leaves)} nodes",
                                  port_rows(ins, "in"), port_rows(outs, "out"), leaves)
        item.signature = (g.get("title"), tuple(ins), tuple(outs), tuple(leaves), group_color(g))
        item.color = group_color(g)
        item.set_tip(f"group '{g['id']}' ({len(leaves)} nodes): double-click to expand")
        self.addItem(item)
        return item

    # ---- keeping items in step with the document --------------------------------
    def sync(self) -> None:
        self._syncing = True
        try:
            self._sync()
        finally:
            self._syncing = False

    def _sync(self) -> None:
        g = self.doc.graph
        reps = grouping.representatives(g)
        # nodes
        specs = {n.id: n for n in g.nodes}
        for nid in list(self.nodes):
            if nid not in specs:
                self.removeItem(self.nodes.pop(nid))
        for spec in g.nodes:
            item = self.nodes.get(spec.id)
            if item is not None and item.signature != self._signature(spec):
                # another type under the same id (a file opened after another, or an unknown
                # type whose ports follow its edges): its title and ports differ, so redraw it
                self.removeItem(self.nodes.pop(spec.id))
                item = None
            if item is None:
                item = self.nodes[spec.id] = self._make_node(spec)
            item.set_summary(param_summary(spec.params))
            item.set_title(*node_title(spec))
            x, y = self.doc.position(spec.id)
            if item.pos() != QPointF(x, y):
                item.setPos(x, y)
            item.setVisible(reps.get(spec.id) == spec.id)
        # collapsed groups
        wanted = {}
        for grp in g.groups:
            if grp.get("collapsed") and reps.get(grp["id"]) == grp["id"]:
                wanted[grp["id"]] = grp
        for gid in list(self.collapsed):
            item = self.collapsed[gid]
            if gid not in wanted or item.signature != self._collapsed_signature(wanted[gid]):
                self.removeItem(self.collapsed.pop(gid))
        for gid, grp in wanted.items():
            if gid not in self.collapsed:
                self.collapsed[gid] = self._make_collapsed(grp, grouping.leaf_nodes(g, gid))
            self._place_collapsed(self.collapsed[gid])
        # edges
        keep = set()
        for it in list(self.nodes.values()) + list(self.collapsed.values()):
            it.edges = []
        for e in g.edges:
            key = (e.src, e.src_port, e.dst, e.dst_port)
            kind_port = self.doc.port(e.src, e.src_port, "out")
            item = self.edges.get(key)
            kind = kind_port.kind if kind_port else "tensor"
            if item is not None and (item.delay != e.delay or item.kind != kind):
                self.removeItem(self.edges.pop(key))
                item = None
            if item is None:
                item = self.edges[key] = EdgeItem(key, e.delay, kind)
                self.addItem(item)
            keep.add(key)
            src_rep, dst_rep = reps.get(e.src), reps.get(e.dst)
            item.src_item = self._item_for(src_rep)
            item.dst_item = self._item_for(dst_rep)
            if src_rep == dst_rep and src_rep in self.collapsed:
                item.src_item = item.dst_item = None  # inside a collapsed group
            for end in (item.src_item, item.dst_item):
                if end is not None:
                    end.edges.append(item)
            dst_spec = self.doc.node(e.dst)
            via = reroute_points(dst_spec.ui, e.src, e.src_port, e.dst_port) if dst_spec is not None else []
            shown = item.src_item is not None and item.dst_item is not None
            item.set_via([QPointF(x, y) for x, y in via] if shown else [])
            item.update_path()
        for key in list(self.edges):
            if key not in keep:
                self.removeItem(self.edges.pop(key))
        # expanded group frames
        frames_wanted = {grp["id"]: grp for grp in g.groups
                         if not grp.get("collapsed") and reps.get(grp["id"]) == grp["id"]}
        for gid in list(self.frames):
            if gid not in frames_wanted:
                self.removeItem(self.frames.pop(gid))
        for gid, grp in frames_wanted.items():
            leaves = grouping.leaf_nodes(g, gid)
            frame = self.frames.get(gid)
            if frame is None:
                frame = self.frames[gid] = GroupFrameItem(gid, group_title(grp), leaves)
                self.addItem(frame)
            frame.title, frame.members = group_title(grp), leaves
            frame.color = group_color(grp)
            frame.update()
        self._fit_frames()
        self.show_analysis(self.editor.analysis)

    def _collapsed_signature(self, grp: dict):
        ins, outs = grouping.external_ports(self.doc.graph, grp["id"])
        return (grp.get("title"), tuple(ins), tuple(outs), tuple(grouping.leaf_nodes(self.doc.graph, grp["id"])),
                group_color(grp))

    def _item_for(self, rep: str | None) -> BoxItem | None:
        if rep is None:
            return None
        return self.nodes.get(rep) or self.collapsed.get(rep)

    def _place_collapsed(self, item: CollapsedGroupItem) -> None:
        pts = [self.nodes[m].pos() for m in item.members if m in self.nodes]
        if pts:
            pos = QPointF(min(p.x() for p in pts), min(p.y() for p in pts))
            if item.pos() != pos:
                was, self._syncing = self._syncing, True
                item.setPos(pos)
                item.last_pos = pos
                self._syncing = was
            item.last_pos = item.pos()

    def _fit_frames(self) -> None:
        if not self.frames:
            return
        reps = grouping.representatives(self.doc.graph)
        parents = grouping.parent_map(self.doc.graph)
        depth = {gid: len(grouping.ancestors(self.doc.graph, gid, parents)) for gid in self.frames}
        for gid in sorted(self.frames, key=lambda k: -depth[k]):  # inner frames first
            frame = self.frames[gid]
            rects = []
            for leaf in frame.members:
                it = self._item_for(reps.get(leaf))
                if it is not None:
                    rects.append(it.sceneBoundingRect())
            for child, parent in parents.items():
                if parent == gid and child in self.frames:
                    rects.append(self.frames[child].rect.adjusted(-6, -6, 6, 6))
            frame.fit(rects)

    # ---- live feedback ---------------------------------------------------------
    def show_analysis(self, analysis) -> None:
        node_err: dict[str, str] = {}
        edge_err: dict[tuple, str] = {}
        for p in analysis.problems:
            if p.edge:
                edge_err.setdefault(tuple(p.edge), p.text)
            elif p.node:
                node_err.setdefault(p.node, p.text)
        for nid, item in self.nodes.items():
            item.set_error(node_err.get(nid))
        for key, item in self.edges.items():
            item.set_error(edge_err.get(key))
        for gid, item in self.collapsed.items():
            errs = [node_err[m] for m in item.members if m in node_err]
            item.set_error(errs[0] if errs else None)

    # ---- called by items while the user drags -------------------------------------
    def item_moved(self, item: BoxItem) -> None:
        if self._syncing:
            return
        if isinstance(item, CollapsedGroupItem):
            last = getattr(item, "last_pos", item.pos())
            delta = item.pos() - last
            item.last_pos = item.pos()
            self._shift(item.members, delta)
        self._reroute_near(item)
        self._fit_frames()

    def _reroute_near(self, item: BoxItem) -> None:
        """Re-route the moved box's wires and the wires it now lies across."""
        area = item.sceneBoundingRect().adjusted(-30, -30, 30, 30)
        for e in self.edges.values():
            if e in item.edges or (e.isVisible() and e.sceneBoundingRect().intersects(area)):
                e.update_path()

    def _shift(self, node_ids, delta: QPointF) -> None:
        was, self._syncing = self._syncing, True
        moved = set()
        for nid in node_ids:
            it = self.nodes.get(nid)
            if it is not None:
                it.setPos(it.pos() + delta)
                moved.add(it)
        self._syncing = was
        for it in moved:
            for e in it.edges:
                e.update_path()

    def shift_nodes(self, node_ids, delta: QPointF) -> None:
        """Move nodes (and collapsed groups standing for them) by delta, e.g. a frame drag."""
        self._shift(node_ids, delta)
        ids = set(node_ids)
        for item in self.collapsed.values():
            if ids & set(item.members):
                was, self._syncing = self._syncing, True
                item.setPos(item.pos() + delta)
                item.last_pos = item.pos()
                self._syncing = was
                for e in item.edges:
                    e.update_path()
        self._fit_frames()

    def commit_moves(self) -> None:
        """After a drag: record the nodes whose items moved as one undoable edit."""
        changed = {}
        for nid, item in self.nodes.items():
            x, y = self.doc.position(nid)
            p = item.pos()
            if (round(p.x()), round(p.y())) != (round(x), round(y)):
                changed[nid] = (p.x(), p.y())
        if changed:
            self.editor.move(changed)

    @property
    def syncing(self) -> bool:
        return self._syncing

    def commit_reroutes(self, edge: EdgeItem, points=None) -> None:
        """Record a wire's reroute points (as dragged, or the given ones) as an edit."""
        points = [h.pos() for h in edge.handles] if points is None else points
        self.editor.set_reroutes(edge.key, [(p.x(), p.y()) for p in points])

    def request_collapse(self, gid: str, collapsed: bool) -> None:
        self.editor.set_collapsed(gid, collapsed)

    # ---- selection ----------------------------------------------------------------
    def selected_members(self) -> list[str]:
        """Ids of selected visible items: nodes and groups (what grouping takes)."""
        return [it.key for it in self.selectedItems() if isinstance(it, (BoxItem, GroupFrameItem))]

    def selected_node_ids(self) -> list[str]:
        """Node ids selected, counting every member of a selected collapsed group."""
        out = []
        for it in self.selectedItems():
            if isinstance(it, (CollapsedGroupItem, GroupFrameItem)):
                out += it.members
            elif isinstance(it, NodeItem):
                out.append(it.key)
        return list(dict.fromkeys(out))

    def selected_edge_keys(self) -> list[tuple]:
        return [it.key for it in self.selectedItems() if isinstance(it, EdgeItem)]

    def select_ids(self, ids) -> None:
        ids = set(ids)
        reps = grouping.representatives(self.doc.graph)
        shown = {reps.get(i, i) for i in ids}
        self.clearSelection()
        for key in shown:
            it = self._item_for(key) or self.frames.get(key)
            if it is not None:
                it.setSelected(True)

    def port_at(self, pos: QPointF, radius: float = 10.0) -> PortItem | None:
        best, best_d = None, radius * radius
        for it in self.items(QRectF(pos.x() - radius, pos.y() - radius, 2 * radius, 2 * radius)):
            if isinstance(it, PortItem) and it.isVisible() and it.parentItem().isVisible():
                d = it.scenePos() - pos
                dd = d.x() ** 2 + d.y() ** 2
                if dd <= best_d:
                    best, best_d = it, dd
        return best

    def obstacles(self) -> list[tuple[BoxItem, QRectF]]:
        """The boxes on show with their scene rectangles: what wires must go around."""
        return [(it, it.sceneBoundingRect()) for it in list(self.nodes.values()) + list(self.collapsed.values())
                if it.isVisible()]

    def content_rect(self) -> QRectF:
        rect = QRectF()
        for it in list(self.nodes.values()) + list(self.collapsed.values()) + list(self.frames.values()):
            if it.isVisible():
                rect = rect.united(it.sceneBoundingRect())
        return rect

    def node_heights(self) -> dict[str, float]:
        """Box heights by id: nodes, and collapsed groups (the layout places them as one)."""
        out = {nid: it.height for nid, it in self.nodes.items()}
        out.update({gid: it.height + 6 for gid, it in self.collapsed.items()})
        return out

    def all_ports(self):
        for it in list(self.nodes.values()) + list(self.collapsed.values()):
            if it.isVisible():
                yield from it.ports.values()


def group_title(grp: dict) -> str:
    """The title to draw: text even when a hand-edited file holds a number; the id if none."""
    title = grp.get("title")
    return str(title) if title not in (None, "") else str(grp["id"])


def node_title(spec, known: bool = True) -> tuple[str, str]:
    """(title, type line) for a node's box: a display title from its ui, else its id; the
    id goes on the type line when a title hides it."""
    kind = spec.type if known else f"{spec.type} (unknown type)"
    title = spec.ui.get("title")
    if isinstance(title, str) and title.strip() and title.strip() != spec.id:
        return title.strip(), f"{spec.id} · {kind}"
    return spec.id, kind


def group_color(grp: dict) -> str | None:
    """The colour a group's ui asks for, if it is one Qt can read."""
    ui = grp.get("ui")
    color = ui.get("color") if isinstance(ui, dict) else None
    return color if isinstance(color, str) and QColor.isValidColorName(color) else None


def param_summary(params: dict) -> str:
    """'columns 256 · winners 5': the params a node sets, for the line on its box."""
    parts = []
    for name, value in params.items():
        if isinstance(value, float):
            value = f"{value:g}"
        elif isinstance(value, bool):
            value = "on" if value else "off"
        parts.append(f"{name} {value}")
    return " · ".join(parts) if parts else "defaults"
