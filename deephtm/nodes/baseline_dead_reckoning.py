"""baseline.dead_reckoning: the position a plain running sum of the velocity gives.

A path integrator fed only velocity can at best match this: it has the same information. A
model beats it only with something more, e.g. landmark or sensory corrections.
"""
import torch

from ..node import Node, require
from ..graph.spec import Port


class DeadReckoning(Node):
    type_name = "baseline.dead_reckoning"
    category = "baseline"
    doc = ("Dead reckoning: start + the cumulative sum of the velocity since the last reset (the "
           "velocity of the reset step included, as gridcell.module does).")
    inputs = (
        Port("velocity", "tensor", "displacement per step, shape [2]"),
        Port("reset", "scalar", "1: restart the sum at 'anchor' (or 0) this step", optional=True),
        Port("anchor", "tensor", "position to restart from when reset is 1, shape [2]", optional=True),
    )
    outputs = (Port("position", "tensor", "the summed position, shape [2]"),)
    params = ()

    @classmethod
    def infer(cls, p, shapes):
        for port in ("velocity", "anchor"):
            s = shapes[port]
            require(s is None or tuple(s) == (2,), port, f"expected shape [2], got {list(s or [])}")
        return {"position": (2,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 2

    def setup(self, batch, generator):
        self.register_buffer("x", torch.zeros(batch, 2))

    def forward(self, ctx, velocity, reset=None, anchor=None):
        x = self.x.to(velocity.device)
        if reset is not None:
            start = anchor.detach() if anchor is not None else torch.zeros_like(x)
            x = torch.where(reset.detach().reshape(-1, 1) > 0.5, start, x)
        self.x = x + velocity.detach()
        return {"position": self.x.clone()}


NODE = DeadReckoning
