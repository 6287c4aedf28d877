"""The editor window: canvas in the middle, palette, inspector and problems in docks, menus
with the usual shortcuts, files (atomic saves, recent files, crash recovery)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from PyQt6.QtCore import QMimeData, QSettings, Qt, QTimer
from PyQt6.QtGui import QAction, QCursor, QKeySequence
from PyQt6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QInputDialog, QMainWindow, QMenu,
                             QMessageBox, QScrollArea)

from deephtm.errors import DeepHTMError, GraphError
from deephtm.graphfile import load_graph, save_graph

from . import grouping
from .autosave import AUTOSAVE_INTERVAL_MS, RecoveryStore
from .canvas.scene import GraphScene
from .canvas.view import GraphView
from .document import new_graph
from .edits import FRAGMENT_MIME, fragment
from .editor import Editor
from .inspector import Inspector
from .layout import layered_positions
from .palette import Palette
from .problems import ProblemsList

MAX_RECENT = 8
PASTE_OFFSET = 40.0


class MainWindow(QMainWindow):
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

    def _on_analysed(self, analysis) -> None:
        self.problems.show_analysis(analysis)
        n = len(analysis.problems)
        self.problems_dock.setWindowTitle(f"Problems ({n})" if n else "Problems")
        if self.run_panel is not None:
            try:
                self.run_panel.set_graph(self.editor.doc.graph.copy())
            except Exception as exc:  # the run dock must never take the editor down
                self.statusBar().showMessage(f"run panel: {exc}", 8000)

    # ---- files -----------------------------------------------------------------------
    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel' (tests replace this)."""
        name = Path(self.path).name if self.path else "untitled"
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to {name}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def maybe_save(self) -> bool:
        """True when it is fine to drop the current document."""
        if not self.is_modified():
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_file(self) -> None:
        if not self.maybe_save():
            return
        self._set_document(new_graph(), None)

    def open_dialog(self) -> None:
        start = str(Path(self.path).parent) if self.path else os.getcwd()
        path, _ = QFileDialog.getOpenFileName(self, "Open graph", start, "Graph files (*.json);;All files (*)")
        if path:
            self.open_file(path)

    def open_file(self, path: str, ask: bool = True) -> bool:
        """Open a graph file. A file the engine can't read leaves everything as it was."""
        try:
            graph = load_graph(path)
        except DeepHTMError as exc:
            self.report_error(str(exc))
            return False
        if ask and not self.maybe_save():
            return False
        self._set_document(graph, path)
        self._add_recent(path)
        return True

    def _set_document(self, graph, path: str | None) -> None:
        place_unplaced(graph)
        self.path = path
        self._forced_dirty = False
        self._paste_count = 0
        self.editor.load(graph)
        self.editor.stack.setClean()
        self.recovery.clear()
        view_state = graph.ui.get("view") if isinstance(graph.ui, dict) else None
        if not (isinstance(view_state, dict) and self.view.restore_state(view_state)):
            self.view.fit()
        self.update_title()

    def save(self) -> bool:
        if not self.path:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self, path: str | None = None) -> bool:
        if path is None:
            start = self.path or os.path.join(os.getcwd(), "graphs", f"{self.editor.doc.graph.name or 'graph'}.json")
            path, _ = QFileDialog.getSaveFileName(self, "Save graph", start, "Graph files (*.json)")
            if not path:
                return False
        if self.save_to(path):
            self._add_recent(path)
            return True
        return False

    def save_to(self, path: str) -> bool:
        graph = self.editor.doc.graph
        out = graph.copy()  # the view state goes in the file, not into the undoable document
        out.ui = dict(out.ui or {})
        out.ui["view"] = self.view.view_state()
        try:
            save_graph(out, path)  # temp file + rename: a crash never leaves half a file
        except (OSError, DeepHTMError, ValueError) as exc:
            self.report_error(f"{path}: could not save: {exc}")
            return False
        graph.path = path
        self.path = path
        self._forced_dirty = False
        self.editor.stack.setClean()
        self.recovery.clear()
        self.update_title()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str)]

    def _add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _c=False, p=p: self.open_file(p))
        self.recent_menu.setEnabled(bool(self._recent()))

    def closeEvent(self, event) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.recovery.clear()
        self.settings.setValue("window_state", self.saveState())
        event.accept()

    # ---- crash recovery -----------------------------------------------------------------
    def autosave(self) -> bool:
        """Write unsaved work to the recovery file (every minute); True if written."""
        if not self.is_modified():
            self.recovery.clear()
            return False
        if self.editor.doc.revision == self._autosaved_rev:
            return False
        try:
            self.recovery.write(self.editor.doc.graph, self.path)
        except (OSError, ValueError) as exc:
            self.statusBar().showMessage(f"autosave failed: {exc}", 8000)
            return False
        self._autosaved_rev = self.editor.doc.revision
        return True

    def ask_recover(self, original: str | None, saved_at: float) -> bool:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))
        answer = QMessageBox.question(
            self, "Recover unsaved work?",
            f"The editor did not close cleanly. Recover the unsaved work on "
            f"{Path(original).name if original else 'an untitled graph'} autosaved at {when}?")
        return answer == QMessageBox.StandardButton.Yes

    def offer_recovery(self) -> bool:
        """At start-up: offer work autosaved by an editor that crashed. True if recovered."""
        for r in self.recovery.orphans():
            if self.ask_recover(r.original, r.saved_at):
                try:
                    graph = load_graph(r.graph_file)
                except GraphError as exc:
                    self.report_error(f"could not recover: {exc}")
                    self.recovery.discard(r)
                    continue
                graph.path = r.original
                self._set_document(graph, r.original)
                self._forced_dirty = True
                self.recovery.discard(r)
                self.autosave()
                self.update_title()
                return True
            self.recovery.discard(r)
        return False

    # ---- editing actions ----------------------------------------------------------------
    def _add_at_center(self, type_name: str) -> None:
        c = self.view.mapToScene(self.view.viewport().rect().center())
        self.view.drop_node(type_name, c)

    def delete_selected(self) -> None:
        nodes = self.scene.selected_node_ids()
        edges = self.scene.selected_edge_keys()
        if nodes or edges:
            self.editor.delete(nodes, edges)

    def select_all(self) -> None:
        for it in list(self.scene.nodes.values()) + list(self.scene.collapsed.values()):
            if it.isVisible():
                it.setSelected(True)

    def copy(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        frag = fragment(self.editor.doc, ids)
        mime = QMimeData()
        data = json.dumps(frag).encode("utf-8")
        mime.setData(FRAGMENT_MIME, data)
        mime.setText(json.dumps(frag, indent=1))
        QApplication.clipboard().setMimeData(mime)
        self._paste_count = 0
        return True

    def cut(self) -> None:
        if self.copy():
            self.delete_selected()

    def paste(self) -> list[str]:
        mime = QApplication.clipboard().mimeData()
        if mime is None:
            return []
        if mime.hasFormat(FRAGMENT_MIME):
            raw = bytes(mime.data(FRAGMENT_MIME)).decode("utf-8")
        elif mime.hasText():
            raw = mime.text()
        else:
            return []
        try:
            frag = json.loads(raw)
            if not isinstance(frag, dict) or not isinstance(frag.get("nodes"), list):
                return []
        except ValueError:
            return []
        self._paste_count += 1
        at = self.view.mapFromGlobal(QCursor.pos())
        if self.view.underMouse() and self.view.viewport().rect().contains(at):
            # paste where the mouse is: the fragment's top-left corner goes there
            try:
                xs = [float(n.get("ui", {}).get("x", 0)) for n in frag["nodes"]] or [0.0]
                ys = [float(n.get("ui", {}).get("y", 0)) for n in frag["nodes"]] or [0.0]
            except (AttributeError, TypeError, ValueError):
                xs = ys = [0.0]
            target = self.view.mapToScene(at)
            return self._paste_fragment(frag, target.x() - min(xs), target.y() - min(ys))
        offset = PASTE_OFFSET * self._paste_count
        return self._paste_fragment(frag, offset, offset)

    def _paste_fragment(self, frag: dict, dx: float, dy: float | None = None) -> list[str]:
        try:
            new_ids = self.editor.paste(frag, dx, dx if dy is None else dy)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:  # text from elsewhere
            self.report_error(f"can't paste: {exc}")
            return []
        self.scene.select_ids(new_ids)
        return new_ids

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            return []
        return self._paste_fragment(fragment(self.editor.doc, ids), PASTE_OFFSET)

    def ask_group_title(self, default: str) -> str | None:
        title, ok = QInputDialog.getText(self, "Group", "Name of the region:", text=default)
        return title if ok else None

    def group_selected(self) -> str | None:
        members = self.scene.selected_members()
        if not members:
            self.statusBar().showMessage("Select the nodes to group first.", 5000)
            return None
        title = self.ask_group_title("region")
        if title is None:
            return None
        gid = self.editor.group(members, title)
        return gid

    def _selected_group(self) -> str | None:
        g = self.editor.doc.graph
        for key in self.scene.selected_members():
            if grouping.group(g, key) is not None:
                return key
        parents = grouping.parent_map(g)
        for key in self.scene.selected_members():
            if key in parents:
                return parents[key]
        return None

    def ungroup_selected(self) -> None:
        gid = self._selected_group()
        if gid:
            self.editor.ungroup(gid)

    def toggle_collapse_selected(self) -> None:
        gid = self._selected_group()
        if gid:
            g = grouping.group(self.editor.doc.graph, gid)
            self.editor.set_collapsed(gid, not g.get("collapsed"))
            self.scene.select_ids([gid])

    def auto_layout(self) -> None:
        selected = set(self.scene.selected_node_ids())
        self.editor.auto_layout(self.scene.node_heights(), only=selected if len(selected) > 1 else None)
        if len(selected) <= 1:
            self.view.fit()

    def _context_menu(self, global_pos, item, scene_pos, view_pos) -> None:
        from .canvas.edge_item import EdgeItem
        from .canvas.node_item import BoxItem, CollapsedGroupItem

        if isinstance(item, (BoxItem, EdgeItem)) and not item.isSelected():
            self.scene.clearSelection()
            item.setSelected(True)
        menu = QMenu(self)
        if isinstance(item, EdgeItem):
            key = item.key
            delayed = menu.addAction("Delayed: previous step's value (t-1)")
            delayed.setCheckable(True)
            delayed.setChecked(bool(item.delay))
            delayed.triggered.connect(lambda on: self.editor.set_delay(key, 1 if on else 0))
            menu.addAction("Delete edge", self.delete_selected)
        elif isinstance(item, BoxItem):
            if isinstance(item, CollapsedGroupItem):
                gid = item.key
                menu.addAction("Expand group", lambda: self.editor.set_collapsed(gid, False))
            menu.addAction("Duplicate", self.duplicate)
            menu.addAction("Copy", self.copy)
            menu.addAction("Delete", self.delete_selected)
            menu.addSeparator()
            menu.addAction("Group selection…", self.group_selected)
            if self._selected_group():
                menu.addAction("Collapse/expand its group", self.toggle_collapse_selected)
                menu.addAction("Ungroup", self.ungroup_selected)
            if len(self.scene.selected_node_ids()) > 1:
                menu.addAction("Auto-layout selection", self.auto_layout)
        else:
            menu.addAction("Add node…", lambda: self.view.open_search(view_pos, scene_pos))
            menu.addAction("Paste", self.paste)
            menu.addAction("Auto-layout", self.auto_layout)
            menu.addAction("Fit to view", self.view.fit)
        menu.exec(global_pos)

    # ---- screenshot mode ---------------------------------------------------------------
    def screenshot(self, out: str) -> None:
        QApplication.processEvents()
        self.grab()  # the first render settles the dock layout, so the fit below sees the final canvas
        self.view.fit()
        QApplication.processEvents()
        image = self.grab()
        if not image.save(out):
            raise OSError(f"{out}: could not write the image")


def place_unplaced(graph) -> None:
    """Nodes without a position (a hand-written file) get one from the auto-layout."""
    missing = {n.id for n in graph.nodes if not {"x", "y"} <= set(n.ui)}
    if not missing:
        return
    pos = layered_positions(graph)
    for n in graph.nodes:
        if n.id in missing:
            n.ui = dict(n.ui)
            n.ui["x"], n.ui["y"] = round(pos[n.id][0]), round(pos[n.id][1])
