"""htm.sp: a differentiable spatial pooler with k-winners-take-all inhibition."""
import math

import torch
from torch import nn

from ..node import Node, flat_size, require
from ..spec import Param, Port


class SpatialPooler(Node):
    type_name = "htm.sp"
    category = "htm"
    doc = ("Maps an input onto columns; global inhibition keeps exactly 'winners' active. "
           "The columns' biases (their inhibition thresholds) learn by backprop; duty-cycle "
           "boosting is optional. Gradients flow through the winners only.")
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("columns", "sdr", "active columns, shape [columns], exactly 'winners' non-zero"),)
    params = (
        Param("columns", "int", 256, "number of columns", min=1, max=65536),
        Param("winners", "int", 5, "active columns per step (k)", min=1, max=65536),
        Param("potential_pct", "float", 1.0, "fraction of the inputs each column can connect to",
              min=0.001, max=1.0),
        Param("boost_strength", "float", 0.0, "duty-cycle boosting: exp(strength*(target-duty)); 0 is off",
              min=0.0, max=100.0),
        Param("duty_inertia", "float", 0.99, "moving-average inertia of the duty cycles", min=0.0, max=0.999999),
        Param("output", "str", "magnitude", "winners pass their overlap, or 1 (binary, straight-through)",
              choices=("magnitude", "binary")),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(p["winners"] <= p["columns"], "columns", f"winners ({p['winners']}) exceed columns ({p['columns']})")
        return {"columns": (p["columns"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n_in = flat_size(shapes["x"] or (1,))
        mask = n_in * p["columns"] if p["potential_pct"] < 1 else 0
        return (n_in + 1) * p["columns"] + mask + p["columns"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        n_in, c = flat_size(shapes["x"]), p["columns"]
        self.proj = nn.Linear(n_in, c)
        if p["potential_pct"] < 1.0:
            # Each column sees a random subset of the inputs (its potential pool).
            pool = torch.rand(c, n_in).argsort(dim=1) < max(1, math.ceil(p["potential_pct"] * n_in))
            self.register_buffer("potential", pool.float())
        else:
            self.potential = None
        self.register_buffer("duty", torch.full((c,), p["winners"] / c))

    def overlap(self, x):
        w = self.proj.weight if self.potential is None else self.proj.weight * self.potential
        return nn.functional.linear(x.flatten(1), w, self.proj.bias)

    def forward(self, ctx, x):
        p = self.p
        overlap = self.overlap(x)
        score = overlap.detach()
        if p["boost_strength"] > 0:
            target = p["winners"] / p["columns"]
            score = (score.clamp_min(0) + 1) * torch.exp(p["boost_strength"] * (target - self.duty))
        winners = score.topk(p["winners"], dim=1).indices
        mask = torch.zeros_like(overlap).scatter_(1, winners, 1.0)
        if p["output"] == "binary":
            out = mask + (overlap - overlap.detach()) * mask  # forward 0/1, gradient via winners
        else:
            out = overlap * mask
        if self.training:
            inertia = p["duty_inertia"]
            self.duty.mul_(inertia).add_(mask.mean(0), alpha=1 - inertia)
        return {"columns": out}

    def entropy_ratio(self) -> float:
        """Entropy of column usage over its maximum, log(columns): 1.0 is perfectly even."""
        d = self.duty / self.duty.sum().clamp_min(1e-12)
        h = -(d * d.clamp_min(1e-12).log()).sum()
        return float(h / math.log(self.p["columns"])) if self.p["columns"] > 1 else 1.0


NODE = SpatialPooler
