"""sensorimotor.object_layer: recognizes an object from features sensed at locations.

Each touch gives a location code (e.g. from gridcell.module, path-integrated over the
sensor's movements) and a feature. The layer learns which objects have which feature at
which location: a linear map of their outer product (location unit x feature) onto the
objects gives log-probabilities for this touch. Over the touches of an episode it adds them
up (a product of the touches' evidence, as in Bayesian inference with a uniform prior), so
every touch narrows down the objects consistent with everything sensed so far.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class ObjectLayer(Node):
    type_name = "sensorimotor.object_layer"
    category = "sensorimotor"
    doc = ("Object recognition from (location, feature) pairs: per touch, log-probabilities of the "
           "objects from a learned map of the location code x feature outer product; accumulated over "
           "the touches since 'reset' into 'evidence', whose best object is 'class'.")
    inputs = (
        Port("location", "tensor", "location code (e.g. gridcell.module's code), 1-D"),
        Port("feature", "tensor", "the sensed feature (e.g. one-hot), 1-D"),
        Port("reset", "scalar", "1 on the first touch of a new object: forget the evidence", optional=True),
    )
    outputs = (
        Port("logits", "tensor", "this touch's object scores, shape [objects] (train these with loss.ce)"),
        Port("evidence", "tensor", "summed log-probabilities since the last reset, shape [objects]"),
        Port("class", "tensor", "the most likely object so far, shape [1]"),
    )
    params = (Param("objects", "int", 10, "number of objects", min=2, max=100000),)

    @classmethod
    def infer(cls, p, shapes):
        for port in ("location", "feature"):
            s = shapes[port]
            require(s is not None and len(s) == 1, port, f"expected a 1-D code, got {list(s or [])}")
        return {"logits": (p["objects"],), "evidence": (p["objects"],), "class": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        g, f = flat_size(shapes["location"] or (1,)), flat_size(shapes["feature"] or (1,))
        return (g * f + 1) * p["objects"] + p["objects"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        g, f = shapes["location"][0], shapes["feature"][0]
        self.map = nn.Linear(g * f, p["objects"])
        nn.init.zeros_(self.map.weight)  # no evidence for any object before learning

    def setup(self, batch, generator):
        self.register_buffer("acc", torch.zeros(batch, self.p["objects"]))

    def forward(self, ctx, location, feature, reset=None):
        pair = (location.unsqueeze(2) * feature.unsqueeze(1)).flatten(1)
        logits = self.map(pair)
        past = self.acc
        if reset is not None:
            past = past * (reset.detach().reshape(-1, 1) <= 0.5)
        evidence = past + F.log_softmax(logits, 1).detach()
        self.acc = evidence
        return {"logits": logits, "evidence": evidence, "class": evidence.argmax(1, keepdim=True).float()}


NODE = ObjectLayer
