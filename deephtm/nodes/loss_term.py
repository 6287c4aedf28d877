"""loss.term: adds another node's loss output (e.g. the TM's self-supervised loss)."""
from ..node import Node
from ..graph.spec import Param, Port


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

    def forward(self, ctx, value):
        return {"loss": self.p["weight"] * value}


NODE = LossTerm
