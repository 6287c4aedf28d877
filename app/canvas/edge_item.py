"""Wires between ports: a cubic curve coloured by the data kind; delayed (recurrent) edges
are dashed and labelled t-1."""
from __future__ import annotations

import zlib

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QPainterPath, QPainterPathStroker, QPen
from PyQt6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from . import routing, style


def wire_path(a: QPointF, b: QPointF) -> QPainterPath:
    dx = max(40.0, abs(b.x() - a.x()) * 0.5)
    path = QPainterPath(a)
    path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


def path_clear(path: QPainterPath, boxes: list, ends: list) -> bool:
    """Does the wire stay off every box? Its own end boxes only count inside their body,
    where the port dots (on the body's edge) are not."""
    stroker = QPainterPathStroker()
    stroker.setWidth(2)
    stroke = stroker.createStroke(path)
    bounds = stroke.boundingRect()
    for item, rect in boxes:
        if item in ends:
            rect = item.mapRectToScene(QRectF(0, 0, style.NODE_WIDTH, item.height)).adjusted(2, 2, -2, -2)
        else:
            rect = rect.adjusted(-3, -3, 3, 3)
        if bounds.intersects(rect) and stroke.intersects(rect):
            return False
    return True


def rounded_path(points: list[QPointF], radius: float = 10.0) -> QPainterPath:
    """A polyline with its corners rounded off (each curve stays inside its corner)."""
    path = QPainterPath(points[0])
    for i in range(1, len(points) - 1):
        p, c, n = points[i - 1], points[i], points[i + 1]
        d1 = max(abs(c.x() - p.x()), abs(c.y() - p.y()))
        d2 = max(abs(n.x() - c.x()), abs(n.y() - c.y()))
        r = min(radius, d1 / 2, d2 / 2)
        path.lineTo(_towards(c, p, r))
        path.quadTo(c, _towards(c, n, r))
    path.lineTo(points[-1])
    return path


def _towards(c: QPointF, p: QPointF, r: float) -> QPointF:
    d = max(abs(p.x() - c.x()), abs(p.y() - c.y())) or 1.0
    return QPointF(c.x() + (p.x() - c.x()) * r / d, c.y() + (p.y() - c.y()) * r / d)


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
        self.setAcceptHoverEvents(True)
        self.hovered = False
        self.via: list[QPointF] = []  # reroute points the wire passes through, left to right
        self.handles: list = []  # their RerouteItems (children: they go when the wire goes)
        self.setZValue(0)
        self.tip = f"{key[0]}.{key[1]} -> {key[2]}.{key[3]}" + (" (delayed: previous step's value)" if delay else "")
        self.setToolTip(self.tip)
        self._apply_pen()

    def _apply_pen(self) -> None:
        color = style.ERROR if self.error else (style.DELAY_COLOR if self.delay else style.kind_color(self.kind))
        width = 3.2 if self.isSelected() or self.hovered else 2.0
        if self.hovered and not self.isSelected():
            color = color.lighter(150)
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

    def hoverEnterEvent(self, event):
        self._hover(True)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):
        self._hover(False)
        super().hoverLeaveEvent(event)

    def _hover(self, on: bool) -> None:
        """Light up the wire and its two ports, so which ports it joins is plain to see."""
        self.hovered = on
        self.setZValue(0.5 if on else 0)  # above the other wires, still below the boxes
        self._apply_pen()
        for item, ref in ((self.src_item, self.src_ref), (self.dst_item, self.dst_ref)):
            port = item.ports.get(ref) if item is not None else None
            if port is not None and port.highlight in (None, "hover"):
                port.set_highlight("hover" if on else None)

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
        self.setPath(self._route(a, b))
        self.setVisible(True)

    def set_via(self, points: list[QPointF]) -> None:
        from .reroute import RerouteItem

        self.via = list(points)
        while len(self.handles) > len(self.via):
            h = self.handles.pop()
            h.setParentItem(None)
            if h.scene() is not None:
                h.scene().removeItem(h)
        while len(self.handles) < len(self.via):
            self.handles.append(RerouteItem(self, len(self.handles)))
            self.handles[-1].setParentItem(self)
        for h, p in zip(self.handles, self.via):
            if h.pos() != p:
                h.setPos(p)

    def _route(self, a: QPointF, b: QPointF) -> QPainterPath:
        """The wire through its reroute points, leg by leg."""
        if not self.via:
            return self._leg(a, b, [it for it in (self.src_item, self.dst_item) if it is not None], self.delay)
        stops = [a] + self.via + [b]
        path = QPainterPath(a)
        for i, (p, q) in enumerate(zip(stops, stops[1:])):
            ends = ([self.src_item] if i == 0 else []) + ([self.dst_item] if i == len(stops) - 2 else [])
            path.connectPath(self._leg(p, q, [e for e in ends if e is not None], 0))
        return path

    def _leg(self, a: QPointF, b: QPointF, ends: list, delay: int) -> QPainterPath:
        """The plain curve when it is clear of every box, else a route around the boxes: a
        wire drawn behind a box would look like a connection to that box."""
        boxes = self.scene().obstacles() if self.scene() is not None else []
        if delay and b.x() <= a.x():
            # a recurrent edge goes back: loop below the nodes instead of through them
            path = QPainterPath(a)
            low = max([it.sceneBoundingRect().bottom() for it in ends] + [a.y(), b.y()]) + 40
            path.cubicTo(QPointF(a.x() + 80, low), QPointF(b.x() - 80, low), b)
        else:
            path = wire_path(a, b)
        if path_clear(path, boxes, ends):
            return path
        rects = [(r.left(), r.top(), r.right(), r.bottom()) for _, r in boxes]
        # wires through one channel take slightly different lines, so they stay apart
        margin = 8.0 + (zlib.crc32(repr(self.key).encode()) % 4) * 4.0
        corners = routing.route((a.x(), a.y()), (b.x(), b.y()), rects, margin)
        return rounded_path([QPointF(x, y) for x, y in corners])

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
