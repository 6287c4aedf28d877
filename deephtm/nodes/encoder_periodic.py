"""encoder.periodic: an angle (given as sin, cos) as a ring of bits with a few active,
like HTM's periodic scalar and date encoders."""
import math

import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class PeriodicEncoder(Node):
    type_name = "encoder.periodic"
    category = "encoder"
    doc = ("Turns an angle, given as (sin, cos) e.g. source.csv's time_of_day or day_of_week, into "
           "'size' bits on a ring with 'active' neighbouring bits on: nearby angles share bits.")
    inputs = (Port("x", "tensor", "(sin, cos) of the angle, shape [2]"),)
    outputs = (Port("code", "sdr", "shape [size], exactly 'active' bits on"),)
    params = (
        Param("size", "int", 48, "bits around the ring (one per bucket of the period)", min=1, max=1_000_000),
        Param("active", "int", 1, "neighbouring bits on, centred on the angle's bucket", min=1, max=1_000_000),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(p["active"] <= p["size"], "x", f"active ({p['active']}) exceeds size ({p['size']})")
        s = shapes["x"]
        require(s is None or tuple(s) == (2,), "x", f"expected (sin, cos), shape [2], got {list(s or [])}")
        return {"code": (p["size"],)}

    def rowwise(self):
        return True  # a function of the row's input alone

    def forward(self, ctx, x):
        size, w = self.p["size"], self.p["active"]
        angle = torch.atan2(x[:, 0], x[:, 1]).remainder(2 * math.pi)
        # Round to the nearest bucket: timestamps on bucket boundaries must not slip one back.
        centre = torch.round(angle / (2 * math.pi) * size).long()
        idx = (centre.unsqueeze(1) + torch.arange(w, device=x.device) - w // 2).remainder(size)
        return {"code": torch.zeros(x.shape[0], size, device=x.device).scatter_(1, idx, 1.0)}


NODE = PeriodicEncoder
