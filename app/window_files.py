"""The editor window's file handling: new, open, save, recent files, the unsaved-changes
prompt and crash recovery. A mixin of MainWindow, split out to keep files small."""
from __future__ import annotations

import os
import time
from pathlib import Path

from PyQt6.QtWidgets import QFileDialog, QMessageBox

from deephtm.errors import DeepHTMError, GraphError
from deephtm.graph.graphfile import load_graph, save_graph

from .document import is_coordinate, new_graph
from .layout import layered_positions

MAX_RECENT = 8


class FilesMixin:
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
        if hasattr(self.run_panel, "new_document"):  # the Run dock belongs to the open graph
            self.run_panel.new_document()
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
        graph = self.editor.doc.graph
        if graph.name in ("", "untitled", None):
            # an untitled graph takes its file's name (an undoable rename, saved with it)
            self.editor.set_meta(Path(path).stem, graph.description or "")
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


def place_unplaced(graph) -> None:
    """Nodes without a usable position (a hand-written file) get one from the auto-layout."""
    missing = {n.id for n in graph.nodes if not (is_coordinate(n.ui.get("x")) and is_coordinate(n.ui.get("y")))}
    if not missing:
        return
    pos = layered_positions(graph)
    for n in graph.nodes:
        if n.id in missing:
            n.ui = dict(n.ui)
            n.ui["x"], n.ui["y"] = round(pos[n.id][0]), round(pos[n.id][1])
