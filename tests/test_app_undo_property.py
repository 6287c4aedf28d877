"""Any sequence of editor actions, undone step by step, gives back each earlier graph exactly,
and redone gives back the final one (property-based, on the Qt-free document)."""
import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import edits, grouping
from app.document import Document
from deephtm.graph import registry
from deephtm.graph.graphfile import Graph

from app_helpers import HTM_GRAPH

TYPES = sorted(registry.types())


def act(doc: Document, choice: int, a: int, b: int) -> list:
    """One editor action chosen by small integers; returns its ops (maybe empty)."""
    g = doc.graph
    ids = [n.id for n in g.nodes]
    pick = (lambda seq, k: seq[k % len(seq)]) if ids else None
    kind = choice % 10
    if kind == 0 or not ids:
        return edits.add_node_ops(doc, TYPES[a % len(TYPES)], a * 7 % 500, b * 11 % 400)[0]
    if kind == 1:
        src, dst = pick(ids, a), pick(ids, b)
        outs, ins = doc.ports(src)[1], doc.ports(dst)[0]
        if not outs or not ins:
            return []
        sp, dp = pick([p.name for p in outs], b), pick([p.name for p in ins], a)
        if edits.connection_problem(doc, src, sp, dst, dp):
            return []
        return edits.connect_ops(doc, src, sp, dst, dp)[0]
    if kind == 2:
        return edits.delete_ops(doc, [pick(ids, a)])
    if kind == 3 and g.edges:
        e = g.edges[a % len(g.edges)]
        return edits.delete_ops(doc, [], [(e.src, e.src_port, e.dst, e.dst_port)])
    if kind == 4:
        return edits.move_ops(doc, {pick(ids, a): (a * 13 % 900, b * 17 % 700)})
    if kind == 5:
        members = sorted({pick(ids, a), pick(ids, b)})
        return grouping.group_ops(doc, members, f"g{a}")[0]
    if kind == 6 and g.groups:
        gid = g.groups[a % len(g.groups)]["id"]
        return grouping.ungroup_ops(doc, gid) if b % 2 else grouping.set_group_ops(doc, gid, collapsed=bool(a % 2))
    if kind == 7:
        node = doc.node(pick(ids, a))
        cls = registry.get(node.type)
        if cls is None or not cls.params:
            return []
        p = cls.params[b % len(cls.params)]
        value = {"int": 1 + b % 7, "float": 0.5, "bool": bool(b % 2), "str": p.choices[0] if p.choices else "x"}
        return edits.set_param_ops(doc, node.id, p.name, value[p.type])
    if kind == 8:
        old = pick(ids, a)
        new = f"n{b}"
        return [] if edits.rename_problem(doc, old, new) else [("rename", old, new)]
    frag = edits.fragment(doc, {pick(ids, a), pick(ids, b)})
    return edits.paste_ops(doc, frag, 40, 40)[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)), min_size=1, max_size=25))
def test_any_edit_sequence_undoes_and_redoes_exactly(actions):
    doc = Document(Graph.from_dict(copy.deepcopy(HTM_GRAPH)))
    history = [doc.graph.to_dict()]
    steps = []  # (ops, inverses) like the undo stack's commands
    for choice, a, b in actions:
        ops = act(doc, choice, a, b)
        if not ops:
            continue
        steps.append((ops, doc.apply_all(ops)))
        history.append(doc.graph.to_dict())
        Graph.from_dict(doc.graph.to_dict())  # always a well-formed graph file
    for i in range(len(steps) - 1, -1, -1):
        doc.apply_all(steps[i][1])
        assert doc.graph.to_dict() == history[i]
    for i, (ops, _) in enumerate(steps):
        doc.apply_all(ops)
        assert doc.graph.to_dict() == history[i + 1]
