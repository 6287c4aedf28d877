"""An expanded group: a titled region drawn behind its members. Clicking the title bar
selects the group (the inspector renames it), dragging it moves the members; the ▾ (or a
double-click on the bar) collapses the group."""
from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QBrush, QColor, QPainterPath, QPen
from PyQt6.QtWidgets import QGraphicsItem

from . import style

MARGIN = 18.0
TITLE_HEIGHT = 24.0


class GroupFrameItem(QGraphicsItem):
    def __init__(self, gid: str, title: str, members: list[str]):
        super().__init__()
        self.key = gid
        self.title = str(title)  # a hand-edited file may hold a number
        self.members = members  # leaf node ids
        self.rect = QRectF()
        self.color: str | None = None  # the group's own colour (its ui), else the default
        self._drag_from = None
        self.setZValue(-1)
        self.setAcceptHoverEvents(True)
        # only the title bar takes clicks: a rubber band inside the frame picks its nodes
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setToolTip(f"group '{gid}': click the title to select and rename it, drag it to move, "
                        "▾ collapses")

    def fit(self, member_rects: list[QRectF]) -> None:
        if not member_rects:
            r = QRectF()
        else:
            r = member_rects[0]
            for m in member_rects[1:]:
                r = r.united(m)
            r = r.adjusted(-MARGIN, -MARGIN - TITLE_HEIGHT, MARGIN, MARGIN)
        if r != self.rect:
            self.prepareGeometryChange()
            self.rect = r

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-2, -2, 2, 2)

    def title_rect(self) -> QRectF:
        return QRectF(self.rect.left(), self.rect.top(), self.rect.width(), TITLE_HEIGHT)

    def arrow_rect(self) -> QRectF:
        """The ▾ that collapses the group."""
        return QRectF(self.rect.left() + 4, self.rect.top(), 24, TITLE_HEIGHT)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.title_rect())
        return path

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.update()
        return super().itemChange(change, value)

    def paint(self, painter, option, widget=None):
        selected = self.isSelected()
        border, fill = style.GROUP_BORDER, style.GROUP_FILL
        if self.color:
            border, fill = QColor(self.color), QColor(self.color)
            border.setAlpha(200)
            fill.setAlpha(40)
        painter.setPen(QPen(style.SELECTED if selected else border, 2.5 if selected else 1.5, Qt.PenStyle.DashLine))
        painter.setBrush(QBrush(fill))
        painter.drawRoundedRect(self.rect, 10, 10)
        painter.setPen(style.TEXT)
        painter.setFont(style.font(10, bold=True))
        painter.drawText(self.title_rect().adjusted(12, 0, -12, 0), Qt.AlignmentFlag.AlignVCenter,
                         f"▾ {self.title}")

    def mousePressEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton and self.arrow_rect().contains(event.pos()):
            self.scene().request_collapse(self.key, True)
            event.accept()
        elif event.button() == Qt.MouseButton.LeftButton and self.title_rect().contains(event.pos()):
            if not event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier):
                self.scene().clearSelection()
            self.setSelected(True)
            self._drag_from = event.scenePos()
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event):
        if self._drag_from is None:
            return
        delta = event.scenePos() - self._drag_from
        self._drag_from = event.scenePos()
        self.scene().shift_nodes(self.members, delta)

    def mouseReleaseEvent(self, event):
        self._drag_from = None

    def mouseDoubleClickEvent(self, event):
        if self.title_rect().contains(event.pos()):
            self.scene().request_collapse(self.key, True)
            event.accept()
        else:
            event.ignore()
