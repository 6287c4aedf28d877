"""Wires that can be read: in every example graph, as opened and after Auto-Layout, no wire
passes behind a box it does not connect; hovering a wire lights it and its two ports."""
from pathlib import Path

import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtGui import QPainterPathStroker
from PyQt6.QtTest import QTest

from app.layout import layered_positions
from app_helpers import fixture_file, make_window

GRAPHS = sorted((Path(__file__).resolve().parents[1] / "graphs").glob("*.json"))


def wires_behind_boxes(scene) -> list[tuple]:
    """(wire, box) pairs where a drawn wire crosses a box other than its two ends."""
    stroker = QPainterPathStroker()
    stroker.setWidth(1)
    boxes = [it for it in list(scene.nodes.values()) + list(scene.collapsed.values()) if it.isVisible()]
    crossings = []
    for key, wire in scene.edges.items():
        if not wire.isVisible():
            continue
        stroke = stroker.createStroke(wire.path())  # the line itself, not the area it encloses
        for box in boxes:
            if box in (wire.src_item, wire.dst_item):
                continue
            if stroke.intersects(box.sceneBoundingRect().adjusted(2, 2, -2, -2)):
                crossings.append((key, box.key))
    return crossings


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_no_wire_passes_behind_a_box_as_opened_and_after_auto_layout(qtbot, tmp_path, path):
    w = make_window(qtbot, tmp_path)
    assert w.open_file(str(path))
    assert w.scene.edges and all(e.isVisible() for e in w.scene.edges.values()
                                 if e.src_item is not None and e.dst_item is not None)
    assert wires_behind_boxes(w.scene) == []
    w.view.setFocus()
    laid_out = layered_positions(w.editor.doc.graph, w.scene.node_heights())
    QTest.keyClick(w.view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # Auto-Layout
    assert all(w.editor.doc.position(nid) == (round(x), round(y)) for nid, (x, y) in laid_out.items())
    assert wires_behind_boxes(w.scene) == []
    # layers run left to right: every undelayed wire between two boxes goes right (a
    # collapsed group is one box), and no two boxes overlap
    g = w.editor.doc.graph
    for e in g.edges:
        wire = w.scene.edges[(e.src, e.src_port, e.dst, e.dst_port)]
        if e.delay == 0 and wire.src_item is not wire.dst_item:
            assert wire.dst_item.x() > wire.src_item.x(), (e.src, e.dst)
    rects = [it.sceneBoundingRect() for it in w.scene.nodes.values() if it.isVisible()]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    # an expanded group's frame holds no box from outside it
    for gid, frame in w.scene.frames.items():
        for nid, item in w.scene.nodes.items():
            if nid not in frame.members and item.isVisible():
                assert not frame.rect.intersects(item.sceneBoundingRect()), (gid, nid)


def test_a_box_dragged_onto_a_wire_sends_the_wire_around_it(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    scene, view = w.scene, w.view
    w.editor.move({"loss": (1700.0, 0.0)})  # a long wire decoder -> loss, with room on it
    view.fit()
    wire = scene.edges[("decoder", "y", "loss", "pred")]
    assert wires_behind_boxes(scene) == []
    assert wire.path().elementCount() == 4  # the plain curve: nothing in the way
    # drag nrmse by its title onto the middle of the wire
    box = scene.nodes["nrmse"]
    grab = view.mapFromScene(box.sceneBoundingRect().topLeft() + QPointF(60, 12))
    target = view.mapFromScene(wire.path().pointAtPercent(0.5) + QPointF(0, -40))
    vp = view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, grab)
    for i in range(1, 6):
        QTest.mouseMove(vp, grab + (target - grab) * i / 5)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    y = scene.nodes["decoder"].ports[("out", "decoder", "y")].scenePos().y()
    assert box.sceneBoundingRect().top() < y < box.sceneBoundingRect().bottom()  # it sits across the line
    assert wires_behind_boxes(scene) == []
    assert wire.path().elementCount() > 4  # routed around, no longer the plain curve


def test_hovering_a_wire_lights_it_and_its_two_ports(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    scene, view = w.scene, w.view
    w.editor.move({"loss": (1500.0, 0.0)})  # a long wire decoder -> loss to point at
    view.fit()
    wire = scene.edges[("decoder", "y", "loss", "pred")]
    out_port = scene.nodes["decoder"].ports[("out", "decoder", "y")]
    in_port = scene.nodes["loss"].ports[("in", "loss", "pred")]
    width = wire.pen().widthF()
    on = view.mapFromScene(wire.path().pointAtPercent(0.5))
    QTest.mouseMove(view.viewport(), on + QPoint(0, 60))
    QTest.mouseMove(view.viewport(), on)
    qtbot.waitUntil(lambda: wire.hovered, timeout=2000)
    assert wire.pen().widthF() > width
    assert out_port.highlight == "hover" and in_port.highlight == "hover"
    other = scene.nodes["tm"].ports[("out", "tm", "cells")]
    assert other.highlight is None
    QTest.mouseMove(view.viewport(), view.mapFromScene(scene.content_rect().bottomRight() + QPointF(60, 60)))
    qtbot.waitUntil(lambda: not wire.hovered, timeout=2000)
    assert out_port.highlight is None and in_port.highlight is None
    assert wire.pen().widthF() == width


def _hits(points, box) -> bool:
    from app.canvas.routing import segment_hits

    return any(segment_hits(p, q, box) for p, q in zip(points, points[1:]))


def test_a_route_goes_around_the_boxes_between_its_ports_and_keeps_clear_of_them():
    from app.canvas.routing import grow, route

    src = (0.0, 0.0, 100.0, 80.0)
    dst = (600.0, 0.0, 700.0, 80.0)
    wall = (250.0, -200.0, 350.0, 200.0)  # a tall box right across the straight line
    a, b = (100.0, 40.0), (600.0, 40.0)
    corners = route(a, b, [src, dst, wall], margin=10)
    assert corners[0] == a and corners[-1] == b
    assert all(p[0] == q[0] or p[1] == q[1] for p, q in zip(corners, corners[1:]))  # orthogonal
    assert not _hits(corners, grow(wall, 9))  # round the wall, the margin kept
    assert not _hits(corners[1:-1], src) and not _hits(corners[1:-1], dst)  # nor through its own ends
    # a wire back to the left (a loop to the node's own input) goes round its node
    loop = route((100.0, 40.0), (0.0, 20.0), [src], margin=10)
    assert not _hits(loop[1:-1], src) and len(loop) >= 5


def test_a_narrow_gap_is_still_used_with_a_thinner_margin():
    from app.canvas.routing import route

    left = (0.0, 0.0, 100.0, 80.0)
    right = (115.0, 0.0, 215.0, 80.0)  # 15 px between the boxes
    far = (600.0, 200.0, 700.0, 280.0)
    corners = route((100.0, 40.0), (600.0, 240.0), [left, right, far], margin=12)
    assert not _hits(corners[1:-1], right) and not _hits(corners, far)
