"""Undo/redo restores the exact graph after every kind of edit; copy, paste, duplicate,
group, collapse, ungroup and auto-layout through the window's actions."""
import json

from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtTest import QTest

from app_helpers import fixture_file, make_window, port_view_pos
from deephtm.graph.graphfile import load_graph
from deephtm.graph.resolve import resolve


def check_undo_redo(w, edit, name):
    """Run one edit; undo must give back the exact graph, redo the exact edited graph."""
    stack = w.editor.stack
    before = w.editor.doc.graph.to_dict()
    n = stack.index()
    edit()
    after = w.editor.doc.graph.to_dict()
    assert after != before, f"{name}: changed nothing"
    assert stack.index() == n + 1, f"{name}: should be one undo step"
    stack.undo()
    assert w.editor.doc.graph.to_dict() == before, f"{name}: undo"
    stack.redo()
    assert w.editor.doc.graph.to_dict() == after, f"{name}: redo"


def test_undo_redo_every_kind_of_edit(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    original = w.editor.doc.graph.to_dict()
    ed = w.editor
    check_undo_redo(w, lambda: w.view.drop_node("htm.sp", w.view.mapToScene(100, 100)), "add node")
    check_undo_redo(w, lambda: ed.connect_ports("encoder", "y", "sp_2", "x"), "connect")
    check_undo_redo(w, lambda: ed.connect_ports("sp_2", "columns", "tm", "columns"), "replace an input's edge")
    check_undo_redo(w, lambda: ed.move({"sp": (500, 30), "tm": (700, 40)}), "move")
    check_undo_redo(w, lambda: ed.set_param("sp", "winners", 7), "set param")
    check_undo_redo(w, lambda: ed.reset_param("sp", "winners"), "reset param")
    check_undo_redo(w, lambda: ed.rename("decoder", "readout"), "rename")
    check_undo_redo(w, lambda: ed.set_delay(("tm", "cells", "tm", "context"), 0), "delay")
    check_undo_redo(w, lambda: ed.set_training("lr", 0.01), "training")
    check_undo_redo(w, lambda: ed.set_meta("renamed", "another description"), "name and description")

    def select_and(ids, action):
        def run():
            w.scene.select_ids(ids)
            return action()
        return run

    check_undo_redo(w, select_and(["sp", "tm"], w.group_selected), "group")
    gid = w.editor.doc.graph.groups[0]["id"]
    check_undo_redo(w, lambda: ed.set_collapsed(gid, True), "collapse")
    check_undo_redo(w, lambda: ed.retitle_group(gid, "core"), "retitle group")
    check_undo_redo(w, lambda: ed.set_collapsed(gid, False), "expand")
    check_undo_redo(w, lambda: ed.ungroup(gid), "ungroup")
    check_undo_redo(w, select_and(["sp", "tm"], w.duplicate), "duplicate")
    check_undo_redo(w, select_and(["encoder"], lambda: (w.copy(), w.paste())), "copy and paste")
    check_undo_redo(w, select_and(["tm"], w.delete_selected), "delete node")
    check_undo_redo(w, select_and([], w.auto_layout), "auto-layout")
    while ed.stack.canUndo():
        ed.stack.undo()
    assert ed.doc.graph.to_dict() == original
    while ed.stack.canRedo():
        ed.stack.redo()
    assert ed.doc.graph.to_dict() != original
    # the shortcuts drive the same stack
    w.view.setFocus()
    index = ed.stack.index()
    QTest.keyClick(w.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.stack.index() == index - 1
    QTest.keyClick(w.view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert ed.stack.index() == index


def test_undo_of_a_wire_dragged_with_the_mouse(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    before = w.editor.doc.graph.to_dict()
    vp = w.view.viewport()
    a, b = port_view_pos(w, "decoder", "out", "y"), port_view_pos(w, "tm_loss", "in", "value")
    # decoder.y (tensor) may not feed a loss input; tm.loss already does: refused, no step
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert w.editor.stack.count() == 0
    a, b = port_view_pos(w, "tm", "out", "predicted"), port_view_pos(w, "decoder", "in", "x")
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert w.editor.doc.inbound("decoder", "x").src_port == "predicted"
    w.editor.stack.undo()
    assert w.editor.doc.graph.to_dict() == before


def test_group_collapse_and_ungroup_round_trip(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    original = w.editor.doc.graph.to_dict()
    w.scene.select_ids(["encoder", "sp", "tm"])
    gid = w.group_selected()
    g = w.editor.doc.graph.groups[0]
    assert g == {"id": gid, "title": "region", "nodes": ["encoder", "sp", "tm"], "collapsed": False}
    assert gid in w.scene.frames
    w.scene.select_ids(["sp"])
    w.toggle_collapse_selected()  # Ctrl+E on a member collapses its group
    assert w.editor.doc.graph.groups[0]["collapsed"] is True
    box = w.scene.collapsed[gid]
    assert box.isVisible() and not w.scene.nodes["sp"].isVisible()
    # one node with the group's external ports: the members' ports wired to the outside
    assert set(box.ports) == {("in", "encoder", "x"), ("out", "tm", "cells"), ("out", "tm", "loss")}
    # the wires now end on the group box; the inner ones are hidden
    assert w.scene.edges[("tm", "cells", "decoder", "x")].src_item is box
    assert not w.scene.edges[("sp", "columns", "tm", "columns")].isVisible()
    # a collapsed group is wired through its ports
    w.editor.delete([], [("tm", "loss", "tm_loss", "value")])
    assert ("out", "tm", "loss") not in w.scene.collapsed[gid].ports
    vp = w.view.viewport()
    a, b = port_view_pos(w, "tm", "out", "cells"), port_view_pos(w, "tm_loss", "in", "value")
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert "an sdr output cannot feed a loss input" in w.last_error
    w.editor.stack.undo()  # the delete
    assert ("out", "tm", "loss") in w.scene.collapsed[gid].ports
    # saved and trained unchanged: the engine resolves the grouped file
    path = tmp_path / "grouped.json"
    assert w.save_as(str(path))
    saved = load_graph(path)
    assert saved.groups == w.editor.doc.graph.groups
    resolve(saved)
    # double-click expands again
    box = w.scene.collapsed[gid]
    center = w.view.mapFromScene(box.sceneBoundingRect().center())
    QTest.mouseDClick(w.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, center)
    assert w.editor.doc.graph.groups[0]["collapsed"] is False
    assert w.scene.nodes["sp"].isVisible() and gid not in w.scene.collapsed
    w.scene.select_ids(["sp"])
    w.ungroup_selected()
    assert w.editor.doc.graph.to_dict() == original


def test_moving_a_collapsed_group_moves_its_members(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    gid = w.editor.group(["sp", "tm"], "core")
    w.editor.set_collapsed(gid, True)
    box = w.scene.collapsed[gid]
    vp = w.view.viewport()
    start = w.view.mapFromScene(box.scenePos() + box.boundingRect().center() / 2)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 5):
        QTest.mouseMove(vp, start + QPoint(0, 20 * i))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(0, 80))
    sp, tm = w.editor.doc.node("sp").ui, w.editor.doc.node("tm").ui
    assert sp["y"] == tm["y"] and sp["y"] > 20
    assert tm["x"] - sp["x"] == 220  # moved together, spacing kept
    w.editor.set_collapsed(gid, False)
    assert w.scene.nodes["sp"].pos().y() == sp["y"]


def test_dragging_a_group_title_moves_its_members(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    before = w.editor.doc.graph.to_dict()
    gid = w.editor.group(["sp", "tm"], "core")
    frame = w.scene.frames[gid]
    vp = w.view.viewport()
    start = w.view.mapFromScene(frame.title_rect().center())
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 4):
        QTest.mouseMove(vp, start + QPoint(0, 25 * i))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(0, 75))
    sp, tm, enc = (w.editor.doc.node(n).ui for n in ("sp", "tm", "encoder"))
    assert sp["y"] == tm["y"] > 30 and enc["y"] == 0  # members moved, others stayed
    assert frame.title_rect().center().y() > w.view.mapToScene(start).y() + 30  # the frame followed
    w.editor.stack.undo()
    w.editor.stack.undo()
    assert w.editor.doc.graph.to_dict() == before


def test_unknown_node_type_is_drawn_and_can_be_repaired(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    d = json.loads(fixture_file(tmp_path).read_text())
    d["nodes"][2]["type"] = "htm.sp_old"  # e.g. a plugin that is not installed
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(d))
    assert w.open_file(str(path))
    item = w.scene.nodes["sp"]
    assert set(item.ports) == {("in", "sp", "x"), ("out", "sp", "columns")}  # ports named by its edges
    assert "unknown node type 'htm.sp_old'" in item.error
    assert any("unknown node type" in p.text for p in w.problems.problems)
    w.scene.select_ids(["sp"])
    w.delete_selected()
    w.view.drop_node("htm.sp", w.view.mapToScene(300, 300))
    w.editor.connect_ports("encoder", "y", "sp", "x")
    w.editor.connect_ports("sp", "columns", "tm", "columns")
    assert w.editor.validate_now().ok


def test_pasting_foreign_text_is_refused_without_harm(qtbot, tmp_path):
    from PyQt6.QtWidgets import QApplication

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    before = w.editor.doc.graph.to_dict()
    for text in ("hello", "[1, 2]", '{"nodes": 3}', '{"nodes": [{"id": "x"}], "edges": [{"from": 1}]}',
                 '{"nodes": [{"id": "a", "type": "htm.sp", "ui": {"x": "left"}}]}'):
        QApplication.clipboard().setText(text)
        w.paste()
        assert w.editor.doc.graph.to_dict() == before, text
    # a graph fragment copied as text from another editor's file pastes fine
    QApplication.clipboard().setText(json.dumps({"nodes": [{"id": "sp", "type": "htm.sp", "params": {},
                                                            "ui": {"x": 0, "y": 0}}], "edges": []}))
    assert w.paste() == ["sp_2"]


def test_keyboard_shortcuts(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    path = fixture_file(tmp_path)
    w.open_file(str(path))
    v = w.view
    v.setFocus()
    ctrl = Qt.KeyboardModifier.ControlModifier
    w.scene.select_ids(["sp"])
    QTest.keyClick(v, Qt.Key.Key_D, ctrl)
    assert w.editor.doc.node("sp_2") is not None and w.scene.selected_node_ids() == ["sp_2"]
    QTest.keyClick(v, Qt.Key.Key_C, ctrl)
    QTest.keyClick(v, Qt.Key.Key_V, ctrl)
    assert w.editor.doc.node("sp_3") is not None
    QTest.keyClick(v, Qt.Key.Key_A, ctrl)
    assert len(w.scene.selected_node_ids()) == len(w.editor.doc.graph.nodes)
    w.scene.select_ids(["sp_2", "sp_3"])
    QTest.keyClick(v, Qt.Key.Key_G, ctrl)  # the title prompt is stubbed to "region"
    assert [g["nodes"] for g in w.editor.doc.graph.groups] == [["sp_2", "sp_3"]]
    QTest.keyClick(v, Qt.Key.Key_E, ctrl)
    assert w.editor.doc.graph.groups[0]["collapsed"]
    QTest.keyClick(v, Qt.Key.Key_Delete)  # the collapsed group is selected: its nodes go
    assert w.editor.doc.node("sp_2") is None and not w.editor.doc.graph.groups
    QTest.keyClick(v, Qt.Key.Key_S, ctrl)
    assert not w.is_modified() and load_graph(path).to_dict() == w.editor.doc.graph.to_dict() | {
        "ui": load_graph(path).ui}
    QTest.keyClick(v, Qt.Key.Key_N, ctrl)
    assert w.editor.doc.graph.nodes == [] and w.path is None
