"""Errors a user can cause. Each prints as one line; the CLI turns them into exit code 2."""
from __future__ import annotations


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
        parts = [p for p in (self.file, self.where) if p]
        return ": ".join(parts + [self.message])


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
