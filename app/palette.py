"""The palette: every node type in the engine's registry, grouped by category, with a
filter box. Drag a type onto the canvas, or double-click it to add it at the view centre."""
from __future__ import annotations

from PyQt6.QtCore import QMimeData, Qt, pyqtSignal
from PyQt6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from deephtm.graph import registry

from .canvas.view import NODE_TYPE_MIME

TYPE_ROLE = Qt.ItemDataRole.UserRole


def type_mime(type_name: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(NODE_TYPE_MIME, type_name.encode("utf-8"))
    mime.setText(type_name)
    return mime


class _TypeTree(QTreeWidget):
    def supportedDropActions(self):
        # copy only: a "move" drag would make the view remove the type from the palette
        return Qt.DropAction.CopyAction

    def mimeTypes(self):
        return [NODE_TYPE_MIME]

    def mimeData(self, items):
        names = [it.data(0, TYPE_ROLE) for it in items if it.data(0, TYPE_ROLE)]
        return type_mime(names[0]) if names else None


class Palette(QWidget):
    add_requested = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter node types…")
        self.filter.setClearButtonEnabled(True)
        self.tree = _TypeTree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree)
        self._categories: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.filter.textChanged.connect(self.apply_filter)
        self.tree.itemActivated.connect(self._activated)

    def _populate(self) -> None:
        for name, cls in sorted(registry.types().items(), key=lambda kv: (kv[1].category, kv[0])):
            cat = cls.category or "other"
            parent = self._categories.get(cat)
            if parent is None:
                parent = self._categories[cat] = QTreeWidgetItem(self.tree, [cat])
                parent.setFlags(Qt.ItemFlag.ItemIsEnabled)
                font = parent.font(0)
                font.setBold(True)
                parent.setFont(0, font)
            item = QTreeWidgetItem(parent, [name])
            item.setData(0, TYPE_ROLE, name)
            item.setToolTip(0, cls.doc)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
        self.tree.expandAll()

    def apply_filter(self, text: str) -> None:
        words = text.lower().split()
        for cat, parent in self._categories.items():
            shown = 0
            for i in range(parent.childCount()):
                item = parent.child(i)
                cls = registry.get(item.data(0, TYPE_ROLE))
                hay = f"{item.text(0)} {cat} {cls.doc}".lower()
                hide = not all(w in hay for w in words)
                item.setHidden(hide)
                shown += not hide
            parent.setHidden(shown == 0)

    def visible_types(self) -> list[str]:
        out = []
        for parent in self._categories.values():
            for i in range(parent.childCount()):
                if not parent.isHidden() and not parent.child(i).isHidden():
                    out.append(parent.child(i).data(0, TYPE_ROLE))
        return out

    def _activated(self, item, _col) -> None:
        name = item.data(0, TYPE_ROLE)
        if name:
            self.add_requested.emit(name)
