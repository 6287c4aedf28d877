"""The overview in the canvas corner: every box of the graph in miniature with the part on
show outlined. Clicking or dragging in it moves the view there. It shows itself only when
the graph does not fit the view."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QBrush, QColor, QPainter, QPen
from PyQt6.QtWidgets import QWidget

from . import style

SIZE = (200, 130)
MARGIN = 10


class Minimap(QWidget):
    def __init__(self, view):
        super().__init__(view.viewport())
        self.view = view
        self.resize(*SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to look at another part of the graph")
        self.hide()

    # ---- geometry -----------------------------------------------------------------
    def _world(self) -> QRectF:
        """The scene area the map shows: the graph and the part of it on show."""
        content = self.view.scene().content_rect()
        return content.united(self._visible()).adjusted(-40, -40, 40, 40)

    def _visible(self) -> QRectF:
        return self.view.mapToScene(self.view.viewport().rect()).boundingRect()

    def _scale(self, world: QRectF) -> float:
        return min((self.width() - 8) / max(world.width(), 1), (self.height() - 8) / max(world.height(), 1))

    def to_map(self, p: QPointF, world: QRectF | None = None) -> QPointF:
        world = world or self._world()
        k = self._scale(world)
        return QPointF(4 + (p.x() - world.left()) * k, 4 + (p.y() - world.top()) * k)

    def to_scene(self, p: QPointF) -> QPointF:
        world = self._world()
        k = self._scale(world)
        return QPointF(world.left() + (p.x() - 4) / k, world.top() + (p.y() - 4) / k)

    def refresh(self) -> None:
        """Show the map when the graph is bigger than the view; keep it in the corner."""
        if self.view.scene() is None:  # the window is being torn down
            return
        vp = self.view.viewport()
        self.move(vp.width() - self.width() - MARGIN, vp.height() - self.height() - MARGIN)
        content = self.view.scene().content_rect()
        wanted = not content.isEmpty() and not self._visible().contains(content)
        if wanted != self.isVisible():
            self.setVisible(wanted)
        if wanted:
            self.raise_()
            self.update()

    # ---- drawing and mouse ------------------------------------------------------------
    def paintEvent(self, event):
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        back = QColor(style.CANVAS_BG.darker(130))
        back.setAlpha(230)
        painter.setPen(QPen(style.NODE_BORDER.lighter(250), 1))
        painter.setBrush(QBrush(back))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)
        world = self._world()
        scene = self.view.scene()
        painter.setPen(Qt.PenStyle.NoPen)
        for item, rect in scene.obstacles():
            painter.setBrush(item.header_color())
            painter.drawRect(QRectF(self.to_map(rect.topLeft(), world), self.to_map(rect.bottomRight(), world)))
        painter.setPen(QPen(style.SELECTED, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        vis = self._visible()
        painter.drawRect(QRectF(self.to_map(vis.topLeft(), world), self.to_map(vis.bottomRight(), world)))

    def mousePressEvent(self, event):
        self.view.centerOn(self.to_scene(event.position()))
        event.accept()

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.view.centerOn(self.to_scene(event.position()))
        event.accept()
