"""loss.ce: cross-entropy between logits and a target class."""
import torch.nn.functional as F

from ..node import Node, require
from ..graph.spec import Param, Port
from ..kernels.mlp import CrossEntropy, use_fused


class CrossEntropyLoss(Node):
    type_name = "loss.ce"
    fused = True  # forward and backward as one autograd node (False: torch's functions through autograd)
    category = "loss"
    doc = ("Cross-entropy of logits against a target class index (shape [1]) or a one-hot / "
           "probability vector (shape [classes]); added (times weight) to the training loss.")
    is_loss = True
    inputs = (Port("logits", "tensor", "logits, shape [classes]"),
              Port("target", "tensor", "class index, shape [1], or class probabilities, shape [classes]"),
              Port("mask", "scalar", "per-stream weight (e.g. 1 only on scored steps)", optional=True))
    outputs = (Port("loss", "loss", "weight * mean cross-entropy"),)
    params = (Param("weight", "float", 1.0, "factor on this term", min=0.0, max=1e6),)

    @classmethod
    def infer(cls, p, shapes):
        lg, t = shapes["logits"], shapes["target"]
        require(lg is None or len(lg) == 1, "logits", f"expected shape [classes], got {list(lg or [])}")
        require(lg is None or t is None or tuple(t) in ((1,), ()) or tuple(t) == tuple(lg), "target",
                f"expected shape [1] or {list(lg or [])}, got {list(t or [])}")
        return {"loss": ()}

    def forward(self, ctx, logits, target, mask=None):
        probs = target.dim() == 2 and target.shape[1] == logits.shape[1]  # else class indices
        if self.fused and use_fused(logits):
            m = None if mask is None else mask.reshape(-1).to(logits.dtype)
            return {"loss": CrossEntropy.apply(logits, None if probs else target.reshape(-1).long(),
                                               target.to(logits.dtype) if probs else None, m, self.p["weight"])}
        if probs:
            per = -(target * F.log_softmax(logits, 1)).sum(1)
        else:
            per = F.cross_entropy(logits, target.reshape(-1).long(), reduction="none")
        if mask is not None:
            m = mask.reshape(-1).to(per.dtype)
            per = per * m
            return {"loss": self.p["weight"] * per.sum() / m.sum().clamp_min(1.0)}
        return {"loss": self.p["weight"] * per.mean()}


NODE = CrossEntropyLoss
