"""Code outside deephtm/nodes/ knows no node type by name: it asks the capabilities a node
declares on deephtm.node.Node (live_role, stream_role, rowwise(), has_rows, ...), so that a
new node type works everywhere by declaring them, and renaming a type breaks nothing.

These tests read the source of every such module (the library's and the editor's)."""
import ast
import re
from pathlib import Path

import pytest
from torch import nn

from deephtm.graph import registry
from deephtm.node import Node

ROOT = Path(__file__).resolve().parent.parent
NODE_NAMES = r"node|nodes|tm|sp|source|src|lik|likelihood|encoder|decoder|owner"


def generic_modules() -> list[Path]:
    library = [p for p in (ROOT / "deephtm").rglob("*.py") if "nodes" not in p.relative_to(ROOT / "deephtm").parts]
    return sorted(library + list((ROOT / "app").rglob("*.py")))


def node_attributes() -> set[str]:
    """Names the node classes define (methods, class attributes), Node's own included."""
    names = set()
    for cls in list(registry.types().values()) + [Node]:
        for klass in cls.__mro__:
            if klass in (nn.Module, object):
                break
            names |= set(vars(klass))
    return names - {"__module__", "__doc__", "__init__", "__annotations__", "__dict__", "__weakref__"}


def type_literals(tree: ast.AST, types: set[str]) -> list[tuple[int, str]]:
    """String literals that are a registered type name, or the prefix of one ("anomaly.")."""
    prefixes = {t.split(".")[0] + "." for t in types}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and (n.value in types or n.value in prefixes)]


def node_probes(tree: ast.AST, attributes: set[str]) -> list[tuple[int, str]]:
    """hasattr(x, "a") and getattr(x, "a", default) where x is a node (by its name) or "a" is
    something node classes define: asking an object whether it happens to have a member."""
    found = []
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)):
            continue
        probe = n.func.id == "hasattr" or (n.func.id == "getattr" and len(n.args) == 3)
        if not probe or len(n.args) < 2:
            continue
        target, attr = ast.unparse(n.args[0]), n.args[1]
        named_node = re.search(rf"\b({NODE_NAMES})\b", target) is not None
        node_member = isinstance(attr, ast.Constant) and attr.value in attributes
        if named_node or node_member:
            found.append((n.lineno, ast.unparse(n)))
    return found


def test_the_scan_covers_the_generic_modules():
    names = {p.relative_to(ROOT).as_posix() for p in generic_modules()}
    for must in ("deephtm/anomaly/fast_path.py", "deephtm/anomaly/detect.py", "deephtm/live/probes.py",
                 "deephtm/live/sampler.py", "deephtm/train/compile.py", "deephtm/train/trainer.py",
                 "app/run/panel.py", "app/run/worker.py"):
        assert must in names
    assert not any(n.startswith("deephtm/nodes/") for n in names)


def test_the_checks_catch_what_they_look_for():
    # The checks themselves, on code written the way the rules forbid.
    types = set(registry.types())
    bad = ast.parse('if node.type_name in ("htm.tm", "x"): pass\n'
                    'elif t.startswith("anomaly."): pass\n'
                    'if hasattr(node, "rows"): pass\n'
                    'd = getattr(model.nodes[k], "duty", None)\n'
                    'ok = hasattr(view, "forward_steps")\n'
                    'fine = hasattr(view, "fit")\n')
    assert [v for _, v in type_literals(bad, types)] == ["htm.tm", "anomaly."]
    assert [line for line, _ in node_probes(bad, node_attributes())] == [3, 4, 5]


@pytest.mark.parametrize("path", generic_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_node_type_name_in_generic_code(path):
    found = type_literals(ast.parse(path.read_text(encoding="utf-8")), set(registry.types()))
    assert not found, f"{path.relative_to(ROOT)} names node types: {found} (declare a capability on Node instead)"


@pytest.mark.parametrize("path", generic_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_hasattr_probe_of_a_node_in_generic_code(path):
    found = node_probes(ast.parse(path.read_text(encoding="utf-8")), node_attributes())
    assert not found, f"{path.relative_to(ROOT)} probes nodes: {found} (declare a capability on Node instead)"


# ---- the capabilities generic code asks ----------------------------------------------------

ANOMALY = ROOT / "graphs" / "anomaly.json"


def test_live_probes_find_the_pooler_memory_and_scores_by_their_live_role():
    from deephtm.graph.graphfile import load_graph
    from deephtm.graph.resolve import resolve
    from deephtm.live.probes import Probes

    g = load_graph(ANOMALY)
    g.node("tm").type = "htm.tm_segments"  # the other temporal memory, same role
    g.node("tm").params = {"cells_per_column": 4}
    r = resolve(g)
    p = Probes.find(r)
    roles = {nid: r.nodes[nid].cls.live_role for nid in r.order}
    assert roles["sp"] == "sp" and roles["tm"] == "tm" and roles["likelihood"] == "anomaly"
    assert (p.sp, p.sp_columns, p.sp_winners) == ("sp", g.node("sp").params["columns"], g.node("sp").params["winners"])
    assert (p.tm, p.tm_cells) == ("tm", 4)
    assert [key for _, key in p.anomalies] == [("tm", "anomaly"), ("likelihood", "score")]


def test_bind_places_a_node_in_its_graph():
    from deephtm.graph.graphfile import load_graph
    from deephtm.graph.resolve import resolve
    from deephtm.train.compile import GraphModule

    g = load_graph(ANOMALY)
    r = resolve(g)
    alone = r.nodes["source"].cls(r.nodes["source"].params, {})
    # Outside a graph every output counts as read.
    assert alone.used_outputs == {port.name for port in alone.outputs} and alone.base_dir is None
    model = GraphModule(r)
    read = {e.src_port for e in g.edges if e.src == "source"}
    node = model.nodes["source"]
    assert node.node_id == "source" and node.used_outputs == read and read < alone.used_outputs
    assert node.base_dir == ANOMALY.parent
