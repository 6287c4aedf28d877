"""Errors a user can cause. Each prints as one line; the CLI turns them into exit code 2."""
from __future__ import annotations

import re

# Text echoed from a file may hold line breaks or terminal escapes; shown escaped, the
# message stays one harmless line. Each part is cut short so a 10 MB key stays readable.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
MAX_PART_CHARS = 300


class DeepHTMError(Exception):
    """A mistake in user input (a graph file, a CSV, a flag). Never shown as a traceback."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.where = where  # e.g. "node 'sp': param 'columns'" or "edge 'a.x -> b.y'"

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


class TrainingError(DeepHTMError):
    """Training stopped: NaN/inf loss, out of memory, or a failing data source."""


class CheckpointError(DeepHTMError):
    """A checkpoint is missing, unreadable or does not match the graph."""


def node_where(node_id: str, param: str | None = None, port: str | None = None) -> str:
    where = f"node '{node_id}'"
    if param is not None:
        where += f": param '{param}'"
    if port is not None:
        where += f": port '{port}'"
    return where
