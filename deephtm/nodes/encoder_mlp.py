"""encoder.mlp: a stack of fully connected ReLU layers."""
from torch import nn

from ..node import Node, lr_scale_param, flat_size, require
from ..graph.spec import Param, Port
from ..kernels.mlp import MLP, use_fused
from ..kernels.tape import apply, recording_tape


class MLPEncoder(Node):
    type_name = "encoder.mlp"
    # Forward and backward as one autograd node (kernels.mlp.MLP) when True. Off: a Python
    # autograd node costs more than the few C++ ones of plain nn.Linear layers with ReLU
    # (measured 2026-12-06: fused 20-40% slower for this node at batch 1 and about 10% at 256).
    # A step recorded without autograd (kernels/tape.py) always takes the function.
    fused = False
    category = "encoder"
    doc = "Fully connected layers with ReLU, turning a value into a dense code for the SP."
    inputs = (Port("x", "tensor", "input, any shape (flattened)"),)
    outputs = (Port("y", "tensor", "code, shape [hidden]"),)
    params = (
        Param("hidden", "int", 256, "units per layer", min=1, max=65536),
        Param("layers", "int", 2, "number of layers", min=1, max=64),
        lr_scale_param(),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(shapes["x"] is None or len(shapes["x"]) >= 1, "x", "needs at least one feature")
        return {"y": (p["hidden"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n_in = flat_size(shapes["x"] or (1,))
        h = p["hidden"]
        return (n_in + 1) * h + (p["layers"] - 1) * (h + 1) * h

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        layers, n = [], flat_size(shapes["x"])
        for _ in range(p["layers"]):
            layers += [nn.Linear(n, p["hidden"]), nn.ReLU()]
            n = p["hidden"]
        self.net = nn.Sequential(*layers)

    def rowwise(self):
        return True  # a function of the row's input alone

    def hand_backward(self):
        return True

    def forward(self, ctx, x):
        x = x.flatten(1)
        if (self.fused or recording_tape() is not None) and use_fused(x):
            return {"y": apply(MLP, x, True, *[t for layer in self.net[0::2] for t in (layer.weight, layer.bias)])}
        return {"y": self.net(x)}


NODE = MLPEncoder
