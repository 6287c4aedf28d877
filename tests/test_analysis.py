"""analyse(): every problem of a graph at once, each with its place as fields, the shapes it
could infer, and warnings about graphs that resolve but will not train as meant. Its first
error is always the one resolve() raises."""
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.analysis import analyze
from deephtm.cli import main
from deephtm.errors import GraphError
from deephtm.graph import registry
from deephtm.graph.graphfile import Graph
from deephtm.graph.resolve import MAX_PROBLEMS, analyse, resolve

from helpers import sine_dict, write

FILE = "g.json"


def graph(d: dict) -> Graph:
    g = Graph.from_dict(copy.deepcopy(d))
    g.path = FILE
    return g


def node(d, node_id):
    return next(n for n in d["nodes"] if n["id"] == node_id)


def drop_edge(d, to):
    d["edges"] = [e for e in d["edges"] if e["to"] != to]


def places(problems):
    return [(p.node, p.param, p.port, p.edge) for p in problems]


def test_a_graph_that_resolves_has_no_problems_and_the_same_shapes():
    g = graph(sine_dict())
    r = resolve(g)
    a = analyse(g)
    assert a.problems == [] and a.resolved is not None
    assert a.resolved.total_values == r.total_values > 0
    for nid, rn in r.nodes.items():
        for port, shape in rn.out_shapes.items():
            assert a.shapes[(nid, "out", port)] == shape
        for port, shape in rn.in_shapes.items():
            assert a.shapes[(nid, "in", port)] == shape
    assert a.shapes[("tm", "in", "context")] == r.shape_of("tm", "winners")  # a delayed input, known


def test_every_independent_mistake_is_reported_in_resolve_order():
    d = sine_dict()
    node(d, "sp")["params"]["colums"] = 256  # unknown param
    node(d, "decoder")["params"]["hidden"] = "wide"  # wrong type
    node(d, "nrmse")["type"] = "metric.nonesuch"  # unknown type
    d["edges"].append({"from": "ghost.y", "to": "loss.pred", "delay": 0})  # unknown node
    d["edges"].append(dict(d["edges"][0]))  # duplicate edge sine.value -> bits.x
    g = graph(d)
    with pytest.raises(GraphError) as first:
        resolve(g)
    a = analyse(g)
    assert str(a.errors[0]) == str(first.value)
    assert places(a.errors) == [
        ("sp", "colums", None, None),
        ("decoder", "hidden", None, None),
        ("nrmse", None, None, None),
        (None, None, None, ("ghost", "y", "loss", "pred")),
        (None, None, None, ("sine", "value", "bits", "x")),
    ]
    assert [e.message for e in a.errors[1:]] == [
        "expected an integer, got 'wide'",
        "unknown node type 'metric.nonesuch' (run 'deephtm nodes' for the list)",
        "unknown node 'ghost'",
        "duplicate edge",
    ]
    assert a.errors[0].message.startswith("unknown param (known: columns")
    assert all(str(e).startswith(FILE + ": ") and "\n" not in str(e) for e in a.errors)
    assert a.resolved is None


def test_nodes_downstream_of_a_problem_are_skipped_not_blamed():
    d = sine_dict()
    drop_edge(d, "tm.columns")
    a = analyse(graph(d))
    # the TM, decoder, loss and metric cannot know their shapes; only the TM is to blame
    assert places(a.errors) == [("tm", None, "columns", None)]
    assert a.errors[0].summary == "input 'columns' of node 'tm' is not connected"
    assert str(a.errors[0]) == f"{FILE}: node 'tm': port 'columns': input is not connected"  # as printed
    whole = resolve(graph(sine_dict()))
    for nid in ("sine", "encoder", "sp"):  # upstream of the problem: shapes as in the whole graph
        for port, shape in whole.nodes[nid].out_shapes.items():
            assert a.shapes[(nid, "out", port)] == shape
    assert a.shapes[("tm", "in", "columns")] is None
    assert a.shapes[("tm", "out", "cells")] is None and a.shapes[("decoder", "out", "y")] is None
    assert a.shapes[("loss", "in", "target")] == whole.shape_of("sine", "target")


def test_a_bad_param_blames_its_node_only():
    d = sine_dict()
    node(d, "sp")["params"]["columns"] = 0  # below the minimum
    a = analyse(graph(d))
    assert places(a.errors) == [("sp", "columns", None, None)]
    assert a.shapes[("encoder", "out", "y")] is not None and a.shapes[("sp", "out", "columns")] is None


def test_shape_errors_of_several_nodes_are_all_found():
    d = sine_dict()
    node(d, "sp")["params"]["winners"] = node(d, "sp")["params"]["columns"] + 1  # more winners than columns
    next(e for e in d["edges"] if e["to"] == "nrmse.pred")["from"] = "encoder.y"  # encoder's 256 vs sine's 1
    g = graph(d)
    with pytest.raises(GraphError) as first:
        resolve(g)
    a = analyse(g)
    assert str(a.errors[0]) == str(first.value)
    assert [e.node for e in a.errors] == ["sp", "nrmse"]
    assert a.errors[1].port is not None and a.errors[1].summary.startswith(f"node 'nrmse': port '{a.errors[1].port}'")


def test_a_refused_edge_is_its_only_problem():
    d = sine_dict()
    # a dense tensor cannot feed the TM's SDR input: the edge is wrong, the TM is not unconnected
    next(e for e in d["edges"] if e["to"] == "tm.columns")["from"] = "encoder.y"
    a = analyse(graph(d))
    assert places(a.errors) == [(None, None, None, ("encoder", "y", "tm", "columns"))]
    assert a.errors[0].message == "a tensor output cannot feed an sdr input"
    assert a.shapes[("tm", "in", "columns")] is None and a.shapes[("decoder", "out", "y")] is None


def test_each_cycle_is_reported_once_and_its_nodes_are_not_inferred():
    d = sine_dict()
    next(e for e in d["edges"] if e["to"] == "tm.context")["delay"] = 0  # a self loop (an edge problem)
    next(e for e in d["edges"] if e["to"] == "encoder.x")["from"] = "decoder.y"  # encoder ... decoder
    g = graph(d)
    with pytest.raises(GraphError) as first:
        resolve(g)
    a = analyse(g)
    assert str(a.errors[0]) == str(first.value)
    messages = [e.message for e in a.errors]
    assert len(messages) == 2
    assert messages[0] == "cycle tm -> tm has no 'delay: 1' edge to break it"
    assert messages[1].startswith("cycle ") and "tm" in messages[1] and "decoder" in messages[1]
    assert a.shapes[("decoder", "out", "y")] is None and a.shapes[("loss", "in", "pred")] is None


def test_six_unconnected_inputs_are_six_problems_worded_for_people():
    d = {"format_version": 1, "nodes": [
        {"id": "encoder", "type": "encoder.mlp"}, {"id": "sp", "type": "htm.sp"}, {"id": "tm", "type": "htm.tm"},
        {"id": "decoder", "type": "decoder.mlp"}, {"id": "loss", "type": "loss.mse"}], "edges": []}
    a = analyze(graph(d))
    expected = [(nid, p.name) for nid, t in [(n["id"], n["type"]) for n in d["nodes"]]
                for p in registry.get(t).inputs if not p.optional]
    assert len(expected) == 6
    assert [p.text for p in a.problems] == [f"input '{port}' of node '{nid}' is not connected" for nid, port in expected]
    assert [p.node for p in a.problems] == [nid for nid, _ in expected]
    assert not a.ok and not a.empty


def test_an_unconnected_loss_output_is_a_warning_and_training_is_allowed(tmp_path, capsys):
    d = sine_dict()
    drop_edge(d, "tm_loss.value")
    d["nodes"] = [n for n in d["nodes"] if n["id"] != "tm_loss"]
    a = analyse(graph(d))
    assert a.errors == [] and a.resolved is not None
    assert [(w.level, w.node, w.port, w.summary) for w in a.warnings] == [
        ("warning", "tm", "loss", "node 'tm': its 'loss' output is not connected, so it will not learn")]
    ed = analyze(graph(d))
    assert ed.ok and ed.problems == [] and [w.node for w in ed.warnings] == ["tm"]

    path = write(tmp_path, d)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out
    assert err == f"deephtm: warning: {path}: node 'tm': its 'loss' output is not connected, so it will not learn\n"


def test_a_loss_output_must_reach_a_loss_node():
    d = sine_dict()
    d["nodes"].append({"id": "watch", "type": "metric.anomaly", "params": {}})
    next(e for e in d["edges"] if e["to"] == "tm_loss.value")["to"] = "watch.anomaly"  # a scalar input
    d["nodes"] = [n for n in d["nodes"] if n["id"] != "tm_loss"]
    a = analyse(graph(d))
    assert a.errors == []
    assert [w.summary for w in a.warnings] == ["node 'tm': its 'loss' output reaches no loss node, so it will not learn"]


def test_loss_warnings_come_from_declarations_not_type_names():
    # every node type declaring a 'loss' output that is not itself a loss node is checked
    d = {"format_version": 1, "nodes": [], "edges": []}
    learners = [t for t, cls in sorted(registry.types().items())
                if not cls.is_loss and any(p.kind == "loss" for p in cls.outputs)]
    assert {"htm.tm", "htm.tm_segments"} <= set(learners)
    for i, t in enumerate(learners):
        d["nodes"].append({"id": f"n{i}", "type": t})
    warned = {w.node for w in analyse(graph(d)).warnings}
    assert warned == {f"n{i}" for i in range(len(learners))}


def test_the_cli_prints_the_first_error_only_and_no_warning(tmp_path, capsys):
    d = sine_dict()
    drop_edge(d, "tm_loss.value")  # a warning and an error (tm_loss.value unconnected)
    path = write(tmp_path, d)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"deephtm: error: {path}: node 'tm_loss': port 'value': input is not connected\n"


def test_an_empty_graph_is_empty_not_praised():
    a = analyze(graph({"format_version": 1, "nodes": [], "edges": []}))
    assert a.empty and a.problems == [] and a.warnings == []


def test_a_file_with_countless_problems_is_listed_up_to_a_limit():
    n = MAX_PROBLEMS + 50
    d = {"format_version": 1, "nodes": [{"id": f"n{i}", "type": "x.nonesuch"} for i in range(n)],
         "edges": [{"from": f"ghost{i}.y", "to": "n0.x"} for i in range(n)]}
    a = analyse(graph(d))
    assert [e.node for e in a.errors[:-1]] == [f"n{i}" for i in range(MAX_PROBLEMS)]
    assert a.errors[-1].message == f"stopped after {MAX_PROBLEMS} problems; fix these first"
    assert a.resolved is None


# ---- the first error is resolve()'s, whatever the graph ---------------------------

def _edit(d: dict, data) -> None:
    nodes, edges = d["nodes"], d["edges"]
    kind = data.draw(st.sampled_from(["param", "type", "drop", "rewire", "delay", "dup", "group", "id"]))
    if kind == "param":
        n = data.draw(st.sampled_from(nodes))
        params = [p.name for p in registry.get(n["type"]).params] if registry.get(n["type"]) else ["x"]
        n["params"][data.draw(st.sampled_from(params + ["nonesuch"]))] = data.draw(
            st.one_of(st.integers(-5, 10**7), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
                      st.booleans()))
    elif kind == "type":
        data.draw(st.sampled_from(nodes))["type"] = data.draw(st.sampled_from(sorted(registry.types()) + ["x.y"]))
    elif kind == "drop" and edges:
        edges.remove(data.draw(st.sampled_from(edges)))
    elif kind == "rewire" and edges:
        e = data.draw(st.sampled_from(edges))
        refs = [f"{n['id']}.{p}" for n in nodes for p in ("x", "y", "columns", "cells", "winners", "loss", "value",
                                                           "target", "pred", "context")] + ["ghost.y"]
        e[data.draw(st.sampled_from(["from", "to"]))] = data.draw(st.sampled_from(refs))
    elif kind == "delay" and edges:
        e = data.draw(st.sampled_from(edges))
        e["delay"] = 1 - e.get("delay", 0)
    elif kind == "dup" and edges:
        edges.append(dict(data.draw(st.sampled_from(edges))))
    elif kind == "group":
        d.setdefault("groups", []).append({"id": f"g{len(d.get('groups', []))}",
                                           "nodes": [data.draw(st.sampled_from([n["id"] for n in nodes] + ["nobody"]))]})
    elif kind == "id":
        data.draw(st.sampled_from(nodes))["id"] = data.draw(st.sampled_from([n["id"] for n in nodes]))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.data())
def test_first_error_is_the_one_resolve_raises(data):
    d = sine_dict()
    for _ in range(data.draw(st.integers(1, 4))):
        _edit(d, data)
    try:
        g = graph(d)
    except GraphError:
        return  # refused while parsing, before resolve
    try:
        r = resolve(g)
    except GraphError as exc:
        first, r = str(exc), None
    a = analyse(graph(d))
    if r is not None:
        assert a.errors == [] and a.resolved is not None and a.resolved.total_values == r.total_values
    else:
        assert a.errors and str(a.errors[0]) == first and a.resolved is None
    for e in a.problems:
        assert str(e).startswith(FILE + ": ") and "\n" not in str(e)
        assert e.node is None or e.node in {n["id"] for n in d["nodes"]}
        assert e.edge is None or f"{e.edge[0]}.{e.edge[1]}" in [x["from"] for x in d["edges"]]
