"""util.history: a tapped delay line, the last N values of its input side by side."""
import torch

from ..node import Node, flat_size
from ..graph.spec import Param, Port


class History(Node):
    type_name = "util.history"
    category = "util"
    doc = ("The input now and at the previous length-1 steps, newest first (zeros before the run "
           "began). Gradients reach only the current value.")
    inputs = (Port("x", "tensor", "input, any shape (flattened)"),)
    outputs = (Port("y", "tensor", "[x_t, x_t-1, ..., x_t-length+1], shape [length * size of x]"),)
    params = (Param("length", "int", 8, "values kept, the current one included", min=1, max=100000),)

    @classmethod
    def infer(cls, p, shapes):
        return {"y": (p["length"] * flat_size(shapes["x"] or (1,)),)}

    @classmethod
    def stream_state_count(cls, p, shapes):
        return p["length"] * flat_size(shapes["x"] or (1,))

    def setup(self, batch, generator):
        n = flat_size(self.in_shapes["x"])
        self.register_buffer("past", torch.zeros(batch, max(self.p["length"] - 1, 0), n), persistent=True)

    def forward(self, ctx, x):
        x = x.flatten(1)
        y = torch.cat([x, self.past.flatten(1)], dim=1) if self.past.shape[1] else x
        if self.past.shape[1]:
            self.past = torch.cat([x.detach().unsqueeze(1), self.past[:, :-1]], dim=1)
        return {"y": y}


NODE = History
