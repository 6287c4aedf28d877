"""loss.mse: mean squared error between a prediction and a target."""
from ..node import Node, require
from ..spec import Param, Port


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
        a, b = shapes["pred"], shapes["target"]
        require(a is None or b is None or a == b, "target", f"shape {list(b or [])} differs from pred's {list(a or [])}")
        return {"loss": ()}

    def forward(self, ctx, pred, target):
        return {"loss": self.p["weight"] * (pred - target).pow(2).mean()}


NODE = MSELoss
