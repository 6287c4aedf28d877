"""The canvas view: grid, zoom, pan, rubber-band selection, wiring ports, drops from the
palette and the quick-add box."""
from __future__ import annotations

import math

from PyQt6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer
from PyQt6.QtGui import QBrush, QFontMetricsF, QPainter, QPen
from PyQt6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsView

from deephtm.graph.spec import kind_accepts

from . import style
from .edge_item import EdgeItem, wire_path
from .node_item import BoxItem, CollapsedGroupItem
from .port_item import PortItem
from .reroute import RerouteItem
from .minimap import Minimap
from .search import NodeSearch, compatible_types

NODE_TYPE_MIME = "application/x-deephtm-node-type"
MIN_ZOOM, MAX_ZOOM = 0.08, 3.0


class GraphView(QGraphicsView):
    def __init__(self, scene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._pan_from = None
        self._space = False
        self._wire_from: PortItem | None = None
        self._wire = None
        self._hover_target: PortItem | None = None
        self._refusing: PortItem | None = None  # the refused port whose reason is on show
        self._toast = None
        self._toast_timer = QTimer(self)
        self._toast_timer.setSingleShot(True)
        self._toast_timer.setInterval(4000)
        self._toast_timer.timeout.connect(self._clear_toast)
        self._last_mouse = QPointF(0, 0)
        self._mouse_seen = False  # has the mouse been over the canvas yet?
        self.minimap = Minimap(self)
        scene.changed.connect(lambda _rects: self.minimap.refresh())  # edits, moves, zoom redraws
        self.search = NodeSearch(self.viewport())
        self.search.chosen.connect(self._add_from_search)
        self._search_at = QPointF(0, 0)
        self._search_wire = None  # (direction, node, port, kind) of a wire dropped on the canvas
        self._detaching = None  # the key of a wire picked up at its input

    @property
    def editor(self):
        return self.scene().editor

    # ---- grid ------------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, style.CANVAS_BG)
        zoom = self.transform().m11()
        step = style.GRID
        while step * zoom < 8:  # keep lines at least 8 px apart when zoomed out
            step *= 5
        for spacing, color in ((step, style.GRID_MINOR), (step * 5, style.GRID_MAJOR)):
            painter.setPen(QPen(color, 0))
            left = math.floor(rect.left() / spacing) * spacing
            top = math.floor(rect.top() / spacing) * spacing
            x = left
            while x < rect.right():
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
                x += spacing
            y = top
            while y < rect.bottom():
                painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
                y += spacing

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.minimap.refresh()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.minimap.refresh()

    # ---- zoom and fit -------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event):
        steps = event.angleDelta().y() / 120.0
        if not steps:
            return
        factor = 1.15 ** steps
        factor = max(MIN_ZOOM / self.zoom(), min(MAX_ZOOM / self.zoom(), factor))
        # keep the point under the cursor where it is (the wheel event knows where that is)
        at = event.position().toPoint()
        anchor = self.mapToScene(at)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        shift = self.mapFromScene(anchor) - at
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + shift.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + shift.y())
        self.resetCachedContent()
        self.minimap.refresh()

    def fit(self) -> None:
        rect = self.scene().content_rect()
        if rect.isEmpty():
            self.resetTransform()
            self.centerOn(0, 0)
            return
        self.fitInView(rect.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.2:  # a tiny graph should not be blown up
            self.resetTransform()
            self.scale(1.2, 1.2)
            self.centerOn(rect.center())
        elif self.zoom() < MIN_ZOOM:
            self.resetTransform()
            self.scale(MIN_ZOOM, MIN_ZOOM)
            self.centerOn(rect.center())
        self.resetCachedContent()
        self.minimap.refresh()

    def view_state(self) -> dict:
        c = self.mapToScene(self.viewport().rect().center())
        return {"zoom": round(self.zoom(), 4), "center": [round(c.x(), 1), round(c.y(), 1)]}

    def restore_state(self, state: dict) -> bool:
        try:
            z = float(state["zoom"])
            cx, cy = (float(v) for v in state["center"])
        except (KeyError, TypeError, ValueError):
            return False
        if not all(math.isfinite(v) for v in (z, cx, cy)) or z <= 0:
            return False
        self.resetTransform()
        z = max(MIN_ZOOM, min(MAX_ZOOM, z))
        self.scale(z, z)
        self.centerOn(cx, cy)
        self.minimap.refresh()
        return True

    def center_on_ids(self, ids) -> None:
        self.scene().select_ids(ids)
        rect = QRectF()
        for it in self.scene().selectedItems():
            rect = rect.united(it.sceneBoundingRect())
        if not rect.isEmpty():
            self.centerOn(rect.center())

    # ---- mouse -----------------------------------------------------------------------
    def mousePressEvent(self, event):
        self.search.hide()
        pos = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._space):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            port = self.scene().port_at(pos)
            if port is not None:
                picked = self._picked_up(port)
                self._detaching = picked
                if picked is not None:  # a connected input: its wire comes away with the mouse
                    src = self.scene().edges.get(picked)
                    port = src.src_item.ports.get(src.src_ref) if src is not None and src.src_item else None
                    if port is None:
                        self._detaching = None
                        port = self.scene().port_at(pos)
                    else:
                        src.setVisible(False)
                self._begin_wire(port, pos)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouse_at(self) -> QPoint | None:
        """Where the mouse is on the canvas, or was when it last left it; None before it
        has been over the canvas at all."""
        return self._last_mouse.toPoint() if self._mouse_seen else None

    def mouseMoveEvent(self, event):
        self._last_mouse = event.position()
        self._mouse_seen = True
        if self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(d.y()))
            return
        if self._wire_from is not None:
            self._update_wire(self.mapToScene(event.position().toPoint()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor)
            return
        if self._wire_from is not None:
            self._end_wire(self.mapToScene(event.position().toPoint()))
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.scene().commit_moves()

    def mouseDoubleClickEvent(self, event):
        pos = self.mapToScene(event.position().toPoint())
        item = self.itemAt(event.position().toPoint())
        if isinstance(item, RerouteItem):  # it removes itself
            super().mouseDoubleClickEvent(event)
            return
        while item is not None and item.parentItem() is not None:
            item = item.parentItem()
        if isinstance(item, CollapsedGroupItem):
            self.editor.set_collapsed(item.key, False)
            return
        if isinstance(item, EdgeItem) and self.scene().port_at(pos) is None:
            # a reroute point where the wire was clicked, in left-to-right order
            points = [(p.x(), p.y()) for p in item.via] + [(pos.x(), pos.y())]
            self.editor.set_reroutes(item.key, sorted(points))
            return
        if item is None:
            self.open_search(event.position().toPoint(), pos)
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event):
        hook = getattr(self, "context_menu_hook", None)
        if hook is None:
            return super().contextMenuEvent(event)
        item = self.itemAt(event.pos())
        while item is not None and item.parentItem() is not None:
            item = item.parentItem()
        hook(event.globalPos(), item, self.mapToScene(event.pos()), event.pos())

    # ---- keys --------------------------------------------------------------------------
    def event(self, event):
        if event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Tab:
            vp = self._last_mouse.toPoint()
            if not self.viewport().rect().contains(vp):
                vp = self.viewport().rect().center()
            self.open_search(vp, self.mapToScene(vp))
            return True
        return super().event(event)

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Escape and self._wire_from is not None:
            self._cancel_wire()
            self._detaching = None
            self.scene().sync()  # a wire picked up goes back
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            return
        super().keyReleaseEvent(event)

    # ---- quick-add box ----------------------------------------------------------------
    def open_search(self, view_pos, scene_pos: QPointF, only: set[str] | None = None) -> None:
        """The quick-add box; `only` limits it to these types (those a dropped wire fits)."""
        if only is None:
            self._search_wire = None
        self._search_at = scene_pos
        self.search.open_at(view_pos.x(), view_pos.y(), only)

    def _add_from_search(self, type_name: str) -> None:
        wire, self._search_wire = self._search_wire, None
        x, y = self._search_at.x(), self._search_at.y()
        if wire is None:
            node_id = self.editor.add_node(type_name, x, y)
            self.scene().select_ids([node_id])
            return
        direction, other, other_port, kind = wire
        # the new node goes on the wire's loose end: right of an output, left of an input
        stack = self.editor.stack
        stack.beginMacro(f"Add {type_name} on a wire")
        node_id = self.editor.add_node(type_name, x if direction == "out" else x - style.NODE_WIDTH, y - 50)
        ins, outs = self.editor.doc.ports(node_id)
        if direction == "out":
            port = next((p for p in ins if kind_accepts(p.kind, kind)), None)
            if port is not None:
                self.editor.connect_ports(other, other_port, node_id, port.name)
        else:
            port = next((p for p in outs if kind_accepts(kind, p.kind)), None)
            if port is not None:
                self.editor.connect_ports(node_id, port.name, other, other_port)
        stack.endMacro()
        self.scene().select_ids([node_id])

    # ---- wiring -----------------------------------------------------------------------
    def _begin_wire(self, port: PortItem, pos: QPointF) -> None:
        self._wire_from = port
        self._wire = QGraphicsPathItem()
        pen = QPen(style.TEXT, 2, Qt.PenStyle.DashLine)
        self._wire.setPen(pen)
        self._wire.setZValue(5)
        self.scene().addItem(self._wire)
        for p in self.scene().all_ports():  # show where this wire may go
            if p.direction == port.direction:
                p.set_highlight("bad")
            else:
                out_kind, in_kind = (port.kind, p.kind) if port.direction == "out" else (p.kind, port.kind)
                p.set_highlight(None if kind_accepts(in_kind, out_kind) else "bad")
        self._update_wire(pos)

    def _update_wire(self, pos: QPointF) -> None:
        start = self._wire_from.scenePos()
        target = self.scene().port_at(pos)
        if self._hover_target is not None and self._hover_target.highlight == "ok":
            self._hover_target.set_highlight(None)
        self._hover_target = None
        if target is not None and target.highlight is None and target.direction != self._wire_from.direction:
            target.set_highlight("ok")
            self._hover_target = target
            pos = target.scenePos()
            self._clear_toast()
        elif target is not None and target.highlight == "bad" and target is not self._wire_from:
            if target is not self._refusing:  # say why, once per port hovered
                self._refusing = target
                self.toast(target.scenePos(), self._refusal(self._wire_from, target))
        a, b = (start, pos) if self._wire_from.direction == "out" else (pos, start)
        self._wire.setPath(wire_path(a, b))

    def _refusal(self, a: PortItem, b: PortItem) -> str:
        if a.direction == b.direction:
            return f"Can't connect two {'inputs' if a.direction == 'in' else 'outputs'}"
        out, inp = (a, b) if a.direction == "out" else (b, a)
        from ..edits import connection_problem

        reason = connection_problem(self.editor.doc, out.node_id, out.port, inp.node_id, inp.port)
        return f"Can't connect: {reason}" if reason else ""

    def _move_wire(self, key: tuple, target: PortItem | None, pos: QPointF) -> None:
        """A wire picked up at its input: dropped on another input it moves there, on empty
        canvas it is removed, anywhere else it stays as it was."""
        src, src_port, dst, dst_port = key
        if target is not None and target.direction == "in" and (target.node_id, target.port) != (dst, dst_port):
            from ..edits import connection_problem

            reason = connection_problem(self.editor.doc, src, src_port, target.node_id, target.port)
            if reason:
                self.toast(pos, f"Can't connect: {reason}")
                self.scene().sync()
                return
            self.editor.stack.beginMacro(f"Move wire {src}.{src_port} to {target.node_id}.{target.port}")
            self.editor.delete([], [key])
            self.editor.connect_ports(src, src_port, target.node_id, target.port)
            self.editor.stack.endMacro()
        elif target is None and self._on_empty_canvas(pos):
            self.editor.delete([], [key])
        else:
            self.scene().sync()  # put the wire back

    def _cancel_wire(self) -> None:
        if self._wire is not None:
            self.scene().removeItem(self._wire)
        self._wire = None
        self._wire_from = None
        self._hover_target = None
        self._refusing = None
        for p in self.scene().all_ports():
            p.set_highlight(None)

    def _picked_up(self, port: PortItem) -> tuple | None:
        """The wire into a connected input: dragging from there moves or detaches it."""
        if port.direction != "in":
            return None
        e = self.editor.doc.inbound(port.node_id, port.port)
        return (e.src, e.src_port, e.dst, e.dst_port) if e is not None else None

    def _on_empty_canvas(self, pos: QPointF) -> bool:
        return not any(isinstance(it, (BoxItem, PortItem)) for it in self.scene().items(pos))

    def _end_wire(self, pos: QPointF) -> None:
        start = self._wire_from
        detaching, self._detaching = self._detaching, None
        target = self.scene().port_at(pos)
        self._cancel_wire()
        if detaching is not None:
            self._move_wire(detaching, target, pos)
            return
        if target is None and self._on_empty_canvas(pos):
            # a wire dropped on empty canvas: pick a node to put on its end
            self._search_wire = (start.direction, start.node_id, start.port, start.kind)
            self.open_search(self.mapFromScene(pos), pos, only=compatible_types(start.direction, start.kind))
            return
        if target is None or target is start:
            return
        if start.direction == target.direction:
            self.toast(pos, f"Can't connect two {'inputs' if start.direction == 'in' else 'outputs'}: "
                            "drag from an output to an input")
            return
        out, inp = (start, target) if start.direction == "out" else (target, start)
        self.editor.connect_ports(out.node_id, out.port, inp.node_id, inp.port)

    @property
    def toast_text(self) -> str | None:
        """The message on show on the canvas, if any."""
        return self._toast.text if self._toast is not None else None

    def toast_at_mouse(self, text: str) -> None:
        self.toast(self.mapToScene(self._last_mouse.toPoint()), text)

    def toast(self, pos: QPointF, text: str) -> None:
        """A short message on the canvas near where the user is looking."""
        self._clear_toast()
        if not text:
            return
        item = ToastItem(text)
        at = self.mapFromScene(pos) + QPoint(12, 12)  # keep it inside the view
        at.setX(max(4, min(at.x(), self.viewport().width() - int(item.rect.width()) - 8)))
        at.setY(max(4, min(at.y(), self.viewport().height() - int(item.rect.height()) - 8)))
        item.setPos(self.mapToScene(at))
        self.scene().addItem(item)
        self._toast = item
        self._toast_timer.start()

    def _clear_toast(self) -> None:
        if self._toast is not None and self._toast.scene() is self.scene():
            self.scene().removeItem(self._toast)
        self._toast = None

    # ---- drops from the palette ------------------------------------------------------
    def dragEnterEvent(self, event):
        if event.mimeData().hasFormat(NODE_TYPE_MIME):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):
        if event.mimeData().hasFormat(NODE_TYPE_MIME):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):
        if event.mimeData().hasFormat(NODE_TYPE_MIME):
            type_name = bytes(event.mimeData().data(NODE_TYPE_MIME)).decode("utf-8")
            self.drop_node(type_name, self.mapToScene(event.position().toPoint()))
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            super().dropEvent(event)

    def drop_node(self, type_name: str, scene_pos: QPointF) -> str | None:
        from deephtm.graph import registry

        if registry.get(type_name) is None:
            return None
        node_id = self.editor.add_node(type_name, scene_pos.x() - style.NODE_WIDTH / 2, scene_pos.y() - 20)
        self.scene().select_ids([node_id])
        self.setFocus()
        return node_id


class ToastItem(QGraphicsItem):
    """A short message on the canvas, the same size at any zoom, readable over wires."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.font = style.font(10, bold=True)
        size = QFontMetricsF(self.font).size(0, text)
        self.rect = QRectF(0, 0, size.width() + 20, size.height() + 12)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setZValue(10)

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-1, -1, 1, 1)

    def paint(self, painter, option, widget=None):
        painter.setPen(QPen(style.ERROR, 1.5))
        painter.setBrush(QBrush(style.CANVAS_BG.darker(140)))
        painter.drawRoundedRect(self.rect, 6, 6)
        painter.setFont(self.font)
        painter.setPen(style.TEXT)
        painter.drawText(self.rect, Qt.AlignmentFlag.AlignCenter, self.text)
