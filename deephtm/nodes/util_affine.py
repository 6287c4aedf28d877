"""util.affine: a fixed scale and shift (e.g. to bring raw counts to a unit range)."""
from ..node import Node
from ..graph.spec import Param, Port


class Affine(Node):
    type_name = "util.affine"
    category = "util"
    doc = "y = x * scale + shift, with fixed (not learned) numbers; the inverse of a metric's scale/offset."
    inputs = (Port("x", "tensor", "input, any shape"),)
    outputs = (Port("y", "tensor", "x * scale + shift, same shape"),)
    params = (
        Param("scale", "float", 1.0, "factor", min=-1e12, max=1e12),
        Param("shift", "float", 0.0, "added after scaling", min=-1e12, max=1e12),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"y": shapes["x"] or (1,)}

    def rowwise(self):
        return True  # a function of the row's input alone

    def forward(self, ctx, x):
        return {"y": x * self.p["scale"] + self.p["shift"]}


NODE = Affine
