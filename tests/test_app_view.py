"""Navigating the canvas (wheel zoom, middle-button and space panning, F to fit) and
editing through the inspector's generated form (typed numbers, ids, edge delays)."""
from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtGui import QWheelEvent
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication, QComboBox

from app.param_widgets import FloatSpin
from app_helpers import fixture_file, make_window


def wheel(view, at: QPoint, steps: int) -> None:
    ev = QWheelEvent(QPointF(at), QPointF(view.viewport().mapToGlobal(at)), QPoint(0, 0), QPoint(0, 120 * steps),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)


def scene_center(view) -> QPointF:
    return view.mapToScene(view.viewport().rect().center())


def test_wheel_zooms_around_the_cursor_and_f_fits(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    v = w.view
    z0 = v.zoom()
    at = v.mapFromScene(w.scene.nodes["sp"].sceneBoundingRect().center())
    under = v.mapToScene(at)
    wheel(v, at, 2)
    assert abs(v.zoom() - z0 * 1.15 ** 2) < 1e-6
    after = v.mapToScene(at)
    assert abs(after.x() - under.x()) < 3 and abs(after.y() - under.y()) < 3  # what was under the cursor stays
    wheel(v, at, -60)
    assert abs(v.zoom() - 0.08) < 1e-6  # clamped
    v.setFocus()
    QTest.keyClick(v, Qt.Key.Key_F)
    assert abs(v.zoom() - z0) < 1e-6
    rect = v.mapFromScene(w.scene.content_rect()).boundingRect()
    assert v.viewport().rect().contains(rect)


def test_middle_button_and_space_drag_pan(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    v, vp = w.view, w.view.viewport()
    before = scene_center(v)
    QTest.mousePress(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(400, 300))
    QTest.mouseMove(vp, QPoint(300, 250))
    QTest.mouseRelease(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(300, 250))
    moved = scene_center(v) - before
    z = v.zoom()
    assert abs(moved.x() - 100 / z) < 2 and abs(moved.y() - 50 / z) < 2  # content follows the hand
    assert w.editor.stack.count() == 0
    before = scene_center(v)
    v.setFocus()
    QTest.keyPress(v, Qt.Key.Key_Space)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(300, 300))
    QTest.mouseMove(vp, QPoint(360, 300))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(360, 300))
    QTest.keyRelease(v, Qt.Key.Key_Space)
    assert abs((scene_center(v) - before).x() + 60 / z) < 2
    assert w.editor.stack.count() == 0 and not w.scene.selectedItems()  # panned, nothing selected or moved


def test_rubber_band_selects_nodes(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    v, vp = w.view, w.view.viewport()
    r = w.scene.nodes["sp"].sceneBoundingRect().united(w.scene.nodes["tm"].sceneBoundingRect())
    a = v.mapFromScene(r.topLeft() - QPointF(15, 30))
    b = v.mapFromScene(r.bottomRight() + QPointF(15, 30))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, (a + b) / 2)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert sorted(w.scene.selected_node_ids()) == ["sp", "tm"]


def test_typing_a_float_validates_and_commits(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.clearSelection()  # the graph form: name, description, training
    lr = w.inspector.editors["training.lr"]
    assert isinstance(lr, FloatSpin) and lr.text() == "0.001"
    lr.setFocus()
    lr.selectAll()
    QTest.keyClicks(lr, "0.05")
    assert w.editor.doc.graph.training.lr == 0.05
    assert w.editor.stack.count() == 1  # typing "0.05" is one undo step
    lr.selectAll()
    QTest.keyClicks(lr, "20")  # above the declared maximum of 10: not accepted
    assert w.editor.doc.graph.training.lr <= 10.0
    optimizer = w.inspector.editors["training.optimizer"]
    assert isinstance(optimizer, QComboBox)
    optimizer.setCurrentText("sgd")
    assert w.editor.doc.graph.training.optimizer == "sgd"
    w.editor.stack.undo()
    w.editor.stack.undo()
    assert w.editor.doc.graph.training.lr == 0.001 and lr.text() == "0.001"


def test_renaming_in_the_inspector(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["decoder"])
    edit = w.inspector.findChild(type(w.palette.filter), "node_id")
    edit.setFocus()
    edit.selectAll()
    QTest.keyClicks(edit, "9bad")
    assert "letters, digits" in w.inspector.error_label.text()
    edit.selectAll()
    QTest.keyClicks(edit, "loss")
    assert "already taken" in w.inspector.error_label.text()
    edit.selectAll()
    QTest.keyClicks(edit, "readout")
    QTest.keyClick(edit, Qt.Key.Key_Return)
    g = w.editor.doc.graph
    assert g.node("readout") is not None and g.node("decoder") is None
    assert {(e.src, e.dst) for e in g.edges if "readout" in (e.src, e.dst)} == {
        ("tm", "readout"), ("readout", "loss"), ("readout", "nrmse")}
    assert "readout" in w.scene.nodes and w.scene.nodes["readout"].isSelected()


def test_edge_inspector_toggles_delay(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    key = ("tm", "cells", "tm", "context")
    w.scene.edges[key].setSelected(True)
    assert w.inspector.target == ("edge", key)
    box = w.inspector.editors["delay"]
    assert box.isChecked()
    box.setChecked(False)  # an undelayed self-loop: the engine refuses it, the canvas shows it
    assert w.editor.doc.edge(key).delay == 0
    w.editor.validate_now()
    assert w.scene.edges[key].error and "has no 'delay: 1' edge" in w.scene.edges[key].error
    assert w.scene.edges[key].pen().style() == Qt.PenStyle.SolidLine
    w.editor.stack.undo()
    assert w.scene.edges[key].pen().style() == Qt.PenStyle.DashLine


def test_double_click_on_empty_canvas_opens_search(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    spot = QPoint(60, w.view.viewport().height() - 40)
    assert w.view.itemAt(spot) is None
    QTest.mouseDClick(w.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, spot)
    assert w.view.search.isVisible()
    QTest.keyClicks(w.view.search.edit, "mse")
    QTest.keyClick(w.view.search.edit, Qt.Key.Key_Return)
    added = w.editor.doc.graph.nodes[-1]
    assert (added.id, added.type) == ("mse", "loss.mse")
    at = w.view.mapToScene(spot)
    assert (added.ui["x"], added.ui["y"]) == (round(at.x()), round(at.y()))


def test_typing_in_text_fields_does_not_trigger_canvas_shortcuts(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["sp"])
    edit = w.inspector.findChild(type(w.palette.filter), "node_id")
    edit.setFocus()
    QTest.keyClick(edit, Qt.Key.Key_End)
    QTest.keyClick(edit, Qt.Key.Key_Backspace)
    QTest.keyClick(edit, Qt.Key.Key_Delete)
    assert w.editor.doc.node("sp") is not None and edit.text() == "s"  # the node survives Del/Backspace
    w.palette.filter.setFocus()
    zoom = w.view.zoom()
    w.view.scale(2, 2)
    QTest.keyClicks(w.palette.filter, "f")
    assert w.palette.filter.text() == "f" and abs(w.view.zoom() - 2 * zoom) < 1e-9  # no fit
