"""encoder.prototypes: a spatial pooler that learns by competition, not by backprop.

Each unit holds a prototype (a unit vector in the input space). An input, centred on the
running mean of the inputs and scaled to unit length, activates the 'winners' units whose
prototypes are most similar to it; each winner then moves its prototype a step towards the
input (the Hebbian rule of HTM's spatial pooler, and of online k-means). Boosting gives rarely
used units a head start, so every unit ends up owning a region of the input space.

Why not the differentiable SP: images of one class differ pixel by pixel, and an SP trained only
by a downstream loss picks winners that tell the classes apart hardly better than chance (the same
share of columns between two samples of one digit as between a 2 and a 3). A temporal memory
learns a transition only when its input recurs, so it needs a code whose active set stays the
same for inputs alike; prototypes give that: similar inputs are near the same prototypes.
"""
import torch
import torch.nn.functional as F

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port
from .htm_sp import k_winners_mask


class PrototypeEncoder(Node):
    type_name = "encoder.prototypes"
    category = "encoder"
    doc = ("Competitive learning: the input, centred on the running mean and scaled to unit length, "
           "activates the 'winners' units whose prototypes are most similar (cosine), and the winners' "
           "prototypes move 'rate' of the way towards it. Duty-cycle boosting shares the units out. "
           "Output: a binary SDR whose active set is alike for alike inputs, for a temporal memory. "
           "Learns without gradients; nothing upstream gets one from it.")
    inputs = (Port("x", "tensor", "input, any shape (flattened), e.g. an image"),)
    outputs = (Port("code", "sdr", "1 for the winning units, else 0; shape [units]"),)
    params = (
        Param("units", "int", 128, "prototypes (the SDR's size)", min=1, max=65536),
        Param("winners", "int", 12, "active units per step", min=1, max=65536),
        Param("rate", "float", 0.05, "step of a winner's prototype towards the input (0 with the "
              "constant schedule: fixed random prototypes)", min=0.0, max=1.0),
        Param("schedule", "str", "constant", "constant: every step moves a winner 'rate' of the way; "
              "average: a prototype is the mean of the inputs it has won (online k-means: the step is "
              "1 / its wins so far, never below 'rate'), so it settles and the codes stop drifting",
              choices=("constant", "average")),
        Param("boost_strength", "float", 2.0, "a unit's score is multiplied by exp(strength * "
              "(target - duty) / target), target = winners / units; 0 is off", min=0.0, max=100.0),
        Param("duty_inertia", "float", 0.999, "moving-average inertia of the duty cycles and of the "
              "input mean", min=0.0, max=0.999999),
    )

    @classmethod
    def infer(cls, p, shapes):
        x = shapes["x"]
        require(x is None or flat_size(x) >= 1, "x", "needs at least one feature")
        require(p["winners"] <= p["units"], "x", f"winners ({p['winners']}) exceed units ({p['units']})")
        return {"code": (p["units"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n = flat_size(shapes["x"] or (1,))
        return (n + 2) * p["units"] + n + 1

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        n = flat_size(shapes["x"])
        # Buffers, not parameters: the optimizer must not touch them.
        self.register_buffer("prototypes", F.normalize(torch.randn(p["units"], n), dim=1))
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))  # training steps so far
        self.target = p["winners"] / p["units"]
        self.register_buffer("duty", torch.full((p["units"],), self.target))
        self.register_buffer("wins", torch.zeros(p["units"]))  # inputs each unit has won so far

    def forward(self, ctx, x):
        p = self.p
        x = x.detach().flatten(1).to(self.prototypes.dtype)
        inertia = p["duty_inertia"]
        if self.training:
            # A plain average over the first steps, so that the centre is right from the start.
            self.seen += 1
            keep = min(inertia, 1 - 1 / float(self.seen))
            self.mean.mul_(keep).add_(x.mean(0), alpha=1 - keep)
        v = F.normalize(x - self.mean, dim=1)
        # Similarity is in [-1, 1]; shifted to [0, 2] so boosting only ever scales it up or down.
        boost = torch.exp(p["boost_strength"] * (self.target - self.duty) / self.target)
        score = (v @ self.prototypes.T + 1) * boost
        mask = k_winners_mask(score, p["winners"])
        if self.training:
            wins = mask.sum(0)
            won = wins > 0
            # Each winner moves towards the mean of the inputs it won this step.
            pull = (mask.T @ v)[won] / wins[won].unsqueeze(1) - self.prototypes[won]
            self.wins += wins
            step = torch.full_like(wins[won], p["rate"])
            if p["schedule"] == "average":
                step = torch.maximum(step, wins[won] / self.wins[won])
            self.prototypes[won] = F.normalize(self.prototypes[won] + step.unsqueeze(1) * pull, dim=1)
            self.duty.mul_(inertia).add_(mask.mean(0), alpha=1 - inertia)
        return {"code": mask}


NODE = PrototypeEncoder
