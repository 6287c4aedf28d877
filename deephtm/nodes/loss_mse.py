"""loss.mse: mean squared error between a prediction and a target."""
from ..node import Node, require_same_shape
from ..graph.spec import Param, Port
from ..kernels.mlp import MSE, use_fused
from ..kernels.tape import apply, recording_tape


class MSELoss(Node):
    type_name = "loss.mse"
    fused = True  # forward and backward as one autograd node
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

    def hand_backward(self):
        return True

    def forward(self, ctx, pred, target):
        if use_fused(pred) and pred.shape == target.shape:
            if recording_tape() is not None:  # a step without autograd: the function, always
                return {"loss": apply(MSE, pred, target.to(pred.dtype), self.p["weight"])}
            if self.fused and pred.dtype == target.dtype:
                return {"loss": MSE.apply(pred, target, self.p["weight"])}
        return {"loss": self.p["weight"] * (pred - target).pow(2).mean()}


NODE = MSELoss
