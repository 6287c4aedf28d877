"""encoder.fourier: random Fourier features, a distributed code with a tunable resolution."""
import math

import torch
from torch import nn

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class FourierEncoder(Node):
    type_name = "encoder.fourier"
    category = "encoder"
    doc = ("cos(W x + b) with W drawn at the scale 1/bandwidth: inputs closer than 'bandwidth' get "
           "similar codes, inputs much farther apart nearly unrelated ones, at every level (a "
           "random distributed scalar encoder that can learn). W and b are trainable.")
    inputs = (Port("x", "tensor", "input, any shape (flattened)"),)
    outputs = (Port("y", "tensor", "code in [-1, 1], shape [features]"),)
    params = (
        Param("features", "int", 64, "code size", min=1, max=65536),
        Param("bandwidth", "float", 0.25, "input distance over which the code decorrelates", min=1e-6, max=1e6),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(shapes["x"] is None or flat_size(shapes["x"]) >= 1, "x", "needs at least one feature")
        return {"y": (p["features"],)}

    @classmethod
    def param_count(cls, p, shapes):
        return (flat_size(shapes["x"] or (1,)) + 1) * p["features"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.proj = nn.Linear(flat_size(shapes["x"]), p["features"])
        with torch.no_grad():
            self.proj.weight.normal_(0.0, 1.0 / p["bandwidth"])
            self.proj.bias.uniform_(0.0, 2 * math.pi)

    def rowwise(self):
        return True  # a function of the row's input alone

    def forward(self, ctx, x):
        return {"y": torch.cos(self.proj(x.flatten(1)))}


NODE = FourierEncoder
