"""util.concat: joins up to four tensors along their features."""
import torch

from ..node import Node, flat_size
from ..graph.spec import Port
from ..kernels.concat import Concat as JoinFunction
from ..kernels.tape import apply, recording_tape

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

    def hand_backward(self):
        return True

    def forward(self, ctx, **inputs):
        pieces = [inputs[s].flatten(1) for s in SLOTS if s in inputs]
        if recording_tape() is not None:  # a step without autograd: the join with its backward
            return {"y": apply(JoinFunction, *pieces)}
        return {"y": torch.cat(pieces, dim=1)}


NODE = Concat
