"""Errors a user can cause. Each prints as one line; the CLI turns them into exit code 2.

A graph error also carries its place as fields (file, node, param, port, edge, group), so
a program such as the editor can point at the node without parsing the text."""
from __future__ import annotations

import re

# Text echoed from a file may hold line breaks or terminal escapes; shown escaped, the
# message stays one harmless line. Each part is cut short so a 10 MB key stays readable.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
MAX_PART_CHARS = 300
PLACE_FIELDS = ("node", "param", "port", "edge", "group")


class Where(str):
    """A place in a graph file. It reads as the text errors print ("node 'sp': param
    'columns'") and keeps its parts as fields; edge is (src, src_port, dst, dst_port)."""

    def __new__(cls, text: str | None = None, *, node: str | None = None, param: str | None = None,
                port: str | None = None, edge: tuple | None = None, group: str | None = None) -> "Where":
        fields = {"node": node, "param": param, "port": port, "edge": tuple(edge) if edge else None, "group": group}
        self = super().__new__(cls, place_text(**fields) if text is None else text)
        self.__dict__.update(fields)
        return self


def place_text(node=None, param=None, port=None, edge=None, group=None) -> str:
    parts = []
    if edge is not None:
        src, src_port, dst, dst_port = edge
        parts.append(f"edge '{src}.{src_port} -> {dst}.{dst_port}'")
    if group is not None:
        parts.append(f"group '{group}'")
    if node is not None:
        parts.append(f"node '{node}'")
    if param is not None:
        parts.append(f"param '{param}'")
    if port is not None:
        parts.append(f"port '{port}'")
    return ": ".join(parts)


class DeepHTMError(Exception):
    """A mistake in user input (a graph file, a CSV, a flag). Never shown as a traceback.

    where: the place as text (e.g. "training: 'lr'"), or a Where; the keyword fields
    override a Where's. Given only fields, the text is made from them."""

    level = "error"

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None,
                 node: str | None = None, param: str | None = None, port: str | None = None,
                 edge: tuple | None = None, group: str | None = None, summary: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        given = {"node": node, "param": param, "port": port, "edge": tuple(edge) if edge else None, "group": group}
        for name in PLACE_FIELDS:
            value = given[name] if given[name] is not None else getattr(where, name, None)
            setattr(self, name, value)
        if where is None and any(v is not None for v in given.values()):
            where = place_text(**given)
        self.where = where  # e.g. "node 'sp': param 'columns'" or "edge 'a.x -> b.y'"
        self._summary = summary

    @property
    def summary(self) -> str:
        """The problem in words, without the file: what the editor lists. Usually the
        place and the message, as printed."""
        if self._summary is not None:
            return _one_line(self._summary)
        return ": ".join(_one_line(str(p), MAX_PART_CHARS) for p in (self.where, self.message) if p)

    def located(self, file: str | None) -> "DeepHTMError":
        """Return the same error with the file name filled in, if it was not set."""
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        parts = [_one_line(str(self.file))] if self.file else []
        parts += [_one_line(str(p), MAX_PART_CHARS) for p in (self.where, self.message) if p]
        return ": ".join(parts)


def _one_line(text: str, max_chars: int | None = None) -> str:
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars - 3] + "..."
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)


class GraphError(DeepHTMError):
    """The graph file is malformed, refers to unknown things, or does not resolve."""


class ShapeError(GraphError):
    """Shape inference found incompatible tensor shapes."""


class GraphWarning(GraphError):
    """Something in a graph that resolves but is probably a mistake (e.g. a loss that
    reaches no loss node). Collected, never raised: training is still allowed."""

    level = "warning"


class TrainingError(DeepHTMError):
    """Training stopped: NaN/inf loss, out of memory, or a failing data source."""


class CheckpointError(DeepHTMError):
    """A checkpoint is missing, unreadable or does not match the graph."""


def node_where(node_id: str, param: str | None = None, port: str | None = None) -> Where:
    return Where(node=node_id, param=param, port=port)


def edge_where(src: str, src_port: str, dst: str, dst_port: str) -> Where:
    return Where(edge=(src, src_port, dst, dst_port))
