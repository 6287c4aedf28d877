"""Every class of user mistake gets one line naming the file and the node, port or param."""
import json
import subprocess
import sys

import pytest

from deephtm.cli import main
from deephtm.errors import GraphError, edge_where, node_where
from deephtm.graph.graphfile import load_graph
from deephtm.graph.resolve import resolve

from helpers import sine_dict, write


def node(d, node_id):
    return next(n for n in d["nodes"] if n["id"] == node_id)


def edge(d, to):
    return next(e for e in d["edges"] if e["to"] == to)


def mutate_unknown_type(d):
    node(d, "sp")["type"] = "htm.nonesuch"


def mutate_unknown_port(d):
    edge(d, "sp.x")["to"] = "sp.input"


def mutate_dangling_edge(d):
    d["edges"].append({"from": "ghost.y", "to": "decoder.x", "delay": 0})


def mutate_duplicate_edge(d):
    d["edges"].append(dict(edge(d, "sp.x")))


def mutate_missing_input(d):
    d["edges"].remove(edge(d, "tm.columns"))


def mutate_wrong_type(d):
    node(d, "sp")["params"]["columns"] = "many"


def mutate_out_of_range(d):
    node(d, "sp")["params"]["columns"] = 10**12


def mutate_unknown_param(d):
    node(d, "sp")["params"]["colums"] = 256


def mutate_shape_mismatch(d):
    # The TM's context must have columns * cells units; feed it the SP's columns instead.
    edge(d, "tm.context").update({"from": "sp.columns"})


def mutate_cycle(d):
    edge(d, "tm.context")["delay"] = 0


def mutate_long_cycle(d):
    # The decoder's prediction fed back into the encoder without a delay.
    edge(d, "encoder.x")["from"] = "decoder.y"


def mutate_format_version(d):
    d["format_version"] = 99


def mutate_output_as_input(d):
    edge(d, "sp.x")["from"] = "decoder.x"


CASES = [
    (mutate_unknown_type, "node 'sp'", "unknown node type 'htm.nonesuch'"),
    (mutate_unknown_port, "edge 'encoder.y -> sp.input'", "node 'sp' has no input port 'input'"),
    (mutate_dangling_edge, "edge 'ghost.y -> decoder.x'", "unknown node 'ghost'"),
    (mutate_duplicate_edge, "edge 'encoder.y -> sp.x'", "duplicate edge"),
    (mutate_missing_input, "node 'tm': port 'columns'", "input is not connected"),
    (mutate_wrong_type, "node 'sp': param 'columns'", "expected an integer, got 'many'"),
    (mutate_out_of_range, "node 'sp': param 'columns'", "is above the maximum"),
    (mutate_unknown_param, "node 'sp': param 'colums'", "unknown param"),
    (mutate_shape_mismatch, "node 'tm': port 'context'", "expected shape [1280], got [256]"),
    (mutate_cycle, "edge 'tm.winners -> tm.context'", "cycle tm -> tm has no 'delay: 1' edge"),
    (mutate_long_cycle, "node 'encoder'", "cycle encoder -> sp -> tm -> decoder -> encoder has no 'delay: 1'"),
    (mutate_format_version, "", "unknown format_version 99"),
    (mutate_output_as_input, "edge 'decoder.x -> sp.x'", "no output port 'x' (it is an input)"),
]


@pytest.mark.parametrize("mutate,where,message", CASES, ids=[c[0].__name__[7:] for c in CASES])
def test_error_names_file_and_location(tmp_path, capsys, mutate, where, message):
    d = sine_dict()
    mutate(d)
    path = write(tmp_path, d)
    with pytest.raises(GraphError) as info:
        resolve(load_graph(path))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path) + ": ")
    assert where in text and message in text, text

    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


# Where each mistake is, as fields: (node, param, port, edge).
PLACES = {
    "unknown_type": ("sp", None, None, None),
    "unknown_port": (None, None, None, ("encoder", "y", "sp", "input")),
    "dangling_edge": (None, None, None, ("ghost", "y", "decoder", "x")),
    "duplicate_edge": (None, None, None, ("encoder", "y", "sp", "x")),
    "missing_input": ("tm", None, "columns", None),
    "wrong_type": ("sp", "columns", None, None),
    "out_of_range": ("sp", "columns", None, None),
    "unknown_param": ("sp", "colums", None, None),
    "shape_mismatch": ("tm", None, "context", None),
    "cycle": (None, None, None, ("tm", "winners", "tm", "context")),
    "long_cycle": ("encoder", None, None, None),
    "format_version": (None, None, None, None),
    "output_as_input": (None, None, None, ("decoder", "x", "sp", "x")),
}


@pytest.mark.parametrize("mutate", [c[0] for c in CASES], ids=[c[0].__name__[7:] for c in CASES])
def test_error_carries_its_place_as_fields(tmp_path, mutate):
    d = sine_dict()
    mutate(d)
    path = write(tmp_path, d)
    with pytest.raises(GraphError) as info:
        resolve(load_graph(path))
    exc = info.value
    assert (exc.node, exc.param, exc.port, exc.edge) == PLACES[mutate.__name__[7:]]
    assert exc.file == str(path) and exc.group is None
    assert str(exc) == ": ".join(p for p in (str(path), exc.where, exc.message) if p)


def test_places_read_as_before_and_keep_their_fields():
    where = node_where("tm", port="columns")
    assert where == "node 'tm': port 'columns'" and (where.node, where.port, where.param) == ("tm", "columns", None)
    a = GraphError("input is not connected", where=where)
    b = GraphError("input is not connected", node="tm", port="columns")
    c = GraphError("input is not connected", where="node 'tm': port 'columns'")  # text only, as older code
    assert str(a) == str(b) == str(c) == "node 'tm': port 'columns': input is not connected"
    assert (a.node, a.port) == (b.node, b.port) == ("tm", "columns") and c.node is None
    e = GraphError("duplicate edge", where=edge_where("a", "y", "b", "x"), file="g.json")
    assert str(e) == "g.json: edge 'a.y -> b.x': duplicate edge" and e.edge == ("a", "y", "b", "x")
    assert e.summary == "edge 'a.y -> b.x': duplicate edge"  # without the file
    assert GraphError("m", where="training", summary="the training section: m").summary == "the training section: m"


@pytest.mark.parametrize("text,message", [
    ('{"format_version": 1, "nodes": [', "malformed JSON at line 1"),
    ('{"format_version": 1, "nodes": [], "edges": [}', "malformed JSON"),
    ("", "malformed JSON"),
    ('{"nodes": [], "edges": []}', "missing or non-integer 'format_version'"),
    ('[1, 2]', "must hold a JSON object"),
    ('{"format_version": 1, "nodes": [], "edges": [], "x": NaN}', "NaN is not valid JSON"),
])
def test_malformed_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GraphError, match=message):
        load_graph(path)


def test_truncated_file_is_refused(tmp_path):
    full = json.dumps(sine_dict())
    path = write(tmp_path, full[: len(full) // 2])
    with pytest.raises(GraphError, match="malformed JSON"):
        load_graph(path)


def test_cli_exits_2_without_traceback(tmp_path):
    d = sine_dict()
    mutate_out_of_range(d)
    path = write(tmp_path, d)
    proc = subprocess.run([sys.executable, "-m", "deephtm", "train", str(path), "--quiet", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "node 'sp': param 'columns'" in proc.stderr
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_missing_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.json"), "--quiet"]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_bad_cli_override_is_a_user_error(capsys):
    from helpers import SINE
    assert main(["train", str(SINE), "--steps", "-5", "--quiet"]) == 2
    assert "--steps" in capsys.readouterr().err
