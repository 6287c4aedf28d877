"""loss.term: adds another node's loss output (e.g. the TM's self-supervised loss)."""
from ..node import Node
from ..graph.spec import Param, Port
from ..kernels.mlp import Scale
from ..kernels.tape import apply


class LossTerm(Node):
    type_name = "loss.term"
    category = "loss"
    doc = "Adds a loss computed by another node, times weight, to the training loss."
    is_loss = True
    inputs = (Port("value", "loss", "a loss output, e.g. htm.tm's 'loss'"),)
    outputs = (Port("loss", "loss", "weight * value"),)
    params = (Param("weight", "float", 1.0, "factor on this term", min=0.0, max=1e6),)

    @classmethod
    def infer(cls, p, shapes):
        return {"loss": ()}

    def hand_backward(self):
        return True

    def forward(self, ctx, value):
        w = self.p["weight"]
        if w == 1.0:
            return {"loss": value}  # nothing to compute, nothing to differentiate
        return {"loss": apply(Scale, value, w)}


NODE = LossTerm
