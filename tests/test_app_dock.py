"""The training dock hook: a RunPanel from app.run.panel is docked and kept up to date with
set_graph(); without one (or with a broken one) the editor works the same."""
import sys
import types

from PyQt6.QtWidgets import QWidget

from app_helpers import fixture_file, make_window


class FakePanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphs = []

    def set_graph(self, graph):
        self.graphs.append(graph)


def test_run_panel_is_docked_and_follows_the_document(qtbot, tmp_path, monkeypatch):
    fake = types.ModuleType("app.run.panel")
    fake.RunPanel = FakePanel
    monkeypatch.setitem(sys.modules, "app.run.panel", fake)
    w = make_window(qtbot, tmp_path)
    assert isinstance(w.run_panel, FakePanel) and w.run_dock.windowTitle() == "Run"
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.set_param("sp", "columns", 128)
    w.editor.validate_now()
    last = w.run_panel.graphs[-1]
    assert last.node("sp").params["columns"] == 128
    assert last is not w.editor.doc.graph  # a copy: the panel can't change the document
    assert last.path == str(fixture_file(tmp_path))


def test_editor_works_without_a_run_panel(qtbot, tmp_path, monkeypatch):
    broken = types.ModuleType("app.run.panel")  # no RunPanel in it: the import fails
    monkeypatch.setitem(sys.modules, "app.run.panel", broken)
    w = make_window(qtbot, tmp_path)
    assert w.run_panel is None
    assert w.open_file(str(fixture_file(tmp_path)))
    w.editor.set_param("sp", "columns", 128)
    assert w.editor.validate_now().ok
