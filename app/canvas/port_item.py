"""A port: a small coloured circle on a node's edge. Connections are dragged from it."""
from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QBrush, QPen
from PyQt6.QtWidgets import QGraphicsItem

from . import style


class PortItem(QGraphicsItem):
    """direction is "in" or "out"; node_id/port name the real node port (for a collapsed
    group's port, the member node inside it)."""

    def __init__(self, parent, direction: str, node_id: str, port: str, kind: str, label: str, doc: str = ""):
        super().__init__(parent)
        self.direction = direction
        self.node_id = node_id
        self.port = port
        self.kind = kind
        self.label = label
        self.highlight: str | None = None  # "ok" / "bad" while a wire is dragged; "hover" on its wire
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)  # the node draws it
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.doc = doc
        self.show_shape(None)
        self.setZValue(2)

    def show_shape(self, shape) -> None:
        """Put the inferred shape in the tooltip: 'x (tensor) [256]: input code'."""
        text = "?" if shape is None else ("scalar" if shape == () else "[" + ", ".join(map(str, shape)) + "]")
        self.setToolTip(f"{self.label} ({self.kind}) {text}{': ' + self.doc if self.doc else ''}")

    def set_highlight(self, value: str | None) -> None:
        if value != self.highlight:
            self.highlight = value
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, value is None)
            if value is None and self.scene() is not None:
                # Qt skips repainting an item without contents: repaint its area through the
                # scene, else a dimmed port stays dark until something else repaints there
                self.scene().update(self.sceneBoundingRect())
            else:
                self.update()

    @property
    def ref(self) -> tuple[str, str, str]:
        return (self.direction, self.node_id, self.port)

    def boundingRect(self) -> QRectF:
        r = style.PORT_RADIUS + 3
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter, option, widget=None):
        # The node draws its ports (one cached picture per node is much cheaper than an
        # item each); a port paints itself only while a wire being dragged highlights it.
        if self.highlight is None:
            return
        r = style.PORT_RADIUS
        color = style.kind_color(self.kind)
        pen = QPen(style.NODE_BORDER, 1.5)
        if self.highlight in ("ok", "hover"):
            pen = QPen(style.SELECTED, 2.5)
            r += 1.5
        elif self.highlight == "bad":
            color = color.darker(250)
        painter.setPen(pen)
        painter.setBrush(QBrush(color))
        painter.drawEllipse(QRectF(-r, -r, 2 * r, 2 * r))
