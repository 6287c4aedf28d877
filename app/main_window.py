"""The editor window: canvas in the middle, palette, inspector and problems in docks, menus
with the usual shortcuts. File handling is in window_files.py, editing actions in
window_actions.py."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QTimer
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMessageBox, QScrollArea

from .autosave import AUTOSAVE_INTERVAL_MS, RecoveryStore
from .canvas.scene import GraphScene
from .canvas.view import GraphView
from .editor import Editor
from .inspector import Inspector
from .palette import Palette
from .problems import ProblemsList
from .window_actions import EditActionsMixin
from .window_files import FilesMixin


RUN_DOCK_HEIGHT = 420  # px: the run panel's buttons, status line and a readable plot grid
RUN_DOCK_MIN_HEIGHT = 260  # px: shorter shows no plot; a height the user chose above it stays


class MainWindow(FilesMixin, EditActionsMixin, QMainWindow):
    def __init__(self, settings: QSettings | None = None, recovery: RecoveryStore | None = None):
        super().__init__()
        self.settings = settings or QSettings("DeepHTM", "deephtm-app")
        self.recovery = recovery or RecoveryStore()
        self.path: str | None = None
        self.last_error: str | None = None
        self._forced_dirty = False  # recovered work: unsaved although the undo stack is clean
        self._autosaved_rev = -1
        self._paste_count = 0
        self.editor = Editor(parent=self)
        self.scene = GraphScene(self.editor, self)
        self.view = GraphView(self.scene, self)
        self.setCentralWidget(self.view)
        self.view.context_menu_hook = self._context_menu
        self.resize(1400, 860)
        self._make_docks()
        self._make_actions()
        state = self.settings.value("window_state")
        if state is not None:
            self.restoreState(state)  # the docks where the user left them
        # bound methods, not lambdas: Qt drops them when the window goes, so no signal
        # can reach a deleted window while it is torn down
        self.editor.stack.cleanChanged.connect(self._on_clean_changed)
        self.editor.message.connect(self._show_message)
        self.editor.refused.connect(self._on_refused)
        self.editor.analysed.connect(self._on_analysed)
        self.editor.validate_now()
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()
        self.update_title()
        self.statusBar().showMessage("Drag node types from the palette, or press Tab on the canvas.", 8000)

    # ---- layout ---------------------------------------------------------------------
    def _dock(self, title: str, widget, area, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _make_docks(self) -> None:
        self.palette = Palette(self)
        self.palette.add_requested.connect(self._add_at_center)
        self.inspector = Inspector(self.editor, self.scene, self)
        self.problems = ProblemsList(self)
        self.problems.select_requested.connect(self.view.center_on_ids)
        self.palette_dock = self._dock("Nodes", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea, "palette")
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea,
                                         "inspector")
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea,
                                        "problems")
        self.run_panel = None
        try:  # the training dock is optional: built separately, used when it imports
            from app.run.panel import RunPanel
            self.run_panel = RunPanel(self)
        except Exception:
            self.run_panel = None
        if self.run_panel is not None:
            # in a scroll area, so its plots don't force a tall dock on the canvas
            scroll = QScrollArea(self)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setWidget(self.run_panel)
            self.run_dock = self._dock("Run", scroll, Qt.DockWidgetArea.BottomDockWidgetArea, "run")
            self.tabifyDockWidget(self.problems_dock, self.run_dock)
            self.problems_dock.raise_()
            self.scene.selectionChanged.connect(self._node_view_while_training)
            if hasattr(self.run_panel, "node_view_shown"):
                self.run_panel.node_view_shown.connect(self._show_run_dock)
            self.run_dock.visibilityChanged.connect(self._run_dock_shown)
        self.resizeDocks([self.palette_dock, self.inspector_dock], [210, 330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.problems_dock], [150], Qt.Orientation.Vertical)

    def _action(self, menu, text, slot, shortcut=None, tip="") -> QAction:
        act = QAction(text, self)
        if shortcut:
            seqs = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(s) for s in seqs])
        act.setStatusTip(tip)
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        self.addAction(act)
        return act

    def _make_actions(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        self._action(m, "&New", self.new_file, QKeySequence.StandardKey.New)
        self._action(m, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = m.addMenu("Open &Recent")
        self._action(m, "&Save", self.save, QKeySequence.StandardKey.Save)
        self._action(m, "Save &As…", self.save_as, QKeySequence.StandardKey.SaveAs)
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        m = bar.addMenu("&Edit")
        self.undo_action = self.editor.stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = self.editor.stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")])
        for act in (self.undo_action, self.redo_action):
            m.addAction(act)
            self.addAction(act)
        m.addSeparator()
        self._action(m, "Cu&t", self.cut, "Ctrl+X")
        self._action(m, "&Copy", self.copy, "Ctrl+C")
        self._action(m, "&Paste", self.paste, "Ctrl+V")
        self._action(m, "&Duplicate", self.duplicate, "Ctrl+D")
        self._action(m, "De&lete", self.delete_selected, ["Del", "Backspace"])
        self._action(m, "Select &All", self.select_all, "Ctrl+A")
        m.addSeparator()
        self._action(m, "&Group Selection…", self.group_selected, "Ctrl+G", "make a named region of the selection")
        self._action(m, "&Ungroup", self.ungroup_selected, "Ctrl+Shift+G")
        self._action(m, "Collapse/E&xpand Group", self.toggle_collapse_selected, "Ctrl+E")
        m.addSeparator()
        self._action(m, "Auto-&Layout", self.auto_layout, "Ctrl+L", "arrange nodes in topological layers")
        m = bar.addMenu("&View")
        self._action(m, "&Fit to View", self.view.fit, "F")
        self._action(m, "Add Node…", lambda: self.view.open_search(
            self.view.viewport().rect().center(), self.view.mapToScene(self.view.viewport().rect().center())),
            None, "or press Tab on the canvas")
        m.addSeparator()
        for dock in [self.palette_dock, self.inspector_dock, self.problems_dock] + (
                [self.run_dock] if self.run_panel is not None else []):
            m.addAction(dock.toggleViewAction())
        self._refresh_recent_menu()

    # ---- status --------------------------------------------------------------------
    def is_modified(self) -> bool:
        return self._forced_dirty or not self.editor.stack.isClean()

    def update_title(self) -> None:
        name = Path(self.path).name if self.path else "untitled"
        self.setWindowTitle(f"{name}[*] — DeepHTM")
        self.setWindowModified(self.is_modified())

    def _on_clean_changed(self, _clean: bool) -> None:
        self.update_title()

    def _show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 6000)

    def report_error(self, text: str) -> None:
        """Show a one-line error without blocking (tests and screenshot mode run on)."""
        self.last_error = text
        self.statusBar().showMessage(text, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "DeepHTM", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _on_refused(self, text: str) -> None:
        self.last_error = text
        self.statusBar().showMessage(text, 8000)
        self.view.toast_at_mouse(text)

    def _node_view_while_training(self) -> None:
        """Clicking one node while the run panel trains opens its live activity view."""
        ids = self.scene.selected_node_ids()
        if len(ids) == 1 and getattr(self.run_panel, "state", None) in ("starting", "running", "paused"):
            self.run_panel.show_node_view(ids[0])

    def _show_run_dock(self, *_args) -> None:
        self.run_dock.show()
        self.run_dock.raise_()

    def _run_dock_shown(self, visible: bool) -> None:
        """The Run dock shares the bottom area with Problems, kept short for the canvas; when it
        comes to the front it grows tall enough for its plots."""
        if visible and not self.run_dock.isFloating() and self.run_dock.height() < RUN_DOCK_MIN_HEIGHT:
            height = min(RUN_DOCK_HEIGHT, int(self.height() * 0.55))
            self.resizeDocks([self.run_dock], [height], Qt.Orientation.Vertical)

    def _on_analysed(self, analysis) -> None:
        self.problems.show_analysis(analysis)
        n = len(analysis.problems) + len(analysis.warnings)
        self.problems_dock.setWindowTitle(f"Problems ({n})" if n else "Problems")
        if self.run_panel is not None:
            try:
                if hasattr(self.run_panel, "set_problem"):  # Train waits while the graph has problems
                    first = analysis.problems[0].text if analysis.problems else "the graph does not resolve"
                    self.run_panel.set_problem(None if analysis.ok else first)
                self.run_panel.set_graph(self.editor.doc.graph.copy())
            except Exception as exc:  # the run dock must never take the editor down
                self.statusBar().showMessage(f"run panel: {exc}", 8000)

    # ---- screenshot mode ---------------------------------------------------------------
    def screenshot(self, out: str) -> None:
        QApplication.processEvents()
        self.grab()  # the first render settles the dock layout, so the fit below sees the final canvas
        self.view.fit()
        QApplication.processEvents()
        image = self.grab()
        if not image.save(out):
            raise OSError(f"{out}: could not write the image")

