"""Node boxes: a graph node, or a collapsed group standing in for its members."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QBrush, QColor, QFontMetricsF, QPainterPath, QPen
from PyQt6.QtWidgets import QGraphicsItem

from . import style
from .port_item import PortItem


class BoxItem(QGraphicsItem):
    """A titled box with input ports on the left and output ports on the right.
    ports: lists of (node_id, port, kind, label, doc)."""

    def __init__(self, key: str, title: str, subtitle: str, category: str, inputs: list, outputs: list,
                 summary: str | None = None):
        super().__init__()
        self.key = key
        self.summary = summary  # a line of the params the file sets; None: no such line
        self.prefix = ""  # drawn before the title
        self.title = title
        self.subtitle = subtitle
        self.category = category
        self.error: str | None = None
        self.edges: list = []  # EdgeItems attached, kept by the scene
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsScenePositionChanges)
        self.setZValue(1)
        self.height = style.node_height(len(inputs), len(outputs)) + (style.SUMMARY_ROW if summary is not None else 0)
        self.ports: dict[tuple[str, str, str], PortItem] = {}
        self._labels: list[tuple[float, str, str]] = []  # (y, text, "in"/"out")
        self._dots: list[tuple[float, float, object]] = []  # (x, y, colour) of each port
        # No item cache (Qt's DeviceCoordinateCache): drawing a node from it crashed now and then
        # in QGraphicsView::paintEvent after windows came and went, and on a 300-node graph it
        # saved no frame time (benchmarks/editor_open.py).
        for direction, plist, x in (("in", inputs, 0.0), ("out", outputs, style.NODE_WIDTH)):
            for i, (node_id, port, kind, label, doc) in enumerate(plist):
                item = PortItem(self, direction, node_id, port, kind, label, doc)
                y = style.HEADER_HEIGHT + (i + 0.5) * style.PORT_ROW + 4
                item.setPos(x, y)
                self.ports[item.ref] = item
                self._labels.append((y, label, direction))
                self._dots.append((x, y, style.kind_color(kind)))

    def boundingRect(self) -> QRectF:
        m = style.PORT_RADIUS + 2  # the port dots stick out of the box
        return QRectF(-m, -3, style.NODE_WIDTH + 2 * m, self.height + 6)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(QRectF(0, 0, style.NODE_WIDTH, self.height))
        return path

    def set_tip(self, text: str) -> None:
        self.tip = text
        self.setToolTip(f"{self.error}\n\n{text}" if self.error else text)

    def set_title(self, title: str, subtitle: str) -> None:
        if (title, subtitle) != (self.title, self.subtitle):
            self.title, self.subtitle = title, subtitle
            self.update()

    def set_summary(self, text: str) -> None:
        if self.summary is not None and text != self.summary:
            self.summary = text
            self.update()

    def set_error(self, text: str | None) -> None:
        if text != self.error:
            self.error = text
            self.set_tip(getattr(self, "tip", ""))
            self.update()

    def paint(self, painter, option, widget=None):
        w, h = style.NODE_WIDTH, self.height
        body = QRectF(0, 0, w, h)
        if option.levelOfDetailFromTransform(painter.worldTransform()) < style.LOD_TEXT:
            # zoomed far out: text would be unreadable; flat boxes keep big graphs fluid
            painter.fillRect(body, style.NODE_BG)
            painter.fillRect(QRectF(0, 0, w, style.HEADER_HEIGHT), self.header_color())
            if self.isSelected() or self.error:
                painter.setPen(QPen(style.SELECTED if self.isSelected() else style.ERROR, 0))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRect(body)
            r = style.PORT_RADIUS
            for x, y, color in self._dots:
                painter.fillRect(QRectF(x - r, y - r, 2 * r, 2 * r), color)
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(style.NODE_BG))
        painter.drawRoundedRect(body, 6, 6)
        painter.setBrush(QBrush(self.header_color()))
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, w, style.HEADER_HEIGHT), 6, 6)
        header.addRect(QRectF(0, style.HEADER_HEIGHT - 6, w, 6))
        painter.drawPath(header.simplified())
        if self.isSelected():
            border = QPen(style.SELECTED, 2.5)
        elif self.error:
            border = QPen(style.ERROR, 2.5)
        else:
            border = QPen(style.NODE_BORDER, 1.2)
        painter.setPen(border)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(body, 6, 6)
        painter.setPen(style.TEXT)
        painter.setFont(style.font(9.5, bold=True))
        painter.drawText(QRectF(10, 3, w - 20, 20), Qt.AlignmentFlag.AlignVCenter, self.prefix + self.title)
        painter.setPen(style.SUBTITLE)
        painter.setFont(style.font(8.5))
        painter.drawText(QRectF(10, 20, w - 20, 16), Qt.AlignmentFlag.AlignVCenter, self.subtitle)
        if self.error:
            painter.setPen(style.ERROR)
            painter.setFont(style.font(10, bold=True))
            painter.drawText(QRectF(w - 24, 3, 18, 20), Qt.AlignmentFlag.AlignCenter, "!")
        r = style.PORT_RADIUS
        painter.setPen(QPen(style.NODE_BORDER, 1.5))
        for x, y, color in self._dots:
            painter.setBrush(QBrush(color))
            painter.drawEllipse(QRectF(x - r, y - r, 2 * r, 2 * r))
        if self.summary:
            painter.setFont(style.font(7.5))
            painter.setPen(style.TEXT_DIM)
            box = QRectF(10, h - style.SUMMARY_ROW - 4, w - 20, style.SUMMARY_ROW)
            text = QFontMetricsF(painter.font()).elidedText(self.summary, Qt.TextElideMode.ElideRight, box.width())
            painter.drawText(box, Qt.AlignmentFlag.AlignVCenter, text)
        painter.setFont(style.font(8.5))
        painter.setPen(style.TEXT)
        half = w / 2 - 12
        for y, text, direction in self._labels:
            if direction == "in":
                painter.drawText(QRectF(12, y - 9, half, 18), Qt.AlignmentFlag.AlignVCenter, text)
            else:
                painter.drawText(QRectF(w - 12 - half, y - 9, half, 18),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text)

    def header_color(self) -> QColor:
        color = getattr(self, "color", None)  # a group's own colour
        return QColor(color).darker(160) if color else style.NODE_HEADER.get(self.category, style.NODE_HEADER_DEFAULT)

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged and self.scene() is not None:
            self.scene().item_moved(self)
        return super().itemChange(change, value)

    def port_pos(self, ref) -> QPointF | None:
        item = self.ports.get(ref)
        return item.scenePos() if item is not None else None


class NodeItem(BoxItem):
    kind = "node"


class CollapsedGroupItem(BoxItem):
    """A collapsed group: its ports are the member ports wired across its boundary."""
    kind = "group"

    def __init__(self, key, title, subtitle, inputs, outputs, members: list[str]):
        super().__init__(key, title, subtitle, "group", inputs, outputs)
        self.prefix = "▸ "  # click it to expand
        self.members = members  # leaf node ids; they move with this box

    def arrow_rect(self) -> QRectF:
        """The ▸ that expands the group."""
        return QRectF(4, 0, 22, 22)

    def mousePressEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton and self.arrow_rect().contains(event.pos()):
            self.scene().request_collapse(self.key, False)
            event.accept()
            return
        super().mousePressEvent(event)

    def paint(self, painter, option, widget=None):
        # a stacked look says "several nodes inside"
        painter.setPen(QPen(style.NODE_BORDER, 1))
        painter.setBrush(QBrush(style.NODE_BG.darker(130)))
        painter.drawRoundedRect(QRectF(5, 5, style.NODE_WIDTH, self.height), 6, 6)
        super().paint(painter, option, widget)

    def boundingRect(self) -> QRectF:
        m = style.PORT_RADIUS + 2
        return QRectF(-m, -3, style.NODE_WIDTH + 2 * m + 6, self.height + 12)
