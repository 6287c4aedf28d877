"""Graph files from strangers: whatever the bytes, loading and resolving either succeeds or
raises one DeepHTMError whose text is one line naming the file, quickly, and nothing is
allocated. Most examples call load/resolve in-process; a few run the real CLI for exit codes."""
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deephtm import registry
from deephtm.errors import DeepHTMError
from deephtm.graphfile import Graph, dumps, load_graph, parse_text
from deephtm.resolve import MAX_GRAPH_VALUES, resolve
from deephtm.spec import PARAM_TYPES

from helpers import ROOT, SINE, sine_dict

TIME_LIMIT_S = 2.0
FILE = "fuzz.json"
EXAMPLES_REQUIRED = 2000
EVIL_TYPES = ["os.system", "os:system", "subprocess.Popen", "builtins:eval", "deephtm.trainer:Trainer",
              "importlib.import_module", "__import__", "evil_module:NODE"]
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)

examples_run = {"count": 0, "tests": set()}


def outcome(data: bytes | str, name: str = FILE) -> str:
    """Load and resolve one file's content; returns 'ok' or the error line. Anything other
    than success or a DeepHTMError fails the test, as does a slow answer."""
    t0 = time.perf_counter()
    try:
        r = resolve(parse_text(data, name))
    except DeepHTMError as exc:
        text = str(exc)
        assert text and len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text, repr(text)
        assert text.startswith(name + ": "), text  # names the file
        assert len(text) < 2000, text[:200]
        result = text
    else:
        assert 0 <= r.total_values <= MAX_GRAPH_VALUES
        # A graph that resolves can be written and read back unchanged.
        again = parse_text(dumps(r.graph), name)
        assert again.to_dict() == r.graph.to_dict()
        result = "ok"
    elapsed = time.perf_counter() - t0
    assert elapsed < TIME_LIMIT_S, f"{elapsed:.2f} s for one file"
    return result


def fuzzed(test_name: str) -> None:
    examples_run["tests"].add(test_name)
    examples_run["count"] += 1


# ---- building blocks ---------------------------------------------------------

def all_types():
    return sorted(registry.types())


def ports_of(type_name, direction):
    cls = registry.get(type_name)
    if cls is None:
        return []
    return [p.name for p in (cls.inputs if direction == "in" else cls.outputs)]


RAW_NUMBERS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5000,
               "-" + "9" * 4301, "1e-999", "0.0", "-0", "1E400", "123456789012345678901234567890"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-2**80, max_value=2**80),
    st.sampled_from([0, 1, -1, 2, 10**12, 10**100, 2**31, 2**63, 65536, 65537, 1e308, -1e308, 0.5, 1e-300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "a\nb", "\x1b[31mred", "\u2028", "\ud800", "x" * 5000, "../../etc/passwd", "\x00"]),
)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                           max_leaves=12)


class Raw:
    """Text placed into the JSON verbatim: NaN, 1e999, 5000-digit integers, deep nesting."""
    def __init__(self, text):
        self.text = text


def encode(d) -> str:
    """json.dumps that writes Raw values verbatim."""
    raws = []

    def swap(x):
        if isinstance(x, Raw):
            raws.append(x.text)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(x, dict):
            return {k: swap(v) for k, v in x.items()}
        if isinstance(x, list):
            return [swap(v) for v in x]
        return x

    text = json.dumps(swap(d))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw, 1)
    return text


def nested(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a": ' * depth + "1" + "}" * depth)


# Mostly plain values, sometimes text no encoder writes (NaN, 1e999, huge integers, deep nesting).
VALUES = st.one_of(scalars, json_values,
                   st.one_of(st.sampled_from(RAW_NUMBERS).map(Raw),
                             st.builds(nested, st.integers(1, 3000), st.sampled_from(["list", "dict"]))))


@st.composite
def mutated_graph(draw):
    """A valid graph (the seed network, sometimes shrunk), then 1-4 random mutations."""
    d = sine_dict()
    if draw(st.booleans()):
        for n in d["nodes"]:
            if n["type"] == "htm.sp":
                n["params"].update(columns=32, winners=4)
    ids = [n["id"] for n in d["nodes"]]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["param", "param_known", "node_field", "del_node_key", "dup_node",
                                   "edge", "self_loop", "del_edge", "edge_field", "training", "top",
                                   "group", "nest", "format_version", "remove_node"]))
        if not d.get("nodes") or not isinstance(d["nodes"], list):
            d["nodes"] = [{"id": "a", "type": draw(st.sampled_from(all_types()))}]
        node = d["nodes"][draw(st.integers(0, len(d["nodes"]) - 1))]
        if not isinstance(node, dict):
            continue
        node_type = node.get("type") if isinstance(node.get("type"), str) else ""
        cls = registry.get(node_type)
        if op == "param":
            node.setdefault("params", {})
            if isinstance(node["params"], dict):
                name = draw(st.sampled_from([p.name for p in cls.params] if cls and cls.params else ["x"]) | st.text(max_size=8))
                node["params"][name] = draw(VALUES)
        elif op == "param_known" and cls is not None and cls.params:
            # A declared param, set to something of the wrong size or type.
            p = draw(st.sampled_from(cls.params))
            if p.type in ("int", "float"):
                # In range (valid, maybe too big for the budget), at the limits, or beyond.
                lo, hi = p.min if p.min is not None else -10**6, p.max if p.max is not None else 10**6
                in_range = st.integers(math.ceil(lo), math.floor(hi)) if p.type == "int" else st.floats(lo, hi)
                v = draw(st.one_of(in_range, in_range, st.sampled_from([lo, hi, 10**12, -1, 0, 2**64]),
                                   st.integers(-10**15, 10**15), st.floats(), st.sampled_from(RAW_NUMBERS).map(Raw)))
            else:
                v = draw(VALUES)
            if isinstance(node.get("params"), dict):
                node["params"][p.name] = v
        elif op == "node_field":
            key = draw(st.sampled_from(["id", "type", "params", "ui"]))
            node[key] = draw(st.one_of(VALUES, st.sampled_from(all_types() + EVIL_TYPES + ids)))
        elif op == "del_node_key":
            node.pop(draw(st.sampled_from(["id", "type", "params", "ui"])), None)
        elif op == "dup_node":
            d["nodes"].append(copy.deepcopy(node))
        elif op == "remove_node":
            d["nodes"].remove(node)
        elif op in ("edge", "self_loop"):
            src = node if op == "self_loop" else draw(st.sampled_from(d["nodes"]))
            dst = node if op == "self_loop" else draw(st.sampled_from(d["nodes"]))
            if not (isinstance(src, dict) and isinstance(dst, dict)):
                continue
            s_type = src.get("type") if isinstance(src.get("type"), str) else ""
            d_type = dst.get("type") if isinstance(dst.get("type"), str) else ""
            sp = draw(st.sampled_from(ports_of(s_type, "out") or ["y"]) | st.text(max_size=4))
            dp = draw(st.sampled_from(ports_of(d_type, "in") or ["x"]) | st.text(max_size=4))
            e = {"from": f"{src.get('id')}.{sp}", "to": f"{dst.get('id')}.{dp}",
                 "delay": draw(st.sampled_from([0, 1]) | VALUES)}
            if isinstance(d.get("edges"), list):
                if draw(st.booleans()):
                    # Rewire an existing input instead of adding a second feed.
                    d["edges"] = [x for x in d["edges"] if not (isinstance(x, dict) and x.get("to") == e["to"])]
                d["edges"].append(e)
        elif op == "del_edge" and isinstance(d.get("edges"), list) and d["edges"]:
            d["edges"].pop(draw(st.integers(0, len(d["edges"]) - 1)))
        elif op == "edge_field" and isinstance(d.get("edges"), list) and d["edges"]:
            e = d["edges"][draw(st.integers(0, len(d["edges"]) - 1))]
            if isinstance(e, dict):
                e[draw(st.sampled_from(["from", "to", "delay", "extra"]))] = draw(VALUES)
        elif op == "training":
            d.setdefault("training", {})
            if isinstance(d["training"], dict):
                key = draw(st.sampled_from(["steps", "lr", "batch_size", "seed", "bptt", "mode", "device",
                                            "checkpoint_every", "log_every", "bogus"]))
                d["training"][key] = draw(VALUES)
        elif op == "top":
            key = draw(st.sampled_from(["nodes", "edges", "groups", "training", "ui", "name", "description", "extra"]))
            if draw(st.booleans()):
                d.pop(key, None)
            else:
                d[key] = draw(VALUES)
        elif op == "group":
            gid = draw(st.sampled_from(["g", "h"] + ids) | st.text(max_size=4))
            members = draw(st.lists(st.sampled_from(ids + ["g", "h", "ghost"]) | st.text(max_size=3), max_size=4))
            if not isinstance(d.get("groups"), list):
                d["groups"] = []
            d["groups"].append({"id": gid, "nodes": members, "collapsed": draw(st.booleans())})
        elif op == "nest":
            where = draw(st.sampled_from(["ui", "node_ui", "param", "group"]))
            deep = nested(draw(st.integers(50, 3000)), draw(st.sampled_from(["list", "dict"])))
            if where == "ui":
                d["ui"] = {"view": deep}
            elif where == "node_ui":
                node["ui"] = {"x": deep}
            elif where == "param" and isinstance(node.get("params"), dict):
                node["params"]["columns"] = deep
            else:
                d["groups"] = [{"id": "g", "nodes": [], "extra": deep}]
        elif op == "format_version":
            d["format_version"] = draw(st.sampled_from([0, 2, -1, 1.0, "1", None, True, 10**30]) | VALUES)
    return encode(d)


@st.composite
def graph_shaped(draw):
    """Random JSON in the shape of a graph file, so most of it passes the first checks."""
    types = all_types()
    n = draw(st.integers(0, 6))
    names = st.sampled_from(["a", "b", "c", "sp", "tm"])
    good = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
    ids = draw(st.lists(st.one_of(names, names, names, good, good, st.text(max_size=5)), min_size=n, max_size=n))
    nodes = []
    for nid in ids:
        t = draw(st.sampled_from(types + EVIL_TYPES))
        cls = registry.get(t)
        names = [p.name for p in cls.params] if cls and cls.params else ["x"]
        nodes.append({"id": nid, "type": t,
                      "params": draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=3))})
    refs = []
    for node in nodes:
        for direction in ("in", "out"):
            refs += [(direction, f"{node['id']}.{p}") for p in ports_of(node["type"], direction)]
    outs = [r for d_, r in refs if d_ == "out"] or ["a.y"]
    ins = [r for d_, r in refs if d_ == "in"] or ["b.x"]
    edges = draw(st.lists(st.fixed_dictionaries(
        {"from": st.sampled_from(outs), "to": st.sampled_from(ins)},
        optional={"delay": st.sampled_from([0, 1, 2, True, None, 0.0])}), max_size=8))
    d = {"format_version": 1, "nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        d["training"] = draw(st.dictionaries(st.sampled_from(["steps", "lr", "batch_size", "mode", "bptt"]), VALUES, max_size=2))
    return encode(d)


# ---- hypothesis: 2,000+ examples in all ----------------------------------------

@settings(max_examples=900, **SETTINGS)
@given(mutated_graph())
def test_mutated_graphs(text):
    fuzzed("test_mutated_graphs")
    outcome(text)


@settings(max_examples=400, **SETTINGS)
@given(graph_shaped())
def test_graph_shaped_random_json(text):
    fuzzed("test_graph_shaped_random_json")
    outcome(text)


@settings(max_examples=300, **SETTINGS)
@given(json_values)
def test_random_json(value):
    fuzzed("test_random_json")
    outcome(json.dumps(value))


@settings(max_examples=250, **SETTINGS)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    fuzzed("test_random_bytes")
    outcome(data)


@settings(max_examples=250, **SETTINGS)
@given(st.data())
def test_corrupted_seed_file_bytes(data):
    fuzzed("test_corrupted_seed_file_bytes")
    raw = bytearray(SINE.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf",
                                                  b"[", b"{", b"}", b",", b"\"", b"\\", b"NaN"]))
        elif op == "delete" and raw:
            del raw[i]
    outcome(bytes(raw))


# ---- named cases from the issue --------------------------------------------------

def _sine_with(path, value):
    d = sine_dict()
    node_id, param = path
    next(n for n in d["nodes"] if n["id"] == node_id)["params"][param] = value
    return encode(d)


@pytest.mark.parametrize("value", [10**12, 10**100, Raw("1" + "0" * 5000), Raw("-" + "9" * 4400), 2**63, -1,
                                   Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"), 1e300, 10**7 + 0.5,
                                   "256", None, [256], {"v": 256}, True])
@pytest.mark.parametrize("path", [("sp", "columns"), ("sp", "winners"), ("tm", "cells_per_column"),
                                  ("encoder", "hidden"), ("decoder", "layers"), ("sine", "step_size"),
                                  ("sine", "amplitude"), ("nrmse", "window"), ("loss", "weight")])
def test_out_of_range_and_non_finite_params(path, value):
    result = outcome(_sine_with(path, value))
    assert result != "ok", (path, value)
    assert f"node '{path[0]}': param '{path[1]}'" in result or "not valid JSON" in result or "JSON" in result, result


@pytest.mark.parametrize("key", ["lr", "steps", "batch_size", "seed", "bptt", "grad_clip", "log_every"])
@pytest.mark.parametrize("value", [Raw("1e999"), Raw("NaN"), 10**12 * 10**12, Raw("1" + "0" * 5000), -1, "x"])
def test_out_of_range_training_values(key, value):
    d = sine_dict()
    d["training"][key] = value
    result = outcome(encode(d))
    assert result != "ok"


@pytest.mark.parametrize("depth", [65, 200, 999, 1000, 5000, 100_000])
@pytest.mark.parametrize("where", ["top", "ui", "node_ui", "param", "group", "training"])
def test_deep_nesting(depth, where):
    d = sine_dict()
    deep = nested(depth, "list" if depth % 2 else "dict")
    if where == "top":
        text = deep.text
    else:
        if where == "ui":
            d["ui"] = {"view": deep}
        elif where == "node_ui":
            d["nodes"][0]["ui"] = {"x": deep}
        elif where == "param":
            d["nodes"][2]["params"]["columns"] = deep
        elif where == "group":
            d["groups"] = [{"id": "g", "nodes": ["sp"], "style": deep}]
        else:
            d["training"]["lr"] = deep
        text = encode(d)
    result = outcome(text)
    assert result != "ok"
    assert "nested" in result or where in ("param", "training"), result


BIG_KINDS = ["many nodes", "many edges", "many groups", "wide ui", "long description", "long type name",
             "long key", "numbers", "many keys", "whitespace", "over the size limit"]


def ten_mb_file(kind: str) -> bytes:
    n = 10 * 1024 * 1024
    d = sine_dict()
    make = {
        "many nodes": lambda: json.dumps(dict(d, nodes=d["nodes"] + [{"id": f"n{i}", "type": "source.sine"}
                                                                     for i in range(250_000)])),
        "many edges": lambda: json.dumps(dict(d, edges=d["edges"] * 19_000)),
        "many groups": lambda: json.dumps(dict(d, groups=[{"id": f"g{i}", "nodes": ["sp"]} for i in range(300_000)])),
        "wide ui": lambda: json.dumps(dict(d, ui={"items": [{}] * (n // 4)})),
        "long description": lambda: json.dumps(dict(d, description="x" * n)),
        "long type name": lambda: json.dumps(dict(d, nodes=[{"id": "a", "type": "y" * n}])),
        "long key": lambda: '{"format_version": 1, "' + "k" * n + '": 1}',
        "numbers": lambda: "[" + "1.5," * (n // 4) + "0]",
        "many keys": lambda: "{" + ",".join(f'"{i}": 0' for i in range(n // 12)) + "}",
        "whitespace": lambda: " " * n + "{}",
        "over the size limit": lambda: " " * (17 * 1024 * 1024) + "{}",
    }
    return make[kind]().encode()


@pytest.mark.parametrize("kind", BIG_KINDS)
def test_ten_megabyte_files(kind, tmp_path):
    data = ten_mb_file(kind)
    assert len(data) >= 10_000_000, len(data)
    assert outcome(data) != "ok"
    path = tmp_path / "big.json"
    path.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(DeepHTMError) as info:
        resolve(load_graph(path))
    assert time.perf_counter() - t0 < TIME_LIMIT_S
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize("data", [
    b"\xff\xfe{\x00}\x00", "{}".encode("utf-16"), b"\xef\xbb\xbf{}", b"", b"   ", b"null", b"\x00" * 100,
    b'{"format_version": 1, "name": "\xc3\x28"}', b'{"format_version": 1, "nodes": [], "edges": [], "name": "\xed\xa0\x80"}',
    '{"format_version": 1, "nodes": [{"id": "\\ud800", "type": "htm.sp"}], "edges": []}'.encode(),
])
def test_non_utf8_and_odd_encodings(data):
    assert outcome(data) != "ok"


def test_duplicate_ids():
    d = sine_dict()
    d["nodes"].append(dict(d["nodes"][2]))
    assert "duplicate node id" in outcome(encode(d))
    d = sine_dict()
    d["groups"] = [{"id": "g", "nodes": []}, {"id": "g", "nodes": []}]
    assert "duplicate group id" in outcome(encode(d))
    # Duplicate keys in one object: the last wins in JSON, so the file must still resolve or fail cleanly.
    text = SINE.read_text().replace('"name": "sine"', '"name": "sine", "name": 5')
    assert "name" in outcome(text)


def _self_loop_cases():
    for t in all_types():
        cls = registry.get(t)
        for out in cls.outputs:
            for inp in cls.inputs:
                for delay in (0, 1):
                    yield t, out.name, inp.name, delay


@pytest.mark.parametrize("type_name,out_port,in_port,delay", list(_self_loop_cases()))
def test_self_loops_on_every_node_type(type_name, out_port, in_port, delay):
    d = {"format_version": 1, "nodes": [{"id": "n", "type": type_name}],
         "edges": [{"from": f"n.{out_port}", "to": f"n.{in_port}", "delay": delay}]}
    result = outcome(json.dumps(d))
    if delay == 0:
        assert "cycle n -> n" in result or "cannot feed" in result, result


def test_groups_cannot_contain_themselves():
    d = sine_dict()
    d["groups"] = [{"id": "g", "nodes": ["g", "sp"]}]
    assert "group 'g'" in outcome(encode(d))
    d["groups"] = [{"id": "g", "nodes": ["h"]}, {"id": "h", "nodes": ["g"]}]
    assert "group" in outcome(encode(d))


def test_control_characters_in_names_stay_on_one_line():
    for bad in ["a\nb", "a\rb", "\x1b[2J", "a\u2028b", "a\x85b", "sine\n"]:
        d = sine_dict()
        d["nodes"][0]["type"] = bad
        outcome(encode(d))
        d = sine_dict()
        d["nodes"][0]["id"] = bad
        assert outcome(encode(d)) != "ok"
        d = sine_dict()
        d["nodes"][0]["params"][bad] = 1
        outcome(encode(d))
        d = sine_dict()
        d["edges"][0]["from"] = "sine." + bad
        outcome(encode(d))
        d = sine_dict()
        d[bad] = 1
        outcome(encode(d))


@pytest.mark.parametrize("type_name", EVIL_TYPES)
def test_types_naming_code_are_unknown(type_name):
    d = sine_dict()
    d["nodes"][2]["type"] = type_name
    assert "unknown node type" in outcome(encode(d))


def test_fuzzed_enough_examples():
    """Runs last in this file: the hypothesis tests above ran at least 2,000 examples."""
    fuzz_tests = {"test_mutated_graphs", "test_graph_shaped_random_json", "test_random_json",
                  "test_random_bytes", "test_corrupted_seed_file_bytes"}
    if not fuzz_tests <= examples_run["tests"]:
        pytest.skip("only part of this file was selected")
    assert examples_run["count"] >= EXAMPLES_REQUIRED, examples_run["count"]
