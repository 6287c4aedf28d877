"""Editor state stays valid: random sequences of 1,000 edits (add, connect, delete, group,
ungroup, rename, params, move, paste, undo, redo) through the editor's own edit builders
and undo stack keep the document a well-formed graph, and undoing everything returns
exactly to the start (redoing everything, exactly to the end)."""
import os
import random
import time

import networkx as nx
import pytest

from app import edits, grouping
from app.commands import push
from app.document import Document, new_graph
from deephtm.graph import registry
from deephtm.errors import DeepHTMError
from deephtm.graph.graphfile import dumps, load_graph, parse_text
from deephtm.graph.resolve import resolve
from deephtm.graph.spec import kind_accepts

from helpers import SINE

EDITS = 1000
# resolve() may say a graph under construction is incomplete, never that it is malformed.
MALFORMED = ("duplicate", "unknown node '", "already fed", "has no 'delay: 1'", "contains itself", "nest more",
             "unknown member", "has no input port", "has no output port", "cannot feed")


def assert_valid(doc: Document, where: str) -> None:
    g = doc.graph
    d = g.to_dict()
    # The engine's own file rules: what the editor holds can be saved and read back unchanged.
    again = parse_text(dumps(g), "doc.json")
    assert again.to_dict() == d, where
    node_ids = [n.id for n in g.nodes]
    group_ids = [x["id"] for x in g.groups]
    assert len(set(node_ids)) == len(node_ids), where
    assert len(set(group_ids)) == len(group_ids) and not set(group_ids) & set(node_ids), where
    fed, dag = set(), nx.DiGraph()
    for e in g.edges:
        src, dst = g.node(e.src), g.node(e.dst)
        assert src is not None and dst is not None, (where, e)
        out_port = registry.get(src.type).port(e.src_port, "out")
        in_port = registry.get(dst.type).port(e.dst_port, "in")
        assert out_port is not None and in_port is not None, (where, e)
        assert kind_accepts(in_port.kind, out_port.kind), (where, e)
        assert (e.dst, e.dst_port) not in fed, (where, "input fed twice", e)
        fed.add((e.dst, e.dst_port))
        if e.delay == 0:
            dag.add_edge(e.src, e.dst)
    assert nx.is_directed_acyclic_graph(dag), (where, "undelayed cycle")
    members = [m for x in g.groups for m in x["nodes"]]
    assert len(set(members)) == len(members), (where, "a member in two groups")
    assert set(members) <= set(node_ids) | set(group_ids), where
    try:
        resolve(g)
    except DeepHTMError as exc:
        assert not any(word in str(exc) for word in MALFORMED), (where, str(exc))


def random_edit(doc: Document, rng: random.Random, types: list[str]) -> tuple[str, list]:
    g = doc.graph
    nodes = [n.id for n in g.nodes]
    kind = rng.choices(["add", "connect", "delete", "delete_edge", "group", "ungroup", "rename", "param",
                        "move", "paste", "delay"],
                       weights=[14, 22, 6, 5, 8, 4, 4, 6, 4, 4, 3])[0]
    if kind == "add" or not nodes:
        ops, _ = edits.add_node_ops(doc, rng.choice(types), rng.uniform(-500, 500), rng.uniform(-500, 500))
        return "add", ops
    if kind == "connect":
        for _ in range(20):
            src, dst = rng.choice(nodes), rng.choice(nodes)
            outs, ins = doc.ports(src)[1], doc.ports(dst)[0]
            if not outs or not ins:
                continue
            sp, dp = rng.choice(outs).name, rng.choice(ins).name
            if edits.connection_problem(doc, src, sp, dst, dp) is None:
                return "connect", edits.connect_ops(doc, src, sp, dst, dp)[0]
        return "connect", []
    if kind == "delete":
        return "delete", edits.delete_ops(doc, rng.sample(nodes, min(len(nodes), rng.choice([1, 1, 2]))))
    if kind == "delete_edge" and g.edges:
        e = rng.choice(g.edges)
        return "delete_edge", edits.delete_ops(doc, [], [(e.src, e.src_port, e.dst, e.dst_port)])
    if kind == "group":
        pool = nodes + [x["id"] for x in g.groups]
        members = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
        return "group", grouping.group_ops(doc, members, rng.choice(["Region", "Layer 2", "", "a/b"]))[0]
    if kind == "ungroup" and g.groups:
        return "ungroup", grouping.ungroup_ops(doc, rng.choice(g.groups)["id"])
    if kind == "rename":
        old = rng.choice(nodes)
        new = rng.choice(["x", "layer_2", "sp", "tm", old + "_b", "bad id", "9x"])
        if edits.rename_problem(doc, old, new) is None and new != old:
            return "rename", [("rename", old, new)]
        return "rename", []
    if kind == "param":
        spec = g.node(rng.choice(nodes))
        cls = registry.get(spec.type)
        numeric = [p for p in cls.params if p.type == "int"]
        if numeric:
            p = rng.choice(numeric)
            value = rng.randint(int(p.min), int(min(p.max, p.min + 20)))
            return "param", edits.set_param_ops(doc, spec.id, p.name, value)
        return "param", []
    if kind == "move":
        chosen = rng.sample(nodes, min(len(nodes), 3))
        return "move", edits.move_ops(doc, {n: (rng.uniform(-900, 900), rng.uniform(-900, 900)) for n in chosen})
    if kind == "paste":
        frag = edits.fragment(doc, rng.sample(nodes, min(len(nodes), rng.randint(1, 4))))
        return "paste", edits.paste_ops(doc, frag, 40, 40)[0]
    if kind == "delay" and g.edges:
        e = rng.choice(g.edges)
        # Only a delay that keeps the graph runnable: 0 -> 1 always; 1 -> 0 if no cycle closes.
        key = (e.src, e.src_port, e.dst, e.dst_port)
        if e.delay == 0:
            return "delay", edits.delay_ops(doc, key, 1)
        dag = nx.DiGraph((x.src, x.dst) for x in g.edges if x.delay == 0)
        if e.src != e.dst and not (e.src in dag and e.dst in dag and nx.has_path(dag, e.dst, e.src)):
            return "delay", edits.delay_ops(doc, key, 0)
    return kind, []


@pytest.mark.parametrize("start", ["sine.json", "empty"])
def test_random_edits_keep_the_document_valid_and_undo_is_exact(qapp, start):
    from PyQt6.QtGui import QUndoStack

    seed = int(os.environ.get("DEEPHTM_EDITOR_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    doc = Document(load_graph(SINE) if start == "sine.json" else new_graph())
    stack = QUndoStack()
    types = sorted(registry.types())
    begin = doc.graph.to_dict()
    counts: dict[str, int] = {}
    for i in range(EDITS):
        where = f"seed {seed}, edit {i}"
        roll = rng.random()
        if roll < 0.12 and stack.canUndo():
            stack.undo()
            kind = "undo"
        elif roll < 0.18 and stack.canRedo():
            stack.redo()
            kind = "redo"
        else:
            kind, ops = random_edit(doc, rng, types)
            if not push(stack, doc, kind, ops):
                kind = "no-op"
        counts[kind] = counts.get(kind, 0) + 1
        assert_valid(doc, f"{where} ({kind})")
    while stack.canRedo():  # the last actions may have been undos
        stack.redo()
        assert_valid(doc, f"seed {seed}: redo at the end")
    end = doc.graph.to_dict()
    while stack.canUndo():
        stack.undo()
    assert doc.graph.to_dict() == begin, f"seed {seed}: undoing everything did not return to the start"
    while stack.canRedo():
        stack.redo()
    assert doc.graph.to_dict() == end, f"seed {seed}: redoing everything did not return to the end"
    made = sum(v for k, v in counts.items() if k not in ("undo", "redo", "no-op"))
    assert made >= EDITS // 2 and counts.get("undo", 0) > 50 and counts.get("group", 0) > 20, counts
    print(f"seed {seed}: {counts}; {len(doc.graph.nodes)} nodes, {len(doc.graph.edges)} edges, "
          f"{len(doc.graph.groups)} groups at the end")
