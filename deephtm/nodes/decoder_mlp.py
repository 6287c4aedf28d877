"""decoder.mlp: a ReLU hidden layer then a linear readout."""
from torch import nn

from ..node import Node, flat_size
from ..spec import Param, Port


class MLPDecoder(Node):
    type_name = "decoder.mlp"
    category = "decoder"
    doc = "Reads a code (e.g. the TM's cells) and predicts values: hidden ReLU layers, then linear."
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("y", "tensor", "prediction, shape [outputs]"),)
    params = (
        Param("hidden", "int", 256, "units in each hidden ReLU layer", min=1, max=65536),
        Param("layers", "int", 1, "hidden layers (0: a linear readout)", min=0, max=64),
        Param("outputs", "int", 1, "output size", min=1, max=65536),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"y": (p["outputs"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n, total = flat_size(shapes["x"] or (1,)), 0
        for _ in range(p["layers"]):
            total += (n + 1) * p["hidden"]
            n = p["hidden"]
        return total + (n + 1) * p["outputs"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        layers, n = [], flat_size(shapes["x"])
        for _ in range(p["layers"]):
            layers += [nn.Linear(n, p["hidden"]), nn.ReLU()]
            n = p["hidden"]
        layers.append(nn.Linear(n, p["outputs"]))
        self.net = nn.Sequential(*layers)

    def forward(self, ctx, x):
        return {"y": self.net(x.flatten(1))}


NODE = MLPDecoder
