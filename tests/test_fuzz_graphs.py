"""Graph files from strangers: whatever the bytes, loading and resolving either succeeds or
raises one DeepHTMError whose text is one line naming the file, quickly, and nothing is
allocated. Most examples call load/resolve in-process; a few run the real CLI for exit codes."""
import copy
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deephtm.graph import registry
from deephtm.errors import DeepHTMError
from deephtm.graph.graphfile import dumps, load_graph, parse_text
from deephtm.graph.resolve import MAX_GRAPH_VALUES, resolve
from deephtm.graph.spec import PARAM_TYPES

from helpers import ROOT, SINE, sine_dict

TIME_LIMIT_S = 2.0
FILE = "fuzz.json"
EXAMPLES_REQUIRED = 2000
EVIL_TYPES = ["os.system", "os:system", "subprocess.Popen", "builtins:eval", "deephtm.train.trainer:Trainer",
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


# ---- named cases: values and files known to break loaders --------------------------------

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


# ---- graph files never name code to import ----------------------------------------

def test_graph_files_never_import_code(tmp_path, monkeypatch):
    """A type naming a module (even one that is importable right now) is just an unknown
    name: nothing is imported, and plugins come only from installed entry points."""
    import builtins
    import importlib

    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nNODE = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_registry", None)  # rediscover plugins with evil_module importable
    registry.types()
    imported = []
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def spy_import(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    def spy_import_module(name, package=None):
        imported.append(name)
        return real_import_module(name, package)

    monkeypatch.setattr(builtins, "__import__", spy_import)
    monkeypatch.setattr(importlib, "import_module", spy_import_module)
    for type_name in EVIL_TYPES + ["evil_module", "evil_module.NODE", "evil_module:NODE", "tests.evil_module",
                                   "deephtm.nodes.htm_sp", "deephtm.nodes.htm_sp:NODE", "htm_sp", "SpatialPooler"]:
        d = sine_dict()
        d["nodes"][2]["type"] = type_name
        d["nodes"][2]["params"] = {"module": "evil_module", "columns": "__import__('evil_module')"}
        assert "unknown node type" in outcome(encode(d)), type_name
    monkeypatch.undo()
    assert not marker.exists()
    assert "evil_module" not in sys.modules
    assert not [n for n in imported if "evil" in n or n.startswith(("os", "subprocess"))], imported


def test_cli_never_imports_a_type_named_in_a_graph(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nNODE = None\n")
    d = sine_dict()
    d["nodes"][2]["type"] = "evil_module:NODE"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "deephtm", "validate", str(path)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2 and "unknown node type 'evil_module:NODE'" in proc.stderr, proc.stderr
    assert not marker.exists()


# ---- every param declares limits; the budget covers what nodes allocate -------------

def test_every_numeric_param_of_every_node_type_declares_limits():
    """Walks the registry, so node types added later are held to the same rule."""
    from deephtm.graph.spec import MAX_STR_CHARS
    from deephtm.graph.training import TRAINING_PARAMS

    missing = []
    declared = [(name, p) for name, cls in sorted(registry.types().items()) for p in cls.params]
    declared += [("training", p) for p in TRAINING_PARAMS]
    assert len(declared) > 40
    for owner, p in declared:
        assert p.type in PARAM_TYPES, (owner, p.name)
        if p.type in ("int", "float"):
            if p.min is None or p.max is None or not (math.isfinite(p.min) and math.isfinite(p.max)):
                missing.append(f"{owner}.{p.name}")
            else:
                assert p.min <= p.default <= p.max, (owner, p.name)
        elif p.type == "str":
            assert len(p.default) <= MAX_STR_CHARS
    assert not missing, f"numeric params without finite min and max: {missing}"


SHAPES = [None, (1,), (2,), (3,), (7,), (16,), (2, 3), (2, 2, 2), (1, 8, 8), ()]


def _small_params(cls, rng):
    p = {}
    for prm in cls.params:
        if prm.type == "int":
            lo = int(prm.min)
            choices = list(range(lo, min(int(prm.max), lo + 12) + 1))
            if prm.default <= 300:
                choices.append(prm.default)
            p[prm.name] = rng.choice(choices)
        elif prm.type == "float":
            p[prm.name] = rng.choice([prm.default, rng.uniform(prm.min, prm.max), prm.min, prm.max])
        elif prm.type == "bool":
            p[prm.name] = rng.choice([True, False])
        else:
            p[prm.name] = rng.choice(prm.choices) if prm.choices else prm.default
    return p


# Known param_count bugs in node modules, marked here until the node is fixed; strict: once
# fixed, the marker must go. Each entry names the fix.
PARAM_COUNT_BUGS: dict[str, str] = {}  # (metric.nrmse's missing step counter: fixed in 7b7edcd)


def _node_type_cases():
    for name in sorted(registry.types()):
        marks = [pytest.mark.xfail(reason=PARAM_COUNT_BUGS[name], strict=True)] if name in PARAM_COUNT_BUGS else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("type_name", list(_node_type_cases()))
def test_param_count_bounds_what_the_node_type_allocates(type_name, tmp_path):
    """Built with small params and input shapes that infer() accepts, a node never holds
    more weights and buffers than param_count says (after setup() for one stream, at most
    that stream's outputs more): the budget checked before allocation cannot be bypassed."""
    import random

    cls = registry.get(type_name)
    rng = random.Random(8)
    built = 0
    for _ in range(200):
        if built >= 8:
            break
        p = _small_params(cls, rng)
        shapes_to_try = SHAPES[1:] + [(v,) for v in p.values() if type(v) is int and 0 < v <= 64]
        optional = {port.name for port in cls.inputs if port.optional}

        def draw(port):
            return None if port in optional and rng.random() < 0.5 else rng.choice(shapes_to_try)

        shapes = {port.name: draw(port.name) for port in cls.inputs}
        out = None
        for _ in range(40):  # re-draw the shape of whichever input infer() objects to
            try:
                out = cls.infer(p, shapes)
                break
            except DeepHTMError as exc:
                port = re.search(r"port '([^']+)'", exc.where or "")
                if not port or port.group(1) not in shapes:
                    break
                shapes[port.group(1)] = draw(port.group(1))
        if out is None:
            continue
        try:
            node = cls(p, shapes)
        except DeepHTMError:
            continue
        # Weights, plus the state kept for each stream (setup() below builds one stream).
        bound = int(cls.param_count(p, shapes)) + int(cls.stream_state_count(p, shapes))
        allocated = sum(t.numel() for t in node.parameters()) + sum(t.numel() for t in node.buffers())
        assert allocated <= bound, f"{type_name} with {p} and {shapes}: allocates {allocated} > {bound}"
        node.node_id, node.base_dir = "n", tmp_path
        try:
            if built < 1:  # setup() can be slow (a classifier, a data set): once is enough
                node.setup(1, torch.Generator().manual_seed(0))
        except DeepHTMError:  # e.g. a CSV source without its file
            pass
        else:
            one_stream = sum(math.prod(s) for s in out.values())
            allocated = sum(t.numel() for t in node.parameters()) + sum(t.numel() for t in node.buffers())
            assert allocated <= bound + one_stream, f"{type_name} after setup: {allocated} > {bound} + {one_stream}"
        built += 1
    assert built >= 3, f"{type_name}: could not build it with small params; extend SHAPES"


def test_budget_covers_every_example_graph():
    """The budget resolve() checks covers what building the example graphs allocates."""
    from deephtm.train.compile import GraphModule

    checked = 0
    for path in sorted((ROOT / "graphs").glob("*.json")):
        r = resolve(load_graph(path))
        model = GraphModule(r)
        for nid, node in model.nodes.items():
            rn = r.nodes[nid]
            if rn.cls.type_name in PARAM_COUNT_BUGS:
                continue
            allocated = sum(t.numel() for t in node.parameters()) + sum(t.numel() for t in node.buffers())
            batch = r.graph.training.batch_size
            bound = rn.cls.param_count(rn.params, rn.in_shapes) + rn.cls.stream_state_count(rn.params, rn.in_shapes) * batch
            assert allocated <= bound, (path.name, nid)
            checked += 1
    assert checked >= 8


def test_over_budget_graph_is_refused_before_any_node_is_built(monkeypatch):
    from deephtm.node import Node
    from deephtm.train.trainer import Trainer

    built = []
    monkeypatch.setattr(Node, "__init__", lambda self, *a, **k: built.append(self) or None)
    for change in ({"encoder": {"hidden": 65536}, "sp": {"columns": 65536}},
                   {"tm": {"cells_per_column": 256}, "sp": {"columns": 4096, "winners": 5}},
                   {"training": {"batch_size": 65536}},
                   {"training": {"batch_size": 4096, "mode": "tbptt", "bptt": 64}}):
        d = sine_dict()
        for n in d["nodes"]:
            n["params"].update(change.get(n["id"], {}))
        d["training"].update(change.get("training", {}))
        result = outcome(encode(d))
        assert "would allocate over" in result, result
        g = parse_text(encode(d), FILE)
        with pytest.raises(DeepHTMError):
            Trainer(g)
    assert not built


# ---- the real CLI, a handful of times -------------------------------------------

def run_measured(args, env=None, timeout=120):
    """Run a command; return (exit code, stdout, stderr, CPU seconds, peak memory in bytes).
    CPU time, not wall time: on a loaded machine the wall clock measures the neighbours."""
    import tempfile
    import threading

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        finally:
            killer.cancel()
        assert time.perf_counter() - t0 < timeout, "hung"
        elapsed = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(), err.read().decode("utf-8", "replace"), elapsed,
                usage.ru_maxrss * 1024)


def _bad_files(tmp_path) -> list[Path]:
    cases = {
        "malformed.json": b'{"format_version": 1, "nodes": [',
        "not_utf8.json": b'{"format_version": 1, "name": "\xff\xfe"}',
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "ten_mb.json": ten_mb_file("many nodes"),
        "huge_columns.json": _sine_with(("sp", "columns"), 10**12).encode(),
        "huge_digits.json": _sine_with(("sp", "columns"), Raw("9" * 5000)).encode(),
        "nan.json": _sine_with(("sine", "amplitude"), Raw("NaN")).encode(),
        "inf.json": _sine_with(("sine", "amplitude"), Raw("1e999")).encode(),
        "newline_type.json": encode(dict(sine_dict(), nodes=[{"id": "a", "type": "x\n\x1b[2Jy"}])).encode(),
        "evil_type.json": encode(dict(sine_dict(), nodes=[{"id": "a", "type": "os:system"}])).encode(),
        "duplicate_ids.json": encode(dict(sine_dict(), nodes=sine_dict()["nodes"] * 2)).encode(),
        "self_loop.json": encode(dict(sine_dict(), edges=sine_dict()["edges"] + [
            {"from": "encoder.y", "to": "encoder.x", "delay": 0}])).encode(),
        "over_budget.json": encode(dict(sine_dict(), nodes=[
            dict(n, params={"hidden": 65536}) if n["id"] == "encoder" else
            dict(n, params={"columns": 65536}) if n["id"] == "sp" else n for n in sine_dict()["nodes"]])).encode(),
        "group_cycle.json": encode(dict(sine_dict(), groups=[{"id": "g", "nodes": ["h"]}, {"id": "h", "nodes": ["g"]}])).encode(),
    }
    paths = []
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_cli_validate_every_bad_file_one_line_each(tmp_path):
    paths = _bad_files(tmp_path)
    _, _, _, reference_s, _ = run_measured([sys.executable, "-c", "import deephtm.graph.resolve"])
    timings = {}
    for path in paths:  # one process per file: each answer is timed on its own
        rc, out, err, seconds, peak = run_measured([sys.executable, "-m", "deephtm", "validate", str(path)])
        assert rc == 2, (path.name, rc, err)
        assert "Traceback" not in err and out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"deephtm: error: {path}: "), (path.name, err)
        # Within 2 s (CPU) of the Python + torch start-up every command pays (measured just now).
        assert seconds - reference_s < TIME_LIMIT_S, (path.name, seconds, reference_s)
        timings[path.name] = round(seconds - reference_s, 2)
        assert peak < 2**30, (path.name, peak)
    print(f"CPU seconds beyond start-up ({reference_s:.2f} s): {timings}")


@pytest.mark.parametrize("name", ["malformed.json", "huge_columns.json", "over_budget.json"])
def test_cli_train_bad_file_exits_2_without_allocating(tmp_path, name):
    path = next(p for p in _bad_files(tmp_path) if p.name == name)
    rc, out, err, seconds, peak = run_measured([sys.executable, "-m", "deephtm", "train", str(path), "--quiet",
                                                "--out", str(tmp_path / "run")])
    assert rc == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("deephtm: error: "), err
    assert peak < 2**30, peak
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_cli_train_refuses_a_batch_that_would_not_fit(tmp_path):
    rc, out, err, seconds, peak = run_measured([sys.executable, "-m", "deephtm", "train", str(SINE), "--quiet",
                                                "--batch-size", "65536", "--out", str(tmp_path / "run")])
    assert rc == 2 and "batch_size 65536" in err and len(err.splitlines()) == 1, err
    assert peak < 2**30, peak
