"""The Problems list in the real window: every problem of the graph at once, worded for
people, each selecting its node when clicked; warnings apart from errors; an empty graph
is not praised."""
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtGui import QColor
from PyQt6.QtTest import QTest

from app.problems import EMPTY_TEXT, ERROR_COLOR, OK_COLOR, PROBLEM_ROLE, WARNING_COLOR
from deephtm.graph import registry

from app_helpers import fixture_file, make_window, port_view_pos

TM_WARNING = "node 'tm': its 'loss' output is not connected, so it will not learn"


def items(w):
    return [w.problems.item(i) for i in range(w.problems.count())]


def click(qtbot, w, item) -> None:
    w.problems.scrollToItem(item)
    qtbot.mouseClick(w.problems.viewport(), Qt.MouseButton.LeftButton, pos=w.problems.visualItemRect(item).center())


def drag_wire(w, a: QPoint, b: QPoint) -> None:
    vp = w.view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, a + (b - a) / 2)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def test_every_unconnected_input_is_listed_and_selects_its_node(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    types = ["encoder.mlp", "htm.sp", "htm.tm", "decoder.mlp", "loss.mse"]
    ids = [w.view.drop_node(t, w.view.mapToScene(120 + 200 * (i % 3), 120 + 220 * (i // 3)))
           for i, t in enumerate(types)]
    w.editor.validate_now()
    expected = [(nid, p.name) for nid, t in zip(ids, types) for p in registry.get(t).inputs if not p.optional]
    assert len(expected) == 6
    errors = [it for it in items(w) if it.data(PROBLEM_ROLE) and it.data(PROBLEM_ROLE).level == "error"]
    assert [it.text() for it in errors] == [f"✗ input '{port}' of node '{nid}' is not connected"
                                             for nid, port in expected]
    assert all(it.foreground().color() == QColor(ERROR_COLOR) for it in errors)
    tm = ids[types.index("htm.tm")]
    warnings = [it for it in items(w) if it not in errors]
    assert [it.text() for it in warnings] == ["⚠ " + TM_WARNING.replace("'tm'", f"'{tm}'")]
    assert warnings[0].foreground().color() == QColor(WARNING_COLOR)
    assert w.problems_dock.windowTitle() == "Problems (7)"

    for it, (nid, _) in zip(errors, expected):
        click(qtbot, w, it)
        assert w.scene.selected_node_ids() == [nid]
        assert w.inspector.target == ("node", nid)

    # wiring one input with the mouse removes exactly its problem
    encoder, sp = ids[0], ids[1]
    w.view.centerOn(w.scene.nodes[sp])
    drag_wire(w, port_view_pos(w, encoder, "out", "y"), port_view_pos(w, sp, "in", "x"))
    assert w.editor.doc.inbound(sp, "x") is not None
    w.editor.validate_now()
    left = [it.data(PROBLEM_ROLE).text for it in items(w) if it.data(PROBLEM_ROLE).level == "error"]
    assert left == [f"input '{port}' of node '{nid}' is not connected" for nid, port in expected if nid != sp]


def test_a_problem_upstream_does_not_blame_the_nodes_after_it(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.delete(["sp"])
    w.editor.validate_now()
    assert [it.text() for it in items(w)] == ["✗ input 'columns' of node 'tm' is not connected"]
    assert w.scene.nodes["tm"].error == "input 'columns' of node 'tm' is not connected"
    assert w.editor.analysis.shapes[("decoder", "out", "y")] is None
    assert w.editor.analysis.shapes[("encoder", "out", "y")] is not None  # shapes upstream still shown


def test_an_empty_graph_is_neutral_not_green(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.editor.validate_now()
    assert [it.text() for it in items(w)] == [EMPTY_TEXT]
    assert items(w)[0].foreground().color() != QColor(OK_COLOR)
    assert w.problems_dock.windowTitle() == "Problems"
    w.view.drop_node("source.sine", w.view.mapToScene(200, 200))
    w.editor.validate_now()
    [ok] = items(w)
    assert ok.text().startswith("✓ The graph resolves") and ok.foreground().color() == QColor(OK_COLOR)


def test_an_unconnected_loss_output_warns_but_the_graph_resolves(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.delete(["tm_loss"])
    w.editor.validate_now()
    assert w.editor.analysis.ok  # training is allowed
    warning, ok = items(w)
    assert warning.text() == "⚠ " + TM_WARNING
    assert ok.text().startswith("✓ The graph resolves")
    assert w.scene.nodes["tm"].error is None  # a warning is not drawn as an error
    click(qtbot, w, warning)
    assert w.scene.selected_node_ids() == ["tm"]
    w.editor.stack.undo()
    w.editor.validate_now()
    assert [it.text()[0] for it in items(w)] == ["✓"]
