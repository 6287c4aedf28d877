"""The base class every node type derives from.

A node type is declared by class attributes (ports, params, doc), in the spirit of
ryvencore, and is a torch module whose forward pass maps named inputs to named outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import ShapeError
from .graph.spec import Param, Port

Shape = tuple  # per-sample shape, without the batch dimension; () for a scalar


@dataclass
class Context:
    """What a node may know about the step being run."""

    step: int
    batch: int
    device: torch.device
    generator: torch.Generator
    training: bool = True


class Node(nn.Module):
    type_name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    is_loss: ClassVar[bool] = False  # its 'loss' output is added to the training loss
    is_metric: ClassVar[bool] = False  # values() are reported in metrics and summary.json

    # ---- capabilities -----------------------------------------------------------
    # What generic code (the trainer, deephtm detect and its fast path, the live views) may
    # ask of a node. It asks these, never a type name or hasattr: a new node type opts in by
    # overriding them.
    #
    # rows(start, count) gives what forward would give at steps start .. start + count - 1
    # of a one-stream run, in one go (a data source: the fast path batches what follows it).
    has_rows: ClassVar[bool] = False
    # forward_steps(ctx, **inputs) runs consecutive steps of one stream at once (a node
    # without weights that nothing reads, e.g. a scorer: the fast path runs it per block).
    steps_in_blocks: ClassVar[bool] = False
    # What the live views show of it: "sp" (a spatial pooler: 'columns' output, 'winners'
    # param, duty_cycles()), "tm" (a temporal memory: 'columns' input, 'context' input,
    # 'cells' and 'anomaly' outputs, 'cells_per_column' param, predicted_by()), "anomaly"
    # (a 'score' output in [0, 1]); "" for none of these.
    live_role: ClassVar[str] = ""
    # Its part in `deephtm detect`: "source" reads the CSV stream it is given (stream_params(),
    # then lines and skipped after setup, column_texts()); "likelihood" scores the
    # anomaly (a 'raw' input, 'likelihood', 'score' and 'flag' outputs, a 'threshold' param).
    stream_role: ClassVar[str] = ""

    # ---- declarations -------------------------------------------------------
    @classmethod
    def infer(cls, p: dict[str, Any], shapes: dict[str, Shape | None]) -> dict[str, Shape]:
        """Output shapes from params and connected input shapes. Inputs that are not
        connected, or not yet known (a delayed edge on the first pass), are None."""
        raise NotImplementedError

    @classmethod
    def param_count(cls, p: dict[str, Any], shapes: dict[str, Shape | None]) -> int:
        """Number of weights and state values build() would allocate; checked against a
        budget before anything is allocated."""
        return 0

    @classmethod
    def stream_state_count(cls, p: dict[str, Any], shapes: dict[str, Shape | None]) -> int:
        """Values build() allocates for each stream of a batch (e.g. a per-stream matrix);
        the budget counts them times the batch size before anything is allocated."""
        return 0

    @classmethod
    def port(cls, name: str, direction: str) -> Port | None:
        for port in cls.inputs if direction == "in" else cls.outputs:
            if port.name == name:
                return port
        return None

    @classmethod
    def describe(cls) -> dict:
        return {
            "type": cls.type_name,
            "category": cls.category,
            "doc": cls.doc,
            "version": cls.version,
            "inputs": [_port_dict(p) for p in cls.inputs],
            "outputs": [_port_dict(p) for p in cls.outputs],
            "params": [p.describe() for p in cls.params],
        }

    # ---- runtime ------------------------------------------------------------
    def __init__(self, p: dict[str, Any], shapes: dict[str, Shape | None]):
        super().__init__()
        self.p = dict(p)
        self.in_shapes = dict(shapes)
        # Until bind() says otherwise: no id yet, paths relative to the working directory, and
        # every output is read.
        self.node_id = "?"
        self.base_dir: Path | None = None
        self.used_outputs = {port.name for port in self.outputs}

    def bind(self, node_id: str, base_dir: Path | None, used_outputs: set[str]) -> None:
        """Place the node in its graph: its id (for messages), the folder its relative data
        paths start from (the graph file's), and the outputs another node reads (a node may
        skip computing the others)."""
        self.node_id, self.base_dir, self.used_outputs = node_id, base_dir, set(used_outputs)

    def param_groups(self) -> list[dict]:
        """Optimizer groups for this node's weights: dicts with "params" and optionally
        "lr_scale" (times the graph's rate), "lr" (absolute) and "optimizer" (a kind of its
        own, e.g. "sgd"). By default every weight is trained by the graph's optimizer, at the
        graph's rate times the node's 'lr_scale' param when it declares one."""
        return [{"params": list(self.parameters()), "lr_scale": self.p.get("lr_scale", 1.0)}]

    def setup(self, batch: int, generator: torch.Generator) -> None:
        """Called once after construction, before the first step (e.g. to draw phases)."""

    def forward(self, ctx: Context, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def data_parallel_problem(self) -> str | None:
        """Why this node cannot train data-parallel (its ranks would drift apart), or None."""
        return None

    def data_warnings(self) -> list[str]:
        """Things about this node's data a user should hear once (e.g. timestamps out of
        order), said by the CLI as warnings; nothing by default."""
        return []

    def value(self) -> float | None:
        """Metric nodes: the metric's current value."""
        return None

    def values(self, name: str) -> dict[str, float]:
        """Metric nodes: every value to report, by name (a node may report several). By
        default value() under `name`, the node's 'name' param or else its id."""
        v = self.value()
        if isinstance(v, dict):
            return v
        return {} if v is None else {name: v}

    def on_end(self, run_dir) -> None:
        """Called by Trainer.finish with the run directory (a Path) when the run has one:
        a node may write files there (e.g. a PNG of what it generated)."""

    # ---- capability hooks (see the capabilities above) ----------------------------
    def rowwise(self) -> bool:
        """Whether its output for a row depends on that row's inputs only (no state carried
        from earlier rows), so that rows may be computed in a batch."""
        return False

    def rows(self, start: int, count: int) -> dict[str, torch.Tensor]:
        """has_rows: the outputs at steps start .. start + count - 1, as [count, ...] tensors."""
        raise NotImplementedError

    def forward_steps(self, ctx: Context, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """steps_in_blocks: forward over T consecutive steps of one stream ([T, ...] inputs and
        outputs)."""
        raise NotImplementedError

    def predicted_by(self, context: torch.Tensor) -> torch.Tensor | None:
        """live_role "tm": the cells that `context` (active cells [B, n]) predicts, bool
        [B, columns, cells per column]; None if it cannot say."""
        return None

    def hand_backward(self) -> bool:
        """Whether the trainer may run a step of this node without autograd
        (deephtm/kernels/tape.py): every gradient path from its inputs and weights to its
        outputs goes through deephtm.kernels.tape.apply, or it has none (no weights, and
        outputs that carry no gradient back). A graph trains that way only when every node
        says so; otherwise it uses autograd throughout."""
        return False

    def duty_cycles(self) -> torch.Tensor | None:
        """live_role "sp": how often each column has been active lately; None if not tracked."""
        return None

    @classmethod
    def stream_params(cls, path: str, column: str, timestamp_column: str,
                      timestamp_format: str | None) -> dict[str, Any]:
        """stream_role "source": the params that make it read `column` of the CSV file at
        `path` once, a row per step, skipping bad rows."""
        raise NotImplementedError

    def column_texts(self, columns: list[str]) -> tuple[int, dict[str, list[str]]]:
        """stream_role "source": the file line of the first row and, read in one pass, the
        text of each named column in every row, skipped rows included (empty names are
        left out)."""
        raise NotImplementedError

    # ---- state and versions ----------------------------------------------------
    # Whatever a node keeps from one step to the next must reach the checkpoint, or a resumed
    # run drifts from one that never stopped. Tensors are registered buffers; anything else
    # (counters, Python floats, per-stream lists, generator states) goes through torch's
    # get_extra_state/set_extra_state as a dict of JSON values and tensors (see
    # deephtm/train/checkpoint.py). Change what a node keeps, and bump its `version`.
    @classmethod
    def migrate_state(cls, old_version: int, tensors: dict[str, torch.Tensor],
                      extra: dict | None) -> tuple[dict[str, torch.Tensor], dict | None] | None:
        """Map a checkpoint of an older `version` of this node onto this one: `tensors` holds
        the node's state_dict entries by their names inside the node, `extra` its extra state
        (None if that version kept none). Returns the new (tensors, extra), or None when there
        is no faithful migration, and the checkpoint is refused."""
        return None



class QueuedSteps(Node):
    """A node whose per-step work waits in a queue and enters its state a block at a time
    (`flush`: on a full queue, a read, a checkpoint), one operator per step instead of several.
    A checkpoint holds every step seen; a loaded state replaces whatever was queued."""

    QUEUE_STEPS = 64  # the most steps that wait
    _queued = 0

    def flush(self) -> None:
        raise NotImplementedError

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.flush()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, *args, **kwargs):
        self._queued = 0
        super()._load_from_state_dict(*args, **kwargs)

def _port_dict(p: Port) -> dict:
    d = {"name": p.name, "kind": p.kind, "doc": p.doc}
    if p.optional:
        d["optional"] = True
    return d


def lr_scale_param(default: float = 1.0) -> Param:
    """The optional per-node multiplier of the graph's learning rate."""
    return Param("lr_scale", "float", default, "this node's learning rate as a multiple of the graph's "
                 "(e.g. < 1 keeps an encoder's code stable while the layers after it learn)",
                 min=0.0, max=1000.0)


def require(cond: bool, port: str, message: str) -> None:
    """Raise a ShapeError about `port` unless cond holds (used in infer())."""
    if not cond:
        raise ShapeError(message, port=port)


def require_same_shape(shapes: dict[str, Shape | None], port: str, like: str) -> None:
    """Raise a ShapeError about `port` if both shapes are known and differ (e.g. target vs pred)."""
    a, b = shapes[like], shapes[port]
    require(a is None or b is None or a == b, port, f"shape {list(b or [])} differs from {like}'s {list(a or [])}")


def flat_size(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
