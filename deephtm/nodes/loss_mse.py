"""loss.mse: mean squared error between a prediction and a target."""
from ..node import Node, require_same_shape
from ..graph.spec import Param, Port


class MSELoss(Node):
    type_name = "loss.mse"
    category = "loss"
    doc = "Mean squared error, added (times weight) to the training loss."
    is_loss = True
    inputs = (Port("pred", "tensor", "prediction"), Port("target", "tensor", "target, same shape"))
    outputs = (Port("loss", "loss", "weight * mean squared error"),)
    params = (Param("weight", "float", 1.0, "factor on this term", min=0.0, max=1e6),)

    @classmethod
    def infer(cls, p, shapes):
        require_same_shape(shapes, "target", like="pred")
        return {"loss": ()}

    def forward(self, ctx, pred, target):
        return {"loss": self.p["weight"] * (pred - target).pow(2).mean()}


NODE = MSELoss
