"""The editor as a user finds it: files opened one after another, the Run dock's buttons,
live node views, wire drags and bad input. Each test drives the real widgets."""
from __future__ import annotations

import itertools
import json

import pytest
from PyQt6.QtCore import QEvent, QObject, QPoint, QRect, Qt
from PyQt6.QtGui import QRegion
from PyQt6.QtTest import QTest

from deephtm.graph import registry
from tests.app_helpers import ROOT, make_window, port_view_pos
from tests.test_run_panel import one_torch_thread  # noqa: F401 (autouse: one torch thread here too)

GRAPHS = sorted((ROOT / "graphs").glob("*.json"))


def node_types(path) -> dict[str, str]:
    return {n["id"]: n["type"] for n in json.loads(path.read_text())["nodes"]}


def clashing_pairs() -> list[tuple]:
    """(first, second) files that share a node id with a different type, in either order."""
    types = {p: node_types(p) for p in GRAPHS}
    pairs = []
    for a, b in itertools.permutations(GRAPHS, 2):
        if any(types[b][nid] != t for nid, t in types[a].items() if nid in types[b]):
            pairs.append((a, b))
    return pairs


def check_canvas_matches(w, path) -> None:
    graph = w.editor.doc.graph
    for spec in graph.nodes:
        item = w.scene.nodes[spec.id]
        cls = registry.get(spec.type)
        assert item.subtitle == spec.type, f"{path.name}: {spec.id} drawn as {item.subtitle}"
        assert item.type_name == spec.type
        want = {("in", spec.id, p.name) for p in cls.inputs} | {("out", spec.id, p.name) for p in cls.outputs}
        assert set(item.ports) == want, f"{path.name}: {spec.id} has the wrong ports"
    for key, edge in w.scene.edges.items():  # every wire ends on a port its node has
        src, src_port, dst, dst_port = key
        assert edge.src_item is w.scene._item_for(src) or not w.scene.nodes[src].isVisible()
        assert ("out", src, src_port) in w.scene.nodes[src].ports
        assert ("in", dst, dst_port) in w.scene.nodes[dst].ports


def test_the_examples_clash_on_some_node_ids():
    pairs = {(a.name, b.name) for a, b in clashing_pairs()}
    assert ("hierarchy.json", "nyc_taxi.json") in pairs and ("sine.json", "digits_sequence.json") in pairs


def test_opening_files_one_after_another_draws_each_graph(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    for first, second in clashing_pairs():
        assert w.open_file(str(first))
        check_canvas_matches(w, first)
        assert w.open_file(str(second))
        check_canvas_matches(w, second)


# ---- the Run dock ---------------------------------------------------------------------------

@pytest.fixture
def panel(qtbot, tmp_path):
    from tests.test_run_panel import open_panel

    p = open_panel(qtbot, tmp_path, "thread")
    yield p
    p.shutdown()


def click(qtbot, button) -> None:
    assert button.isEnabled() and button.isVisible()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_step_button_trains_one_step_per_click(qtbot, panel, tmp_path):
    from app.run.panel import PAUSED
    from tests.test_run_panel import WAIT_MS, small_graph

    panel.set_graph(small_graph(tmp_path, steps=1000))
    click(qtbot, panel.step_btn)  # idle: start, train one step, hold
    qtbot.waitUntil(lambda: panel.state == PAUSED, timeout=WAIT_MS)
    assert panel.thread.trainer.step == 1
    for want in (2, 3, 4):
        click(qtbot, panel.step_btn)
        qtbot.waitUntil(lambda want=want: panel.thread.trainer.step == want and panel.state == PAUSED,
                        timeout=WAIT_MS)
    qtbot.wait(200)
    assert panel.thread.trainer.step == 4  # held after each step
    qtbot.waitUntil(lambda: "step 4 / 1,000" in panel.status.text(), timeout=WAIT_MS)


def node_header_pos(w, node_id: str) -> QPoint:
    item = w.scene.nodes[node_id]
    return w.view.mapFromScene(item.mapToScene(40.0, 10.0))


def test_live_view_of_a_one_value_output_is_drawn_in_the_run_dock(qtbot, tmp_path, capfd):
    from app.run.node_view import NodeActivityView
    from app.run.panel import RUNNING
    from tests.helpers import small_sine_dict, write
    from tests.test_run_panel import WAIT_MS

    w = make_window(qtbot, tmp_path)
    assert w.open_file(str(write(tmp_path, small_sine_dict(steps=100_000))))
    panel = w.run_panel
    panel.worker_kind = "thread"  # the trainer in this process: its errors would show on this stderr
    panel.set_run_dir(str(tmp_path / "run"))
    w.run_dock.raise_()
    capfd.readouterr()
    try:
        click(qtbot, panel.train_btn)
        qtbot.waitUntil(lambda: panel.state == RUNNING and panel._step_now > 0, timeout=WAIT_MS)
        QTest.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         node_header_pos(w, "decoder"))
        assert w.scene.selected_node_ids() == ["decoder"]
        view = panel.node_views["decoder"]
        assert isinstance(view, NodeActivityView) and not view.isWindow()  # docked, not floating
        assert panel.tabs.currentWidget() is view and view.isVisible() and w.run_dock.isVisible()
        curve = view.ports[("decoder", "y")][1]
        qtbot.waitUntil(lambda: curve.getData()[0] is not None and len(curve.getData()[0]) >= 10, timeout=WAIT_MS)
        x, y = curve.getData()
        assert (x[1:] > x[:-1]).all() and len(set(y.tolist())) > 1  # a real curve of the prediction
        step_before = panel._step_now
        text_before = panel.status.text()
        qtbot.waitUntil(lambda: panel._step_now > step_before + 5 and panel.status.text() != text_before,
                        timeout=WAIT_MS)
        assert view.error is None
        # the view's tab closes like any tab; the plots stay
        panel.tabs.tabCloseRequested.emit(panel.tabs.indexOf(view))
        assert "decoder" not in panel.node_views and panel.tabs.count() == 1
    finally:
        panel.shutdown()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[:2000]


def test_a_view_that_cannot_draw_a_port_says_so_once(qtbot, tmp_path, capfd):
    import numpy as np

    from app.run.node_view import NodeActivityView
    from deephtm.live.probes import Probes

    view = NodeActivityView("sp")
    qtbot.addWidget(view)
    view.show()
    probes = Probes(shapes={("sp", "columns"): (8,)})
    view.configure(probes)
    for i in range(50):  # every sample the wrong width: one message, no traceback
        view.feed({"steps": np.array([i]), "series": {("sp", "columns"): np.zeros((1, 3))}})
        view.refresh()
    assert "sp.columns" in view.note.text() and "can't be shown" in view.note.text()
    assert capfd.readouterr().err == ""


# ---- the canvas ---------------------------------------------------------------------------------

class PaintSpy(QObject):
    """Records the regions a widget repaints."""

    def __init__(self, widget):
        super().__init__(widget)
        self.regions: list[QRegion] = []
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            self.regions.append(QRegion(event.region()))
        return False

    def painted(self, rect: QRect) -> bool:
        whole = QRegion()
        for r in self.regions:
            whole = whole.united(r)
        return whole.intersected(QRegion(rect)) == QRegion(rect)


def test_ports_dimmed_during_a_wire_drag_are_repainted_after_it(qtbot, tmp_path):
    from PyQt6.QtWidgets import QGraphicsItem

    from tests.app_helpers import fixture_file

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    qtbot.wait(50)
    vp = w.view.viewport()
    a = port_view_pos(w, "sp", "out", "columns")
    b = a + QPoint(0, 120)  # release on empty canvas: no edge, the drag just ends
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, a + QPoint(30, 40))
    QTest.mouseMove(vp, b)
    dimmed = [p for p in w.scene.all_ports() if p.highlight == "bad"]
    assert len(dimmed) >= 3  # the outputs, at least, can't take this wire
    qtbot.wait(50)  # the dimmed ports are painted
    spy = PaintSpy(vp)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    qtbot.waitUntil(lambda: bool(spy.regions), timeout=2000)
    qtbot.wait(50)
    for p in w.scene.all_ports():
        assert p.highlight is None and p.flags() & QGraphicsItem.GraphicsItemFlag.ItemHasNoContents
    for p in dimmed:  # each dimmed port's pixels were repainted, so none stays dark on screen
        area = w.view.mapFromScene(p.sceneBoundingRect()).boundingRect().adjusted(2, 2, -2, -2)
        assert spy.painted(area), f"{p.node_id}.{p.port} not repainted"


def dock_tab(w, title: str):
    """The tab bar and index of a tabbed dock's tab, as the user sees it."""
    from PyQt6.QtWidgets import QTabBar

    for bar in w.findChildren(QTabBar):
        for i in range(bar.count()):
            if bar.tabText(i).startswith(title) and bar.isVisible():
                return bar, i
    raise AssertionError(f"no '{title}' tab")


def test_the_run_dock_belongs_to_the_open_graph(qtbot, tmp_path):
    from tests.helpers import small_sine_dict, write
    from tests.test_run_panel import WAIT_MS

    w = make_window(qtbot, tmp_path)
    panel = w.run_panel
    panel.worker_kind = "thread"
    first = write(tmp_path, small_sine_dict(steps=60), name="first.json")
    assert w.open_file(str(first))
    bar, i = dock_tab(w, "Run")
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(i).center())
    qtbot.waitUntil(lambda: panel.isVisible() and w.run_dock.height() >= 300, timeout=2000)  # room for plots
    # before training the plots already name the graph's SP and TM
    assert panel.plots.raster_plot.titleLabel.text.startswith("SP columns (sp, 64)")
    assert "(no " not in panel.plots.tm_plot.titleLabel.text and panel.plots.tm_plot.titleLabel.text.startswith("TM cells")
    assert panel.status.text() == "ready"

    # a graph with a problem can't be trained, and the button says why
    w.editor.set_param("sp", "columns", -3)
    w.editor.validate_now()
    assert not panel.train_btn.isEnabled() and not panel.step_btn.isEnabled()
    assert "columns" in panel.train_btn.toolTip() and "columns" in panel.status.text()
    w.editor.stack.undo()
    w.editor.validate_now()
    assert panel.train_btn.isEnabled() and panel.status.text() == "ready"

    panel.set_run_dir(str(tmp_path / "run"))
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        click(qtbot, panel.train_btn)
    assert panel.plots.samples == 60 and "60 / 60" in panel.status.text()
    panel.show_node_view("sp")
    panel.lr_edit.setText("fast")
    click(qtbot, panel.train_btn)  # refused: a red line about this file's run
    assert panel.error_label.isVisible()

    assert w.open_file(str(ROOT / "graphs" / "high_order.json"))
    assert not panel.error_label.isVisible() and panel.last_error is None
    assert panel.plots.samples == 0 and len(panel.plots.loss.view()[0]) == 0
    assert panel.status.text() == "ready" and "step" not in panel.status.text()
    assert panel.node_views == {} and panel.tabs.count() == 1
    assert panel.run_dir().endswith("high_order") and panel.train_btn.isEnabled()
    assert panel.steps_box.value() == w.editor.doc.graph.training.steps


# ---- bad input ----------------------------------------------------------------------------------

def htm_file_with(tmp_path, change) -> str:
    import copy

    from tests.app_helpers import HTM_GRAPH

    d = copy.deepcopy(HTM_GRAPH)
    change(d)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(d))
    return str(path)


@pytest.mark.parametrize("ui", [{"x": "left"}, {"x": None, "y": 5}, {"x": True, "y": "1e999"},
                                {"y": "top"}, {"x": [1], "y": {"a": 1}}])
def test_a_bad_ui_position_is_replaced_and_every_node_shown(qtbot, tmp_path, capfd, ui):
    def change(d):
        d["nodes"][0]["ui"] = ui

    w = make_window(qtbot, tmp_path)
    assert w.open_file(htm_file_with(tmp_path, change))
    qtbot.wait(20)
    visible = [nid for nid, it in w.scene.nodes.items() if it.isVisible()]
    assert len(visible) == 8 and w.editor.analysis.ok
    x, y = w.editor.doc.position("sine")
    assert all(isinstance(v, float) and abs(v) < 1e6 for v in (x, y))
    rect = w.scene.nodes["sine"].sceneBoundingRect()
    assert not any(rect.intersects(w.scene.nodes[n].sceneBoundingRect()) for n in visible if n != "sine")
    w.grab()
    assert "Traceback" not in capfd.readouterr().err


def test_a_group_title_that_is_not_text_is_drawn_as_text(qtbot, tmp_path):
    def change(d):
        d["groups"] = [{"id": "region", "title": 123, "nodes": ["sp", "tm"]}]

    w = make_window(qtbot, tmp_path)
    assert w.open_file(htm_file_with(tmp_path, change))
    frame = w.scene.frames["region"]
    assert frame.title == "123"
    w.view.fit()
    w.view.grab()  # paints the frame
    w.editor.set_collapsed("region", True)
    assert w.scene.collapsed["region"].title == "123"
    w.view.grab()


def test_pasting_deeply_nested_text_says_so_in_one_line(qtbot, tmp_path, capfd):
    from PyQt6.QtWidgets import QApplication

    from tests.app_helpers import fixture_file

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    QApplication.clipboard().setText("[" * 200_000 + "]" * 200_000)
    w.view.setFocus()
    QTest.keyClick(w.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    message = w.statusBar().currentMessage()
    assert "paste" in message and "nested" in message and "\n" not in message
    assert len(w.editor.doc.graph.nodes) == 8
    w.statusBar().clearMessage()
    nested = {"nodes": [{"id": "x", "type": "htm.sp", "params": {"a": 0}}]}
    text = json.dumps(nested).replace("0", "[" * 900 + "]" * 900)
    json.loads(text)  # it parses, but is too deep to copy into the document
    QApplication.clipboard().setText(text)
    QTest.keyClick(w.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert "nested" in w.statusBar().currentMessage()
    assert len(w.editor.doc.graph.nodes) == 8
    assert "Traceback" not in capfd.readouterr().err


def test_ctrl_c_in_the_terminal_closes_the_editor(qtbot, tmp_path):
    import os
    import signal

    from PyQt6.QtWidgets import QApplication

    from app.main import install_sigint_handler

    w = make_window(qtbot, tmp_path)
    # What the process had before: Python's KeyboardInterrupt handler, or SIG_IGN when the
    # test run was started in the background by a shell without job control.
    before = signal.getsignal(signal.SIGINT)
    restore = install_sigint_handler(QApplication.instance(), w)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        qtbot.waitUntil(lambda: not w.isVisible(), timeout=3000)
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before
