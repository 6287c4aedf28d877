"""The editor's Qt-free document model: every operation's inverse restores the exact graph;
grouping, pasting, connecting and layout build the right operations."""
import copy

import pytest

from app import edits, grouping
from app.analysis import analyze
from app.document import Document
from app.layout import layered_positions
from deephtm.graph.graphfile import load_graph
from deephtm.errors import GraphError
from deephtm.graph.resolve import resolve

from app_helpers import fixture_file


@pytest.fixture
def doc(tmp_path):
    return Document(load_graph(fixture_file(tmp_path)))


def roundtrip(doc, ops):
    """Apply ops, undo them, redo them; return (before, after) dicts after checking both."""
    before = copy.deepcopy(doc.graph.to_dict())
    inverses = doc.apply_all(ops)
    after = copy.deepcopy(doc.graph.to_dict())
    assert after != before, f"{ops[0][0]} changed nothing"
    doc.apply_all(inverses)
    assert doc.graph.to_dict() == before
    doc.apply_all(ops)
    assert doc.graph.to_dict() == after
    return before, after


def test_every_operation_is_exactly_invertible(doc):
    ops, nid = edits.add_node_ops(doc, "htm.sp", 10, 20)
    roundtrip(doc, ops)
    assert doc.node(nid).type == "htm.sp" and nid == "sp_2"
    roundtrip(doc, [("remove_edge", ("sp", "columns", "tm", "columns"))])
    roundtrip(doc, [("add_edge", {"from": "sp_2.columns", "to": "tm.columns", "delay": 0}, 0)])
    roundtrip(doc, [("set_params", "sp", {"columns": 128, "winners": 4})])
    roundtrip(doc, [("set_ui", "sp", {"x": 5, "y": 7})])
    roundtrip(doc, [("set_delay", ("tm", "cells", "tm", "context"), 0)])
    roundtrip(doc, [("rename", "tm", "memory")])
    assert doc.edge(("memory", "cells", "memory", "context")) is not None
    roundtrip(doc, [("set_groups", [{"id": "g", "title": "G", "nodes": ["sp"], "collapsed": True}])])
    roundtrip(doc, [("set_training", {**doc.graph.training.to_dict(), "lr": 0.01})])
    roundtrip(doc, [("set_meta", "other", "text")])
    roundtrip(doc, edits.delete_ops(doc, ["sp_2"]))


def test_delete_removes_edges_and_group_membership(doc):
    doc.apply_all([("set_groups", [{"id": "g", "title": "G", "nodes": ["sp", "tm"], "collapsed": False},
                                   {"id": "only_tm", "title": "T", "nodes": ["tm"], "collapsed": False}])])
    before, after = roundtrip(doc, edits.delete_ops(doc, ["tm"]))
    assert not any("tm" in (e["from"].split(".")[0], e["to"].split(".")[0]) for e in after["edges"])
    assert after["groups"] == [{"id": "g", "title": "G", "nodes": ["sp"], "collapsed": False}]


def test_connect_refuses_kinds_and_delays_cycles(doc):
    assert edits.connection_problem(doc, "encoder", "y", "tm", "columns") == \
        "a tensor output cannot feed an sdr input"
    assert edits.connection_problem(doc, "sp", "columns", "tm", "columns") == "these ports are already connected"
    assert edits.connection_problem(doc, "decoder", "x", "loss", "pred") is not None  # x is an input
    # decoder.y -> encoder.x closes encoder -> ... -> decoder: it must become a delayed edge
    ops, note = edits.connect_ops(doc, "decoder", "y", "encoder", "x")
    assert ops[0] == ("remove_edge", ("sine", "value", "encoder", "x")) and "replaced" in note
    assert ops[1][1]["delay"] == 1 and "cycle" in note
    roundtrip(doc, ops)
    resolve(doc.graph)  # the engine accepts the result


def test_group_nests_and_ungroup_restores(doc):
    original = copy.deepcopy(doc.graph.to_dict())
    ops, outer = grouping.group_ops(doc, ["sp", "tm", "decoder"], "HTM")
    doc.apply_all(ops)
    ops, inner = grouping.group_ops(doc, ["sp", "tm"], "core")
    doc.apply_all(ops)
    g = grouping.group(doc.graph, outer)
    assert g["nodes"] == [inner, "decoder"]
    assert grouping.leaf_nodes(doc.graph, outer) == ["sp", "tm", "decoder"]
    doc.apply_all(grouping.set_group_ops(doc, outer, collapsed=True))
    reps = grouping.representatives(doc.graph)
    assert reps["sp"] == outer and reps[inner] == outer and reps["encoder"] == "encoder"
    ins, outs = grouping.external_ports(doc.graph, outer)
    assert ins == [("sp", "x")]
    assert set(outs) == {("decoder", "y"), ("tm", "loss")}
    resolve(doc.graph)  # groups never stop the graph from resolving
    doc.apply_all([("remove_edge", ("sine", "value", "encoder", "x"))])
    ops, lone = grouping.group_ops(doc, ["encoder"], "lone")
    doc.apply_all(ops)
    assert grouping.external_ports(doc.graph, lone)[0] == [("encoder", "x")]  # unfed: still wireable
    doc.apply_all(grouping.ungroup_ops(doc, lone))
    doc.apply_all([("add_edge", {"from": "sine.value", "to": "encoder.x", "delay": 0}, 0)])
    doc.apply_all(grouping.ungroup_ops(doc, inner))
    assert grouping.group(doc.graph, outer)["nodes"] == ["sp", "tm", "decoder"]
    doc.apply_all(grouping.ungroup_ops(doc, outer))
    assert doc.graph.to_dict() == original


def test_paste_gives_fresh_ids_and_keeps_internal_edges(doc):
    frag = edits.fragment(doc, ["sp", "tm"])
    assert [e["to"] for e in frag["edges"]] == ["tm.columns", "tm.context"]
    ops, new_ids = edits.paste_ops(doc, frag, 40, 40)
    before, after = roundtrip(doc, ops)
    assert new_ids == ["sp_2", "tm_2"]
    added = [e for e in after["edges"] if e not in before["edges"]]
    assert added == [{"from": "sp_2.columns", "to": "tm_2.columns", "delay": 0},
                     {"from": "tm_2.cells", "to": "tm_2.context", "delay": 1}]
    assert doc.node("sp_2").ui == {"x": 480, "y": 40}


def test_layout_puts_each_node_right_of_its_inputs(doc):
    pos = layered_positions(doc.graph)
    for e in doc.graph.edges:
        if e.delay == 0:
            assert pos[e.src][0] < pos[e.dst][0], e.label()
    roundtrip(doc, edits.layout_ops(doc))


def test_analysis_locates_engine_errors(doc):
    assert analyze(doc.graph).ok
    doc.apply_all([("set_params", "sp", {"columns": 4, "winners": 9})])
    with pytest.raises(GraphError) as sp_error:  # the engine's words for this mistake
        resolve(doc.graph)
    doc.apply_all([("set_params", "decoder", {"hidden": 0})])
    a = analyze(doc.graph)
    assert not a.ok
    # resolve() stops at the decoder's param; the sp's shape error is found as well
    by_node = {p.node: p.text for p in a.problems}
    assert by_node["sp"] == f"{sp_error.value.where}: {sp_error.value.message}"
    assert "param 'hidden'" in by_node["decoder"]
    doc.apply_all([("set_params", "sp", {}), ("set_params", "decoder", {}),
                   ("add_edge", {"from": "encoder.y", "to": "tm.columns", "delay": 0}, None)])
    a = analyze(doc.graph)
    assert a.problems[0].edge == ("encoder", "y", "tm", "columns")
    assert a.shapes[("encoder", "out", "y")] == (256,)  # shapes still shown for the rest
