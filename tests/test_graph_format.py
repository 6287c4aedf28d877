"""The graph file format: round trips, schema, migrations, atomic saves, layout keys."""
import json

import jsonschema
import pytest

from deephtm.graph import graphfile
from deephtm.graph.graphfile import Graph, load_graph, save_graph
from deephtm.graph.resolve import resolve
from deephtm.graph.schema import graph_schema

from helpers import ROOT, SINE, sine_dict, write


def test_load_save_load_is_identical(tmp_path):
    g1 = load_graph(SINE)
    save_graph(g1, tmp_path / "a.json")
    g2 = load_graph(tmp_path / "a.json")
    assert g1.to_dict() == g2.to_dict()
    save_graph(g2, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_example_graphs_match_the_generated_schema():
    schema = graph_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    files = sorted((ROOT / "graphs").glob("*.json"))
    assert SINE in files
    for path in files:
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_schema_rejects_what_the_loader_rejects():
    d = sine_dict()
    d["nodes"][2]["params"]["colums"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, graph_schema())


def test_ui_and_groups_do_not_change_the_model(tmp_path):
    d = sine_dict()
    d["ui"] = {"zoom": 2.0}
    d["groups"] = [{"id": "region1", "title": "Region 1", "nodes": ["sp", "tm"], "collapsed": True}]
    for n in d["nodes"]:
        n["ui"] = {"x": 1, "y": 2, "color": "red"}
    plain = resolve(load_graph(SINE))
    decorated = resolve(load_graph(write(tmp_path, d)))
    assert plain.order == decorated.order
    assert {k: v.out_shapes for k, v in plain.nodes.items()} == {k: v.out_shapes for k, v in decorated.nodes.items()}


def test_migrations_run_in_order(monkeypatch, tmp_path):
    # Pretend the current format is 3 and older files used other key names.
    monkeypatch.setattr(graphfile, "FORMAT_VERSION", 3)
    def rename(old, new):
        def migration(d):
            d[new] = d.pop(old)
            return d
        return migration
    monkeypatch.setattr(graphfile, "MIGRATIONS", {1: rename("blocks", "nodes"), 2: rename("links", "edges")})
    d = sine_dict()
    d["blocks"] = d.pop("nodes")
    d["links"] = d.pop("edges")
    g = load_graph(write(tmp_path, d))
    assert [n.id for n in g.nodes] == [n["id"] for n in sine_dict()["nodes"]]
    assert len(g.edges) == len(sine_dict()["edges"])
    assert g.to_dict()["format_version"] == 3


def test_newer_format_is_refused(tmp_path):
    d = sine_dict()
    d["format_version"] = graphfile.FORMAT_VERSION + 1
    with pytest.raises(graphfile.GraphError, match="unknown format_version"):
        load_graph(write(tmp_path, d))


def test_save_is_atomic_when_serialization_fails(tmp_path, monkeypatch):
    path = tmp_path / "g.json"
    save_graph(load_graph(SINE), path)
    before = path.read_bytes()

    def explode(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(graphfile.os, "fsync", explode)
    with pytest.raises(OSError):
        save_graph(Graph(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]  # no temp file left behind
