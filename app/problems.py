"""The problems list: the engine's validation errors; clicking one selects its node."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QListWidget, QListWidgetItem

from .analysis import Analysis

PROBLEM_ROLE = Qt.ItemDataRole.UserRole


class ProblemsList(QListWidget):
    select_requested = pyqtSignal(list)  # ids of the nodes (or group) a problem is about

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.itemClicked.connect(self._clicked)
        self.itemActivated.connect(self._clicked)
        self.problems = []

    def show_analysis(self, analysis: Analysis) -> None:
        self.clear()
        self.problems = list(analysis.problems)
        if not self.problems:
            ok = QListWidgetItem("✓ The graph resolves: "
                                 f"{analysis.total_values:,} weights and state values.")
            ok.setForeground(QColor("#3c9a3c"))
            self.addItem(ok)
            return
        for p in self.problems:
            item = QListWidgetItem(f"✗ {p.text}")
            item.setForeground(QColor("#d9383e"))
            item.setData(PROBLEM_ROLE, p)
            self.addItem(item)

    def _clicked(self, item) -> None:
        p = item.data(PROBLEM_ROLE)
        if p is None:
            return
        if p.node:
            ids = [p.node]
        elif p.edge:
            ids = [p.edge[2], p.edge[0]]
        elif p.group:
            ids = [p.group]
        else:
            return
        self.select_requested.emit(ids)
