"""The editing controller: one Document, its QUndoStack and live validation. The canvas,
inspector, palette and menus all edit through here, so every edit is undoable."""
from __future__ import annotations

from PyQt6.QtCore import QObject, QTimer, pyqtSignal
from PyQt6.QtGui import QUndoStack

from . import edits, grouping
from .analysis import Analysis, analyze
from .commands import push
from .document import Document

VALIDATE_DELAY_MS = 120  # validation waits for a pause in typing or dragging


class Editor(QObject):
    changed = pyqtSignal(str)  # the document changed (operation name, or "reset")
    analysed = pyqtSignal(object)  # a new Analysis
    message = pyqtSignal(str)  # a line for the status bar
    refused = pyqtSignal(str)  # an edit was refused; the reason

    def __init__(self, doc: Document | None = None, parent=None):
        super().__init__(parent)
        self.doc = doc or Document()
        self.stack = QUndoStack(self)
        self.analysis = Analysis()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate_now)
        self.doc.add_listener(self._on_doc_changed)

    def _on_doc_changed(self, what: str) -> None:
        self.changed.emit(what)
        self._timer.start()

    def validate_now(self) -> Analysis:
        self._timer.stop()
        self.analysis = analyze(self.doc.graph)
        self.analysed.emit(self.analysis)
        return self.analysis

    def load(self, graph) -> None:
        self.doc.replace_graph(graph)
        self.stack.clear()
        self.validate_now()

    # ---- edits ----------------------------------------------------------------
    def add_node(self, type_name: str, x: float, y: float) -> str:
        ops, node_id = edits.add_node_ops(self.doc, type_name, x, y)
        push(self.stack, self.doc, f"Add {node_id}", ops)
        return node_id

    def connect_ports(self, src: str, src_port: str, dst: str, dst_port: str) -> bool:
        reason = edits.connection_problem(self.doc, src, src_port, dst, dst_port)
        if reason:
            self.refused.emit(f"Can't connect {src}.{src_port} -> {dst}.{dst_port}: {reason}")
            return False
        ops, note = edits.connect_ops(self.doc, src, src_port, dst, dst_port)
        push(self.stack, self.doc, f"Connect {src}.{src_port} -> {dst}.{dst_port}", ops)
        self.message.emit(f"Connected {src}.{src_port} -> {dst}.{dst_port}" + (f" ({note})" if note else ""))
        return True

    def delete(self, node_ids, edge_keys=()) -> None:
        node_ids, edge_keys = list(node_ids), list(edge_keys)
        ops = edits.delete_ops(self.doc, node_ids, edge_keys)
        n, e = len(node_ids), len(edge_keys)
        push(self.stack, self.doc, f"Delete {n} node(s), {e} edge(s)" if n else "Delete edge(s)", ops)

    def move(self, positions: dict) -> None:
        push(self.stack, self.doc, "Move", edits.move_ops(self.doc, positions))

    def set_param(self, node_id: str, name: str, value) -> None:
        if self.doc.node(node_id) is None:  # a stale form of a node just renamed or deleted
            return
        push(self.stack, self.doc, f"Set {node_id}.{name}", edits.set_param_ops(self.doc, node_id, name, value),
             merge_key=("param", node_id, name))

    def reset_param(self, node_id: str, name: str) -> None:
        if self.doc.node(node_id) is None:
            return
        push(self.stack, self.doc, f"Reset {node_id}.{name}", edits.reset_param_ops(self.doc, node_id, name))

    def rename(self, old: str, new: str) -> str | None:
        problem = edits.rename_problem(self.doc, old, new)
        if problem is None and new != old:
            push(self.stack, self.doc, f"Rename {old} to {new}", [("rename", old, new)])
        return problem

    def set_delay(self, key, delay: int) -> None:
        push(self.stack, self.doc, "Delay" if delay else "No delay", edits.delay_ops(self.doc, key, delay))

    def set_training(self, name: str, value) -> None:
        d = self.doc.graph.training.to_dict()
        if d.get(name) != value:
            d[name] = value
            push(self.stack, self.doc, f"Set training.{name}", [("set_training", d)], merge_key=("training", name))

    def set_meta(self, name: str, description: str) -> None:
        g = self.doc.graph
        if (g.name, g.description) != (name, description):
            push(self.stack, self.doc, "Rename graph", [("set_meta", name, description)], merge_key=("meta",))

    def group(self, members: list[str], title: str = "") -> str | None:
        if not members:
            return None
        ops, gid = grouping.group_ops(self.doc, members, title)
        push(self.stack, self.doc, f"Group {len(members)} item(s)", ops)
        return gid

    def ungroup(self, gid: str) -> None:
        push(self.stack, self.doc, f"Ungroup {gid}", grouping.ungroup_ops(self.doc, gid))

    def set_collapsed(self, gid: str, collapsed: bool) -> None:
        g = grouping.group(self.doc.graph, gid)
        if g is not None and bool(g.get("collapsed")) != collapsed:
            push(self.stack, self.doc, ("Collapse " if collapsed else "Expand ") + gid,
                 grouping.set_group_ops(self.doc, gid, collapsed=collapsed))

    def retitle_group(self, gid: str, title: str) -> None:
        g = grouping.group(self.doc.graph, gid)
        if g is not None and g.get("title") != title:
            push(self.stack, self.doc, f"Rename group {gid}", grouping.set_group_ops(self.doc, gid, title=title),
                 merge_key=("group-title", gid))

    def set_title(self, node_id: str, title: str) -> None:
        """A node's display title (under its ui; the id stays what edges and params use)."""
        spec = self.doc.node(node_id)
        if spec is None or spec.ui.get("title", "") == title.strip():
            return
        ui = dict(spec.ui)
        if title.strip():
            ui["title"] = title.strip()
        else:
            ui.pop("title", None)  # no title: the box shows the id
        push(self.stack, self.doc, f"Title {node_id}", [("set_ui", node_id, ui)], merge_key=("title", node_id))

    def set_reroutes(self, key: tuple, points: list[tuple[float, float]]) -> None:
        """Set the points the wire `key` passes through (saved in its input node's ui)."""
        from .canvas.reroute import with_points

        src, src_port, dst, dst_port = key
        spec = self.doc.node(dst)
        if spec is None or self.doc.edge(tuple(key)) is None:
            return
        ui = with_points(spec.ui, src, src_port, dst_port, points)
        if ui != spec.ui:
            push(self.stack, self.doc, f"Reroute {src}.{src_port} -> {dst}.{dst_port}", [("set_ui", dst, ui)])

    def set_group_color(self, gid: str, color: str | None) -> None:
        g = grouping.group(self.doc.graph, gid)
        if g is None:
            return
        ui = dict(g.get("ui") or {}) if isinstance(g.get("ui"), dict) else {}
        if ui.get("color") == color:
            return
        if color:
            ui["color"] = color
        else:
            ui.pop("color", None)
        push(self.stack, self.doc, f"Colour group {gid}", grouping.set_group_ops(self.doc, gid, ui=ui))

    def paste(self, frag: dict, dx: float, dy: float) -> list[str]:
        ops, new_ids = edits.paste_ops(self.doc, frag, dx, dy)
        push(self.stack, self.doc, f"Paste {len(new_ids)} node(s)", ops)
        return new_ids

    def auto_layout(self, heights: dict[str, float] | None = None, only: set[str] | None = None) -> None:
        push(self.stack, self.doc, "Auto-layout", edits.layout_ops(self.doc, heights, only))
