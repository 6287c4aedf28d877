"""Reroute points: dots a wire passes through, placed by double-clicking the wire. They are
saved in the input node's ui as "reroutes": {input port: {"from": "node.port", "points":
[[x, y], ...]}}; the "from" keeps points of a wire that was since replaced from bending the
new one. Drag a dot to move it, double-click it to remove it."""
from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QBrush, QPen
from PyQt6.QtWidgets import QGraphicsItem

from . import style

RADIUS = 5.0


def reroute_points(ui: dict, src: str, src_port: str, dst_port: str) -> list[tuple[float, float]]:
    """The points saved for the wire src.src_port -> (this node).dst_port, if any are."""
    entry = ui.get("reroutes", {}).get(dst_port) if isinstance(ui.get("reroutes"), dict) else None
    if not isinstance(entry, dict) or entry.get("from") != f"{src}.{src_port}":
        return []
    out = []
    for p in entry.get("points", []) if isinstance(entry.get("points"), list) else []:
        try:
            out.append((float(p[0]), float(p[1])))
        except (TypeError, ValueError, IndexError):
            continue  # a hand-edited point that is not a pair of numbers
    return out


def with_points(ui: dict, src: str, src_port: str, dst_port: str, points) -> dict:
    """A copy of ui with the wire's points replaced (removed when there are none)."""
    ui = dict(ui)
    reroutes = dict(ui.get("reroutes") or {}) if isinstance(ui.get("reroutes"), dict) else {}
    if points:
        reroutes[dst_port] = {"from": f"{src}.{src_port}", "points": [[round(x), round(y)] for x, y in points]}
    else:
        reroutes.pop(dst_port, None)
    if reroutes:
        ui["reroutes"] = reroutes
    else:
        ui.pop("reroutes", None)
    return ui


class RerouteItem(QGraphicsItem):
    def __init__(self, edge, index: int):
        super().__init__()
        self.edge = edge  # the EdgeItem it bends
        self.index = index
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsScenePositionChanges)
        self.setZValue(1.5)  # above wires, below the boxes' ports
        self.setCursor(Qt.CursorShape.SizeAllCursor)
        self.setToolTip("reroute point: drag to move, double-click to remove")

    def boundingRect(self) -> QRectF:
        r = RADIUS + 3
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter, option, widget=None):
        painter.setPen(QPen(style.NODE_BORDER, 1.5))
        painter.setBrush(QBrush(self.edge.pen().color()))
        painter.drawEllipse(QRectF(-RADIUS, -RADIUS, 2 * RADIUS, 2 * RADIUS))

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged and self.scene() is not None \
                and not self.scene().syncing:
            self.edge.via[self.index] = self.pos()
            self.edge.update_path()
        return super().itemChange(change, value)

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        self.scene().commit_reroutes(self.edge)

    def mouseDoubleClickEvent(self, event):
        points = [p for i, p in enumerate(self.edge.via) if i != self.index]
        self.scene().commit_reroutes(self.edge, points)
        event.accept()
