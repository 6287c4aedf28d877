"""util.seasonal: a running profile of a value per slot of a period (e.g. per half hour of
the week), learned online from what has been observed, never from later values."""
import torch

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class SeasonalProfile(Node):
    type_name = "util.seasonal"
    category = "util"
    doc = ("Keeps a moving average of 'value' for each slot of a one-hot slot code (e.g. encoder.periodic "
           "of the day of week, one slot per step of the period). Outputs the average of the slot "
           "'ahead' slots later and of the current slot, as features for a readout. Not learned by backprop.")
    inputs = (Port("slot", "sdr", "one-hot slot code of the current step, shape [slots]"),
              Port("value", "tensor", "the value observed now, shape [1]"))
    outputs = (Port("profile", "tensor", "(average at the slot 'ahead' later, average at the current slot), "
                                         "shape [2]; the current value until a slot has been seen"),)
    params = (
        Param("ahead", "int", 1, "slots ahead of the current one for the first output (the horizon)",
              min=0, max=1_000_000),
        Param("rate", "float", 0.3, "moving-average rate: the weight of the newest observation", min=1e-6, max=1.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        v = shapes["value"]
        require(v is None or flat_size(v) == 1, "value", f"expected shape [1], got {list(v or [])}")
        return {"profile": (2,)}

    @classmethod
    def stream_state_count(cls, p, shapes):
        return 2 * flat_size(shapes["slot"] or (1,))

    def setup(self, batch, generator):
        n = flat_size(self.in_shapes["slot"])
        self.register_buffer("mean", torch.zeros(batch, n))
        self.register_buffer("seen", torch.zeros(batch, n, dtype=torch.bool))

    def forward(self, ctx, slot, value):
        n = self.mean.shape[1]
        v = value.detach().reshape(-1, 1)
        rows = torch.arange(slot.shape[0], device=slot.device)
        now = slot.detach().flatten(1).argmax(1)
        old = self.mean[rows, now]
        new = torch.where(self.seen[rows, now], old + self.p["rate"] * (v[:, 0] - old), v[:, 0])
        self.mean[rows, now] = new
        self.seen[rows, now] = True
        later = (now + self.p["ahead"]) % n
        ahead = torch.where(self.seen[rows, later], self.mean[rows, later], v[:, 0])
        return {"profile": torch.stack([ahead, new], dim=1)}


NODE = SeasonalProfile
