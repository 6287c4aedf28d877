"""Graph files: JSON on disk, a small explicit data structure in memory.

Format version 1 (see docs/graph-format.md):
  {"format_version": 1, "name": ..., "description": ...,
   "nodes": [{"id", "type", "params": {...}, "ui": {...}}],
   "edges": [{"from": "node.port", "to": "node.port", "delay": 0|1}],
   "groups": [{"id", "title", "nodes": [...], "collapsed": bool}],   # editor hierarchy
   "training": {...},
   "ui": {...}}                                                       # editor layout
`ui` and `groups` never change what is trained.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Callable

from ..atomic import atomic_write_bytes
from ..errors import GraphError
from .training import TrainingConfig

FORMAT_VERSION = 1
# Limits on what a file may hold, checked while reading, so a hostile or broken file is
# refused in well under a second and in bounded memory. Real graphs are far smaller.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 10_000
MAX_EDGES = 100_000
MAX_GROUPS = 10_000
MAX_DEPTH = 64  # nesting of arrays/objects; deeper values would exhaust deepcopy's stack
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}\Z")  # \Z: '$' would accept a trailing newline
TOP_LEVEL_KEYS = {"format_version", "name", "description", "nodes", "edges", "groups", "training", "ui"}

# Migrations keyed on the version they upgrade from: MIGRATIONS[n] turns a version-n dict
# into a version-(n+1) dict. Version 1 is the first released format, so none exist yet;
# the chain runs for every file whose format_version is older than FORMAT_VERSION.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


@dataclass
class NodeSpec:
    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    ui: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "type": self.type, "params": dict(self.params)}
        if self.ui:
            d["ui"] = copy.deepcopy(self.ui)
        return d


@dataclass
class EdgeSpec:
    src: str
    src_port: str
    dst: str
    dst_port: str
    delay: int = 0

    @property
    def from_ref(self) -> str:
        return f"{self.src}.{self.src_port}"

    @property
    def to_ref(self) -> str:
        return f"{self.dst}.{self.dst_port}"

    def label(self) -> str:
        return f"edge '{self.from_ref} -> {self.to_ref}'"

    def to_dict(self) -> dict:
        return {"from": self.from_ref, "to": self.to_ref, "delay": self.delay}


@dataclass
class Graph:
    nodes: list[NodeSpec] = field(default_factory=list)
    edges: list[EdgeSpec] = field(default_factory=list)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    groups: list[dict] = field(default_factory=list)
    ui: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    path: str | None = None  # where it was loaded from; used in error messages

    def node(self, node_id: str) -> NodeSpec | None:
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"format_version": FORMAT_VERSION}
        if self.name:
            d["name"] = self.name
        if self.description:
            d["description"] = self.description
        d["nodes"] = [n.to_dict() for n in self.nodes]
        d["edges"] = [e.to_dict() for e in self.edges]
        if self.groups:
            d["groups"] = copy.deepcopy(self.groups)
        d["training"] = self.training.to_dict()
        if self.ui:
            d["ui"] = copy.deepcopy(self.ui)
        return d

    def copy(self) -> "Graph":
        g = Graph.from_dict(self.to_dict())
        g.path = self.path
        return g

    @classmethod
    def from_dict(cls, d: Any) -> "Graph":
        """Parse the structure of a (migrated) graph dict. Types, ports and shapes are
        checked later by deephtm.graph.resolve."""
        if not isinstance(d, dict):
            raise GraphError("the file must hold a JSON object")
        unknown = set(d) - TOP_LEVEL_KEYS
        if unknown:
            raise GraphError(f"unknown top-level key '{sorted(unknown)[0]}'")
        nodes_raw = _list(d, "nodes", MAX_NODES)
        edges_raw = _list(d, "edges", MAX_EDGES)
        groups = _list(d, "groups", MAX_GROUPS)
        g = cls(
            nodes=[_parse_node(n, i) for i, n in enumerate(nodes_raw)],
            edges=[_parse_edge(e, i) for i, e in enumerate(edges_raw)],
            training=TrainingConfig.from_dict(d.get("training", {})),
            groups=_check_group_nesting([_parse_group(x, i) for i, x in enumerate(groups)]),
            ui=_dict(d.get("ui", {}), "ui"),
            name=_str(d.get("name", ""), "name"),
            description=_str(d.get("description", ""), "description"),
        )
        return g


def _list(d: dict, key: str, limit: int) -> list:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise GraphError(f"'{key}' must be a list")
    if len(v) > limit:
        raise GraphError(f"{len(v):,} {key}; a graph file may hold at most {limit:,}")
    return v


def _dict(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise GraphError("must be an object", where=where)
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise GraphError("must be a string", where=where)
    return v


def _parse_node(n: Any, i: int) -> NodeSpec:
    where = f"nodes[{i}]"
    n = _dict(n, where)
    for key in n:
        if key not in ("id", "type", "params", "ui"):
            raise GraphError(f"unknown key '{key}'", where=where)
    node_id = n.get("id")
    if not isinstance(node_id, str) or not ID_RE.match(node_id):
        raise GraphError(f"id must be a name of letters, digits, '_' or '-' (got {node_id!r:.40})", where=where)
    where = f"node '{node_id}'"
    node_type = n.get("type")
    if not isinstance(node_type, str):
        raise GraphError("'type' must be a string", where=where)
    params = _dict(n.get("params", {}), f"{where}: params")
    return NodeSpec(node_id, node_type, dict(params), _dict(n.get("ui", {}), f"{where}: ui"))


def parse_ref(ref: Any, where: str) -> tuple[str, str]:
    if not isinstance(ref, str) or ref.count(".") != 1:
        raise GraphError(f"expected 'node.port', got {ref!r:.60}", where=where)
    node, port = ref.split(".")
    if not node or not port:
        raise GraphError(f"expected 'node.port', got {ref!r:.60}", where=where)
    return node, port


def _parse_edge(e: Any, i: int) -> EdgeSpec:
    where = f"edges[{i}]"
    e = _dict(e, where)
    for key in e:
        if key not in ("from", "to", "delay"):
            raise GraphError(f"unknown key '{key}'", where=where)
    src, src_port = parse_ref(e.get("from"), f"{where}: 'from'")
    dst, dst_port = parse_ref(e.get("to"), f"{where}: 'to'")
    delay = e.get("delay", 0)
    if delay not in (0, 1) or isinstance(delay, bool):
        raise GraphError(f"'delay' must be 0 or 1, got {delay!r:.20}", where=f"edge '{src}.{src_port} -> {dst}.{dst_port}'")
    return EdgeSpec(src, src_port, dst, dst_port, int(delay))


def _parse_group(x: Any, i: int) -> dict:
    where = f"groups[{i}]"
    x = _dict(x, where)
    gid = x.get("id")
    if not isinstance(gid, str) or not ID_RE.match(gid):
        raise GraphError(f"group id must be a name, got {gid!r:.40}", where=where)
    members = x.get("nodes", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise GraphError("'nodes' must be a list of node ids", where=f"group '{gid}'")
    return copy.deepcopy(x)


def _check_group_nesting(groups: list[dict]) -> list[dict]:
    """Groups may contain groups, but never themselves (directly or not), and at most
    MAX_DEPTH deep: the editor walks the hierarchy. Iterative, so any file is safe."""
    children: dict[str, list] = {}
    for g in groups:
        children.setdefault(g["id"], []).extend(g.get("nodes", []))
    height: dict[str, int] = {}
    for root in children:
        if root in height:
            continue
        path, stack = {root}, [(root, iter(children[root]))]
        while stack:
            gid, members = stack[-1]
            for m in members:
                if m not in children or m in height:
                    continue
                if m in path:
                    raise GraphError(f"group '{m}' contains itself", where=f"group '{gid}'")
                path.add(m)
                stack.append((m, iter(children[m])))
                break
            else:
                stack.pop()
                path.discard(gid)
                height[gid] = 1 + max((height[m] for m in children[gid] if m in children), default=0)
                if height[gid] > MAX_DEPTH:
                    raise GraphError(f"groups nest more than {MAX_DEPTH} deep", where=f"group '{gid}'")
    return groups


# ---- reading and writing ---------------------------------------------------

def migrate(d: Any) -> dict:
    if not isinstance(d, dict):
        raise GraphError("the file must hold a JSON object")
    version = d.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise GraphError(f"missing or non-integer 'format_version' (this version reads 1..{FORMAT_VERSION})")
    if version > FORMAT_VERSION or version < 1:
        raise GraphError(f"unknown format_version {version} (this version reads 1..{FORMAT_VERSION})")
    while version < FORMAT_VERSION:
        d = MIGRATIONS[version](copy.deepcopy(d))
        version += 1
        d["format_version"] = version
    return d


def parse_text(data: bytes | str, path: str | None = None) -> Graph:
    try:
        if isinstance(data, bytes):
            if len(data) > MAX_FILE_BYTES:
                raise GraphError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GraphError(f"not UTF-8 text (byte {exc.start})") from None
        try:
            raw = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            raise GraphError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise GraphError(f"JSON is nested too deeply (over {MAX_DEPTH} levels)") from None
        except ValueError:  # Python refuses integers of more than 4300 digits
            raise GraphError("malformed JSON: a number has too many digits") from None
        text = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if _nesting_depth(text) > MAX_DEPTH:
            raise GraphError(f"JSON is nested too deeply (over {MAX_DEPTH} levels)")
        graph = Graph.from_dict(migrate(raw))
        graph.path = path
        return graph
    except GraphError as exc:
        raise exc.located(path)


def _reject_constant(name: str):
    raise GraphError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: valid JSON, but it could never be written back
        raise GraphError(f"JSON number {text[:20]} is out of range")
    return value


def _nesting_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in valid JSON text, found without recursion."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return 0  # too few brackets to exceed the limit
    import numpy as np

    # Drop escaped backslashes, then escaped quotes: the quotes left delimit strings.
    b = np.frombuffer(data.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    in_string = (np.cumsum(b == ord('"'), dtype=np.int32) & 1).astype(bool)
    step = np.zeros(256, dtype=np.int8)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    steps = step[b]
    steps[in_string] = 0
    return int(np.cumsum(steps, dtype=np.int32).max())


def load_graph(path: str | os.PathLike) -> Graph:
    path = str(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a device never ends, a FIFO blocks: never open them
            raise GraphError("not a regular file (a folder, device or pipe)", file=path)
        size = st.st_size
        if size > MAX_FILE_BYTES:
            raise GraphError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=path)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise GraphError(exc.strerror or str(exc), file=path) from None
    return parse_text(data, path)


def dumps(graph: Graph) -> str:
    return json.dumps(graph.to_dict(), indent=2, allow_nan=False) + "\n"


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, dumps(graph).encode("utf-8"))
