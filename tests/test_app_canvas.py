"""The editor driven like a user: drops from the palette, wires dragged with the mouse,
refused connections, the inspector, the problems list and the quick-add box."""
from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtGui import QDrag, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication, QSpinBox

from deephtm.errors import GraphError
from deephtm.graph.resolve import resolve

from app_helpers import fixture_file, make_window, port_view_pos


def engine_error(graph) -> str:
    try:
        resolve(graph.copy())
    except GraphError as exc:
        return f"{exc.where}: {exc.message}"
    raise AssertionError("the graph resolves")


def drag_wire(qtbot, w, a: QPoint, b: QPoint) -> None:
    vp = w.view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, a + (b - a) / 2)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def test_drag_from_palette_creates_node(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.palette.filter.setText("inhibition")
    assert w.palette.visible_types() == ["htm.sp"]
    item = w.palette.tree.findItems("htm.sp", Qt.MatchFlag.MatchRecursive)[0]
    # exactly what a drag out of the palette carries; like a real drag, the QDrag owns it, so it
    # lives on the C++ side as long as the window (events hold only a pointer to it)
    drag = QDrag(w.palette.tree)
    drag.setMimeData(w.palette.tree.mimeData([item]))
    mime = drag.mimeData()
    vp = w.view.viewport()
    at = QPointF(300, 200)
    enter = QDragEnterEvent(at.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(vp, QDragMoveEvent(at.toPoint(), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    drop = QDropEvent(at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, drop)
    assert drop.dropAction() == Qt.DropAction.CopyAction  # the palette keeps its entry
    assert w.palette.tree.supportedDropActions() == Qt.DropAction.CopyAction
    g = w.editor.doc.graph
    assert [n.type for n in g.nodes] == ["htm.sp"]
    item = w.scene.nodes["sp"]
    assert item.isVisible() and item.isSelected()
    # dropped where the mouse was: the node's header is under the drop point
    assert item.sceneBoundingRect().contains(w.view.mapToScene(at.toPoint()))
    w.editor.stack.undo()
    assert w.editor.doc.graph.nodes == [] and "sp" not in w.scene.nodes


def test_dragging_port_to_port_creates_edge(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.delete([], [("sp", "columns", "tm", "columns")])
    assert w.editor.doc.inbound("tm", "columns") is None
    drag_wire(qtbot, w, port_view_pos(w, "sp", "out", "columns"), port_view_pos(w, "tm", "in", "columns"))
    e = w.editor.doc.inbound("tm", "columns")
    assert e is not None and (e.src, e.src_port, e.delay) == ("sp", "columns", 0)
    assert ("sp", "columns", "tm", "columns") in w.scene.edges
    # dragging the other way, input to output, makes the same kind of edge
    w.editor.stack.undo()
    drag_wire(qtbot, w, port_view_pos(w, "tm", "in", "columns"), port_view_pos(w, "sp", "out", "columns"))
    assert w.editor.doc.inbound("tm", "columns").src == "sp"
    w.editor.validate_now()
    assert w.editor.analysis.ok


def test_incompatible_connection_is_refused_with_reason(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    before = w.editor.doc.graph.to_dict()
    # encoder.y is a dense tensor; tm.columns takes an SDR only
    drag_wire(qtbot, w, port_view_pos(w, "encoder", "out", "y"), port_view_pos(w, "tm", "in", "columns"))
    assert w.editor.doc.graph.to_dict() == before
    assert w.editor.stack.count() == 0
    assert "a tensor output cannot feed an sdr input" in w.last_error
    assert "a tensor output cannot feed an sdr input" in w.statusBar().currentMessage()
    assert "a tensor output cannot feed an sdr input" in w.view.toast_text  # shown on the canvas too
    # the reason shows while the wire hovers the port, before the button is released
    vp = w.view.viewport()
    a, b = port_view_pos(w, "encoder", "out", "y"), port_view_pos(w, "tm", "in", "columns")
    w.view._clear_toast()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, b)
    assert "a tensor output cannot feed an sdr input" in w.view.toast_text
    QTest.keyClick(w.view, Qt.Key.Key_Escape)  # cancels the wire
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert w.editor.doc.graph.to_dict() == before
    # output to output is refused too
    drag_wire(qtbot, w, port_view_pos(w, "encoder", "out", "y"), port_view_pos(w, "sp", "out", "columns"))
    assert w.editor.doc.graph.to_dict() == before


def test_delayed_edge_is_drawn_dashed(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    delayed = w.scene.edges[("tm", "cells", "tm", "context")]
    plain = w.scene.edges[("sp", "columns", "tm", "columns")]
    assert delayed.pen().style() == Qt.PenStyle.DashLine
    assert plain.pen().style() == Qt.PenStyle.SolidLine


def test_moving_a_node_with_the_mouse_is_one_undo_step(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    before = w.editor.doc.graph.to_dict()
    item = w.scene.nodes["sp"]
    start = w.view.mapFromScene(item.scenePos() + QPointF(60, 10))
    vp = w.view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 6):
        QTest.mouseMove(vp, start + QPoint(10 * i, 12 * i))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(50, 60))
    ui = w.editor.doc.node("sp").ui
    assert (ui["x"], ui["y"]) != (440, 0)
    assert w.editor.stack.count() == 1
    w.editor.stack.undo()
    assert w.editor.doc.graph.to_dict() == before
    assert w.scene.nodes["sp"].pos() == QPointF(440, 0)


def test_inspector_edits_params_and_shows_shapes(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["sp"])
    spin = w.inspector.editors["columns"]
    assert isinstance(spin, QSpinBox) and spin.maximum() == 65536 and spin.minimum() == 1
    assert w.inspector.shape_labels[("sp", "out", "columns")].text() == "[256]"
    spin.setValue(128)
    assert w.editor.doc.node("sp").params["columns"] == 128
    w.editor.validate_now()
    assert w.inspector.shape_labels[("sp", "out", "columns")].text() == "[128]"
    assert w.inspector.shape_labels[("tm", "in", "columns")].text() if ("tm", "in", "columns") in \
        w.inspector.shape_labels else True
    spin.setValue(3)  # fewer columns than winners: the engine's error shows at once
    w.editor.validate_now()
    expected = engine_error(w.editor.doc.graph)  # the engine's own words, whatever they are
    assert "node 'sp'" in expected and "winners" in expected
    assert expected in w.inspector.problem_label.text()
    assert w.scene.nodes["sp"].error == expected
    assert [p.text for p in w.problems.problems] == [expected]
    # one undo step for the whole typing session on one param
    w.editor.stack.undo()
    assert w.editor.doc.node("sp").params["columns"] == 256
    assert spin.value() == 256


def test_clicking_a_problem_selects_its_node(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.delete([], [("decoder", "y", "loss", "pred")])
    w.editor.validate_now()
    item = w.problems.item(0)
    assert "input 'pred' of node 'loss' is not connected" in item.text()
    rect = w.problems.visualItemRect(item)
    QTest.mouseClick(w.problems.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     rect.center())
    assert w.scene.selected_node_ids() == ["loss"]
    assert w.inspector.target == ("node", "loss")


def test_tab_opens_search_and_adds_node_at_cursor(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.view.setFocus()
    QTest.mouseMove(w.view.viewport(), QPoint(250, 220))
    QTest.keyClick(w.view, Qt.Key.Key_Tab)
    assert w.view.search.isVisible()
    QTest.keyClicks(w.view.search.edit, "tm")
    assert w.view.search.list.currentItem().data(Qt.ItemDataRole.UserRole) == "htm.tm"
    QTest.keyClick(w.view.search.edit, Qt.Key.Key_Return)
    assert not w.view.search.isVisible()
    spec = w.editor.doc.node("tm")
    assert spec is not None and spec.type == "htm.tm"
    at = w.view.mapToScene(QPoint(250, 220))
    assert abs(spec.ui["x"] - at.x()) < 2 and abs(spec.ui["y"] - at.y()) < 2


def test_delete_key_removes_node_and_its_edges(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["tm"])
    w.view.setFocus()
    QTest.keyClick(w.view, Qt.Key.Key_Delete)
    g = w.editor.doc.graph
    assert g.node("tm") is None
    assert not [e for e in g.edges if "tm" in (e.src, e.dst)]
    assert not [k for k in w.scene.edges if "tm" in (k[0], k[2])]


def test_port_tooltips_show_inferred_shapes(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    port = w.scene.nodes["tm"].ports[("out", "tm", "cells")]
    assert port.toolTip().startswith("cells (sdr) [1280]")  # 256 columns x 5 cells
    w.editor.set_param("tm", "cells_per_column", 2)
    w.editor.validate_now()
    assert port.toolTip().startswith("cells (sdr) [512]")


def test_node_boxes_list_the_params_they_set(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    assert w.scene.nodes["sp"].summary == "columns 256 · winners 5"
    w.editor.set_param("sp", "columns", 128)
    assert w.scene.nodes["sp"].summary == "columns 128 · winners 5"
    w.editor.reset_param("sp", "winners")
    assert w.scene.nodes["sp"].summary == "columns 128"
    w.editor.stack.undo()
    w.editor.stack.undo()
    assert w.scene.nodes["sp"].summary == "columns 256 · winners 5"
