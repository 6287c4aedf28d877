"""util.concat: joins up to four tensors along their features."""
import torch

from ..node import Node, flat_size
from ..graph.spec import Port

SLOTS = ("a", "b", "c", "d")


class Concat(Node):
    type_name = "util.concat"
    category = "util"
    doc = "Concatenates the connected inputs (each flattened), in the order a, b, c, d."
    inputs = tuple(Port(s, "tensor", f"input {s}, any shape (flattened)", optional=(s != "a")) for s in SLOTS)
    outputs = (Port("y", "tensor", "the inputs side by side, shape [sum of their sizes]"),)
    params = ()

    @classmethod
    def infer(cls, p, shapes):
        return {"y": (sum(flat_size(shapes[s]) for s in SLOTS if shapes[s] is not None),)}

    def rowwise(self):
        return True  # a function of the row's input alone

    def forward(self, ctx, **inputs):
        return {"y": torch.cat([inputs[s].flatten(1) for s in SLOTS if s in inputs], dim=1)}


NODE = Concat
