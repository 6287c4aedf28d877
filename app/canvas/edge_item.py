"""Wires between ports: a cubic curve coloured by the data kind; delayed (recurrent) edges
are dashed and labelled t-1."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QPainterPath, QPainterPathStroker, QPen
from PyQt6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from . import style


def wire_path(a: QPointF, b: QPointF) -> QPainterPath:
    dx = max(40.0, abs(b.x() - a.x()) * 0.5)
    path = QPainterPath(a)
    path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


class EdgeItem(QGraphicsPathItem):
    def __init__(self, key: tuple, delay: int, kind: str):
        super().__init__()
        self.key = key  # (src, src_port, dst, dst_port)
        self.delay = delay
        self.kind = kind
        self.error: str | None = None
        self.src_item = None
        self.dst_item = None
        self.src_ref = ("out", key[0], key[1])
        self.dst_ref = ("in", key[2], key[3])
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self.tip = f"{key[0]}.{key[1]} -> {key[2]}.{key[3]}" + (" (delayed: previous step's value)" if delay else "")
        self.setToolTip(self.tip)
        self._apply_pen()

    def _apply_pen(self) -> None:
        color = style.ERROR if self.error else (style.DELAY_COLOR if self.delay else style.kind_color(self.kind))
        width = 3.2 if self.isSelected() else 2.0
        pen = QPen(style.SELECTED if self.isSelected() else color, width)
        if self.delay:
            pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self.setPen(pen)

    def set_error(self, text: str | None) -> None:
        if text != self.error:
            self.error = text
            self.setToolTip(f"{text}\n\n{self.tip}" if text else self.tip)
            self._apply_pen()

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self._apply_pen()
        return super().itemChange(change, value)

    def update_path(self) -> None:
        a = self.src_item.port_pos(self.src_ref) if self.src_item else None
        b = self.dst_item.port_pos(self.dst_ref) if self.dst_item else None
        if a is None or b is None:
            self.setVisible(False)
            return
        if self.delay and b.x() <= a.x():
            # a recurrent edge goes back: loop below the nodes instead of through them
            path = QPainterPath(a)
            bottoms = [it.sceneBoundingRect().bottom() for it in (self.src_item, self.dst_item)]
            low = max(bottoms + [a.y(), b.y()]) + 40
            path.cubicTo(QPointF(a.x() + 80, low), QPointF(b.x() - 80, low), b)
        else:
            path = wire_path(a, b)
        self.setPath(path)
        self.setVisible(True)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def paint(self, painter, option, widget=None):
        far = option.levelOfDetailFromTransform(painter.worldTransform()) < style.LOD_TEXT
        if far:
            painter.setRenderHint(painter.RenderHint.Antialiasing, False)
        super().paint(painter, option, widget)
        if self.delay and not far:
            mid = self.path().pointAtPercent(0.5)
            path = self.path()
            loops_back = path.elementAt(path.elementCount() - 1).x <= path.elementAt(0).x
            top = mid.y() + 4 if loops_back else mid.y() - 18  # below a loop, above a forward wire
            painter.setFont(style.font(8, bold=True))
            painter.setPen(style.DELAY_COLOR)
            painter.drawText(QRectF(mid.x() - 20, top, 40, 14), Qt.AlignmentFlag.AlignCenter, "t-1")

    def boundingRect(self) -> QRectF:
        return super().boundingRect().adjusted(-22, -20, 22, 20)
