"""The quick-add box (Tab or double-click on the canvas, or a wire dropped on empty canvas):
type to filter node types, Enter adds the highlighted one where the box was opened."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QFrame, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from deephtm.graph import registry
from deephtm.graph.spec import kind_accepts


def compatible_types(direction: str, kind: str) -> set[str]:
    """Types with a port a wire from a `direction` port of `kind` can go to."""
    out = set()
    for name, cls in registry.types().items():
        if direction == "out" and any(kind_accepts(p.kind, kind) for p in cls.inputs):
            out.add(name)
        elif direction == "in" and any(kind_accepts(kind, p.kind) for p in cls.outputs):
            out.add(name)
    return out


def matching_types(text: str, only: set[str] | None = None) -> list[str]:
    """Type names whose name, category or doc contain every word of text; names first."""
    words = text.lower().split()
    scored = []
    for name, cls in sorted(registry.types().items()):
        if only is not None and name not in only:
            continue
        lname = name.lower()
        parts = lname.split(".")
        hay = f"{lname} {cls.category} {cls.doc}".lower()
        if not all(w in hay for w in words):
            continue
        if all(any(p.startswith(w) for p in parts) for w in words):
            rank = 0  # "tm" finds htm.tm before htm.sp
        elif all(w in lname for w in words):
            rank = 1
        else:
            rank = 2
        scored.append((rank, name))
    return [name for _, name in sorted(scored)]


class NodeSearch(QFrame):
    chosen = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("Add node: type to search…")
        self.only: set[str] | None = None  # the types on offer; None: all
        self.list = QListWidget(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.edit)
        lay.addWidget(self.list)
        self.resize(280, 260)
        self.edit.textChanged.connect(self.refilter)
        self.edit.returnPressed.connect(self.accept)
        self.list.itemActivated.connect(lambda _item: self.accept())
        self.edit.installEventFilter(self)
        self.hide()

    def open_at(self, x: int, y: int, only: set[str] | None = None) -> None:
        self.only = only
        parent = self.parentWidget()
        x = max(0, min(x, parent.width() - self.width()))
        y = max(0, min(y, parent.height() - self.height()))
        self.move(x, y)
        self.edit.clear()
        self.refilter("")
        self.show()
        self.raise_()
        self.edit.setFocus()

    def refilter(self, text: str) -> None:
        self.list.clear()
        for name in matching_types(text, getattr(self, "only", None)):
            cls = registry.get(name)
            item = QListWidgetItem(f"{name}   ·  {cls.category}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(cls.doc)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def accept(self) -> None:
        item = self.list.currentItem()
        self.hide()
        if item is not None:
            self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))
        if self.parentWidget():
            self.parentWidget().setFocus()

    def eventFilter(self, obj, event):
        if event.type() == event.Type.KeyPress:
            key = event.key()
            if key == Qt.Key.Key_Escape:
                self.hide()
                self.parentWidget().setFocus()
                return True
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
        return super().eventFilter(obj, event)
