"""The base class every node type derives from.

A node type is declared by class attributes (ports, params, doc), in the spirit of
ryvencore, and is a torch module whose forward pass maps named inputs to named outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
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
        raise ShapeError(message, where=f"port '{port}'")


def require_same_shape(shapes: dict[str, Shape | None], port: str, like: str) -> None:
    """Raise a ShapeError about `port` if both shapes are known and differ (e.g. target vs pred)."""
    a, b = shapes[like], shapes[port]
    require(a is None or b is None or a == b, port, f"shape {list(b or [])} differs from {like}'s {list(a or [])}")


def flat_size(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
