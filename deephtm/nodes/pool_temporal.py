"""pool.temporal: pools a code over time, so a slower region sees what happened recently.

Three rules: 'union' keeps each unit at the larger of its decayed pooled value and its
current value (an element stays visible for about 1/(1-decay) steps at near full strength,
like HTM's union pooler); 'average' is an exponential moving average; 'sum' a leaky sum of
evidence. Gradients reach the current input only (the pooled past is a detached state).
"""
import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class TemporalPool(Node):
    type_name = "pool.temporal"
    category = "pool"
    doc = ("Pools an input over time: union (max of the decayed pool and the input), average "
           "(exponential moving average) or sum (leaky sum). 'reset' clears the pool first.")
    inputs = (
        Port("x", "tensor", "code to pool (e.g. a TM's cells), 1-D"),
        Port("reset", "scalar", "1: forget the past before pooling this step", optional=True),
    )
    outputs = (Port("y", "tensor", "pooled code, same shape as x"),)
    params = (
        Param("mode", "str", "union", "pooling rule", choices=("union", "average", "sum")),
        Param("decay", "float", 0.9, "factor on the pooled past each step", min=0.0, max=1.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        x = shapes["x"]
        require(x is not None and len(x) == 1, "x", f"expected a 1-D code, got {list(x or [])}")
        return {"y": tuple(x)}

    @classmethod
    def param_count(cls, p, shapes):
        return (shapes["x"] or (1,))[0]

    def setup(self, batch, generator):
        self.register_buffer("pool", torch.zeros(batch, self.in_shapes["x"][0]))

    def forward(self, ctx, x, reset=None):
        past = self.pool * self.p["decay"]
        if reset is not None:
            past = past * (reset.detach().reshape(-1, 1) <= 0.5)
        mode = self.p["mode"]
        if mode == "union":
            y = torch.maximum(past, x)
        elif mode == "average":
            y = past + (1 - self.p["decay"]) * x
        else:
            y = past + x
        self.pool = y.detach()
        return {"y": y}


NODE = TemporalPool
