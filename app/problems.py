"""The problems list: every error and warning the engine finds; clicking one selects its
node. With none, one line says how the graph stands."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QListWidget, QListWidgetItem

from .analysis import Analysis

PROBLEM_ROLE = Qt.ItemDataRole.UserRole
ERROR_COLOR = "#d9383e"
WARNING_COLOR = "#b7791f"
OK_COLOR = "#3c9a3c"
EMPTY_TEXT = "Empty graph: add nodes from the palette."


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
        self.problems = list(analysis.problems) + list(analysis.warnings)
        for p in self.problems:
            warning = p.level == "warning"
            item = QListWidgetItem(f"{'⚠' if warning else '✗'} {p.text}")
            item.setForeground(QColor(WARNING_COLOR if warning else ERROR_COLOR))
            item.setData(PROBLEM_ROLE, p)
            self.addItem(item)
        if analysis.empty:
            self.addItem(QListWidgetItem(EMPTY_TEXT))  # neutral: there is nothing to resolve yet
        elif analysis.ok:
            ok = QListWidgetItem(f"✓ The graph resolves: {analysis.total_values:,} weights and state values.")
            ok.setForeground(QColor(OK_COLOR))
            self.addItem(ok)

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
