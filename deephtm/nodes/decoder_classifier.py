"""decoder.classifier: a softmax classifier over symbols (HTM's SDR classifier, by backprop)."""
import torch
from torch import nn

from ..node import Node, flat_size
from ..graph.spec import Param, Port


class Classifier(Node):
    type_name = "decoder.classifier"
    category = "decoder"
    doc = ("Reads a code (e.g. the TM's active cells, which hold its predictions for the next step) "
           "and scores every class: logits for loss.ce, the most likely class, and that class one-hot (a "
           "symbol code for an SP downstream, e.g. a recogniser in front of a temporal memory).")
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("logits", "tensor", "unnormalized log-probabilities, shape [classes]"),
               Port("class", "tensor", "index of the most likely class, shape [1]"),
               Port("onehot", "tensor", "the most likely class one-hot, shape [classes]; no gradient"))
    params = (
        Param("classes", "int", 10, "number of classes (symbols)", min=2, max=1_000_000),
        Param("hidden", "int", 0, "units of a hidden ReLU layer (0: a linear readout, like HTM's SDR "
              "classifier)", min=0, max=65536),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"logits": (p["classes"],), "class": (1,), "onehot": (p["classes"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n = flat_size(shapes["x"] or (1,))
        if p["hidden"]:
            return (n + 1) * p["hidden"] + (p["hidden"] + 1) * p["classes"]
        return (n + 1) * p["classes"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        n = flat_size(shapes["x"])
        if p["hidden"]:
            self.net = nn.Sequential(nn.Linear(n, p["hidden"]), nn.ReLU(), nn.Linear(p["hidden"], p["classes"]))
        else:
            self.net = nn.Linear(n, p["classes"])

    def forward(self, ctx, x):
        logits = self.net(x.flatten(1))
        best = logits.detach().argmax(1, keepdim=True)
        return {"logits": logits, "class": best.float(),
                "onehot": torch.zeros_like(logits, requires_grad=False).scatter_(1, best, 1.0)}


NODE = Classifier
