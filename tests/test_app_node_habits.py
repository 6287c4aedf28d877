"""What users of other node editors reach for, driven through the real view: a wire dropped
on empty canvas offers the nodes it fits and connects the one chosen; a wire dragged off an
input detaches or moves; paste lands at the mouse; a group's arrow collapses it and its title
selects it for renaming; plus the small things (ids, names, wording, errors by their field)."""
import json

from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtTest import QTest

from app.canvas.search import compatible_types
from app.document import Document, type_base_id
from app_helpers import fixture_file, make_window, port_view_pos
from deephtm.graph import registry
from deephtm.graph.spec import kind_accepts


def drag(w, a: QPoint, b: QPoint) -> None:
    vp = w.view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, 5):
        QTest.mouseMove(vp, a + (b - a) * i / 4)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def free_near(w, at: QPoint, allow=()) -> QPoint:
    """The point nearest `at` (in 20 px steps) with no canvas item under it but `allow`."""
    for r in range(0, 400, 20):
        for dx, dy in ((0, r), (r, 0), (-r, 0), (0, -r), (r, r), (-r, r), (r, -r), (-r, -r)):
            p = at + QPoint(dx, dy)
            if w.view.viewport().rect().contains(p) and all(
                    isinstance(it, allow) for it in w.scene.items(w.view.mapToScene(p))):
                return p
    raise AssertionError("no free spot")


def test_a_wire_dropped_on_empty_canvas_offers_fitting_nodes_and_connects_the_choice(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.view.resetTransform()
    w.view.centerOn(w.scene.nodes["tm"].sceneBoundingRect().center())
    start = port_view_pos(w, "tm", "out", "cells")
    drop = free_near(w, start + QPoint(120, 260))
    drag(w, start, drop)
    search = w.view.search
    assert search.isVisible()
    offered = [search.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(search.list.count())]
    # exactly the types with an input an sdr output may feed
    fits = sorted(t for t, cls in registry.types().items() if any(kind_accepts(p.kind, "sdr") for p in cls.inputs))
    assert sorted(offered) == fits and "htm.tm" in offered and "source.sine" not in offered
    QTest.keyClicks(search.edit, "classifier")
    QTest.keyClick(search.edit, Qt.Key.Key_Return)
    new = [n for n in w.editor.doc.graph.nodes if n.type == "decoder.classifier"]
    assert len(new) == 1
    e = [x for x in w.editor.doc.graph.edges if x.dst == new[0].id]
    assert [(x.src, x.src_port) for x in e] == [("tm", "cells")]
    x, y = w.editor.doc.position(new[0].id)
    assert abs(x - w.view.mapToScene(drop).x()) < 2  # the node sits on the wire's loose end
    w.editor.stack.undo()  # node and wire were one step
    assert not any(n.type == "decoder.classifier" for n in w.editor.doc.graph.nodes)


def test_a_wire_dropped_from_an_input_offers_nodes_with_a_fitting_output(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.delete([], [("sine", "value", "encoder", "x")])
    w.view.resetTransform()
    w.view.centerOn(w.scene.nodes["encoder"].sceneBoundingRect().center())
    start = port_view_pos(w, "encoder", "in", "x")
    drop = free_near(w, start + QPoint(-40, 220))
    drag(w, start, drop)
    assert w.view.search.isVisible()
    assert w.view.search.only == compatible_types("in", "tensor")
    QTest.keyClicks(w.view.search.edit, "source.sine")
    QTest.keyClick(w.view.search.edit, Qt.Key.Key_Return)
    e = w.editor.doc.inbound("encoder", "x")
    assert e is not None and e.src == "sine_2"
    assert w.editor.doc.position("sine_2")[0] < w.editor.doc.position("encoder")[0]


def test_dragging_a_wire_off_an_input_detaches_it_or_moves_it(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.view.resetTransform()
    w.view.centerOn(w.scene.nodes["loss"].sceneBoundingRect().center())
    # move: decoder.y -> loss.pred picked up at loss.pred, dropped on nrmse... (taken) so first free one
    w.editor.delete([], [("decoder", "y", "nrmse", "pred")])
    drag(w, port_view_pos(w, "loss", "in", "pred"), port_view_pos(w, "nrmse", "in", "pred"))
    assert w.editor.doc.inbound("loss", "pred") is None
    assert w.editor.doc.inbound("nrmse", "pred").src == "decoder"
    w.editor.stack.undo()  # one step puts it back
    assert w.editor.doc.inbound("loss", "pred").src == "decoder" and w.editor.doc.inbound("nrmse", "pred") is None
    # detach: dropped on empty canvas
    start = port_view_pos(w, "loss", "in", "pred")
    drop = free_near(w, start + QPoint(-60, 200))
    drag(w, start, drop)
    assert w.editor.doc.inbound("loss", "pred") is None
    assert ("decoder", "y", "loss", "pred") not in w.scene.edges
    assert not w.view.search.isVisible()  # detaching is not adding
    # dropped back on its own input: nothing changes
    w.editor.stack.undo()
    count = w.editor.stack.count()
    p = port_view_pos(w, "loss", "in", "pred")
    drag(w, p, p + QPoint(1, 0))
    assert w.editor.stack.count() == count and w.scene.edges[("decoder", "y", "loss", "pred")].isVisible()


def test_paste_lands_at_the_mouse(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.view.resetTransform()
    w.view.centerOn(w.scene.nodes["sp"].sceneBoundingRect().center())
    w.scene.select_ids(["sp"])
    w.view.setFocus()
    QTest.keyClick(w.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    at = port_view_pos(w, "sp", "in", "x") + QPoint(0, 250)
    QTest.mouseMove(w.view.viewport(), at)
    QTest.keyClick(w.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    x, y = w.editor.doc.position("sp_2")
    target = w.view.mapToScene(at)
    assert abs(x - target.x()) < 2 and abs(y - target.y()) < 2
    QTest.keyClick(w.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)  # again, same spot
    x3, y3 = w.editor.doc.position("sp_3")
    assert (x3, y3) != (x, y)  # not on top of the previous copy


def test_group_arrow_collapses_and_expands_and_the_title_selects_for_renaming(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    gid = w.editor.group(["sp", "tm"], "core")
    vp = w.view.viewport()
    frame = w.scene.frames[gid]
    title = w.view.mapFromScene(frame.title_rect().center())
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, title)
    assert frame.isSelected() and w.inspector.target == ("group", gid)
    edit = w.inspector.editors["title"]
    edit.selectAll()
    QTest.keyClicks(edit, "Temporal core")
    assert w.editor.doc.graph.groups[0]["title"] == "Temporal core"
    assert w.scene.frames[gid].title == "Temporal core"
    arrow = w.view.mapFromScene(frame.arrow_rect().center())
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, arrow)
    assert w.editor.doc.graph.groups[0]["collapsed"] is True and gid in w.scene.collapsed
    box = w.scene.collapsed[gid]
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.view.mapFromScene(box.mapToScene(box.arrow_rect().center())))
    assert w.editor.doc.graph.groups[0]["collapsed"] is False and gid in w.scene.frames


def test_rubber_band_inside_a_group_picks_nodes_not_the_group(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    gid = w.editor.group(["sp", "tm"], "core")
    from app.canvas.group_item import GroupFrameItem

    r = w.scene.nodes["sp"].sceneBoundingRect()
    # from a free spot inside the frame (below sp) up across sp's box only
    a = free_near(w, w.view.mapFromScene(QPointF(r.center().x(), r.bottom() + 6)), allow=GroupFrameItem)
    b = w.view.mapFromScene(QPointF(r.center().x() + 4, r.top() + 30))
    drag(w, a, b)
    assert w.scene.selected_members() == ["sp"] and not w.scene.frames[gid].isSelected()


def test_automatic_ids_say_what_the_node_is():
    assert type_base_id("htm.sp") == "sp"
    assert type_base_id("encoder.mlp") == "encoder" and type_base_id("decoder.mlp") == "decoder"
    doc = Document()
    from app import edits

    ids = []
    for t in ("encoder.mlp", "encoder.mlp", "decoder.mlp", "htm.sp"):
        ops, nid = edits.add_node_ops(doc, t, 0, 0)
        doc.apply_all(ops)
        ids.append(nid)
    assert ids == ["encoder", "encoder_2", "decoder", "sp"]


def test_save_as_names_an_untitled_graph_after_its_file(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.new_file()
    w.view.drop_node("source.sine", QPointF(0, 0))
    assert w.editor.doc.graph.name == "untitled"
    out = tmp_path / "mygraph.json"
    assert w.save_as(str(out))
    assert json.loads(out.read_text())["name"] == "mygraph"
    assert w.save_as(str(tmp_path / "other.json"))  # a named graph keeps its name
    assert json.loads((tmp_path / "other.json").read_text())["name"] == "mygraph"


def test_a_param_error_shows_under_its_field(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["tm"])
    w.editor.set_param("tm", "cells_per_column", 0)  # a hand-edited file could hold this
    w.editor.validate_now()
    label = w.inspector.param_errors["cells_per_column"]
    assert label.isVisible() and "cells_per_column" not in label.text() and label.text().startswith("✗")
    assert "cells_per_column" not in w.inspector.problem_label.text()
    # the label sits right under the field, not at the bottom of the form
    form = w.inspector.form
    field_row = form.getWidgetPosition(w.inspector.editors["cells_per_column"].parentWidget())[0]
    assert form.getWidgetPosition(label)[0] == field_row + 1
    w.editor.stack.undo()
    w.editor.validate_now()
    assert not w.inspector.param_errors["cells_per_column"].isVisible()


def test_an_sdr_input_is_spoken_of_as_such(qtbot, tmp_path):
    from app.edits import connection_problem

    doc = Document()
    doc.apply_all([("add_node", {"id": "enc", "type": "encoder.mlp", "params": {}, "ui": {}}, None),
                   ("add_node", {"id": "tm", "type": "htm.tm", "params": {}, "ui": {}}, None)])
    assert connection_problem(doc, "enc", "y", "tm", "columns") == "a tensor output cannot feed an sdr input"


def test_a_node_title_shows_on_its_box_and_is_saved_under_ui(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.scene.select_ids(["sp"])
    edit = w.inspector.editors["title"]
    edit.setFocus()
    QTest.keyClicks(edit, "Spatial pooler")
    box = w.scene.nodes["sp"]
    assert box.title == "Spatial pooler" and box.subtitle == "sp · htm.sp"  # the id stays in view
    assert w.editor.doc.node("sp").ui["title"] == "Spatial pooler"
    assert w.editor.doc.edge(("sp", "columns", "tm", "columns")) is not None  # edges still use the id
    out = tmp_path / "titled.json"
    assert w.save_to(str(out))
    saved = json.loads(out.read_text())
    assert next(n for n in saved["nodes"] if n["id"] == "sp")["ui"]["title"] == "Spatial pooler"
    w.editor.stack.undo()  # the typing was one step
    assert "title" not in w.editor.doc.node("sp").ui and w.scene.nodes["sp"].title == "sp"
    assert w.open_file(str(out))  # and it loads back
    assert w.scene.nodes["sp"].title == "Spatial pooler"


def test_a_group_colour_is_chosen_in_the_inspector_and_saved_under_its_ui(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    gid = w.editor.group(["sp", "tm"], "core")
    w.scene.select_ids([gid])
    assert w.inspector.target == ("group", gid)
    combo = w.inspector.editors["color"]
    combo.setFocus()
    i = combo.findText("green")
    QTest.keyClick(combo, Qt.Key.Key_Home)
    for _ in range(i):
        QTest.keyClick(combo, Qt.Key.Key_Down)
    assert w.editor.doc.graph.groups[0]["ui"]["color"] == "#4fbf73"
    assert w.scene.frames[gid].color == "#4fbf73"
    out = tmp_path / "coloured.json"
    assert w.save_to(str(out))
    assert json.loads(out.read_text())["groups"][0]["ui"] == {"color": "#4fbf73"}
    assert w.open_file(str(out))
    assert w.scene.frames[gid].color == "#4fbf73"
    w.editor.set_collapsed(gid, True)
    assert w.scene.collapsed[gid].color == "#4fbf73"


def test_the_overview_shows_for_a_big_graph_and_clicking_it_moves_the_view(qtbot, tmp_path):
    from test_app_wires import GRAPHS

    w = make_window(qtbot, tmp_path)
    w.open_file(str(next(p for p in GRAPHS if p.stem == "nyc_taxi")))
    w.view.fit()
    mini = w.view.minimap
    assert not mini.isVisible()  # all of it on show: no overview needed
    w.view.resetTransform()  # zoom 1: the 27 nodes no longer fit
    w.view.centerOn(w.scene.nodes["taxi"].sceneBoundingRect().center())
    qtbot.waitUntil(mini.isVisible, timeout=2000)
    far = w.scene.content_rect().bottomRight() - QPointF(100, 100)
    QTest.mouseClick(mini, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     mini.to_map(far).toPoint())
    centre = w.view.mapToScene(w.view.viewport().rect().center())
    assert abs(centre.x() - far.x()) < 40 and abs(centre.y() - far.y()) < 40
    assert w.editor.stack.count() == 0  # looking around is not an edit


def test_reroute_points_bend_a_wire_move_with_a_drag_and_go_with_a_double_click(qtbot, tmp_path):
    from PyQt6.QtGui import QPainterPathStroker

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.move({"loss": (1500.0, 0.0)})  # a long wire decoder -> loss
    w.view.resetTransform()
    wire = w.scene.edges[("decoder", "y", "loss", "pred")]
    mid = wire.path().pointAtPercent(0.5)
    w.view.centerOn(mid)
    vp = w.view.viewport()
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, w.view.mapFromScene(mid))
    ui = w.editor.doc.node("loss").ui
    assert ui["reroutes"]["pred"]["from"] == "decoder.y" and len(ui["reroutes"]["pred"]["points"]) == 1
    assert len(wire.handles) == 1
    # drag the dot up: the wire follows through it
    dot = wire.handles[0]
    start = w.view.mapFromScene(dot.scenePos())
    drag(w, start, start + QPoint(0, -120))
    x, y = w.editor.doc.node("loss").ui["reroutes"]["pred"]["points"][0]
    assert abs(y - (mid.y() - 120)) < 3 and abs(x - mid.x()) < 3
    stroker = QPainterPathStroker()
    stroker.setWidth(4)
    assert stroker.createStroke(wire.path()).contains(QPointF(x, y))
    assert w.editor.doc.edge(("decoder", "y", "loss", "pred")) is not None
    # saved and loaded back
    out = tmp_path / "rerouted.json"
    assert w.save_to(str(out))
    assert w.open_file(str(out))
    wire = w.scene.edges[("decoder", "y", "loss", "pred")]
    assert [(h.pos().x(), h.pos().y()) for h in wire.handles] == [(x, y)]
    # double-click the dot: gone, and the wire is plain again
    w.view.centerOn(QPointF(x, y))
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      w.view.mapFromScene(QPointF(x, y)))
    assert "reroutes" not in w.editor.doc.node("loss").ui and wire.handles == []
    assert wire.path().elementCount() == 4
