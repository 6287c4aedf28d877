"""encoder.scalar: a number as a run of active bits (HTM's scalar encoder)."""
import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class ScalarEncoder(Node):
    type_name = "encoder.scalar"
    category = "encoder"
    doc = ("Maps a number in [min, max] (clipped) onto 'size' bits with 'active' neighbouring bits on: "
           "close values share bits, far ones share none.")
    inputs = (Port("x", "tensor", "the value, shape [1]"),)
    outputs = (Port("code", "sdr", "shape [size], exactly 'active' bits on"),)
    params = (
        Param("size", "int", 100, "bits", min=1, max=1_000_000),
        Param("active", "int", 5, "neighbouring bits on", min=1, max=1_000_000),
        Param("min", "float", -1.0, "value of the first position", min=-1e12, max=1e12),
        Param("max", "float", 1.0, "value of the last position", min=-1e12, max=1e12),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(p["active"] <= p["size"], "x", f"active ({p['active']}) exceeds size ({p['size']})")
        require(p["max"] > p["min"], "x", f"max ({p['max']}) must exceed min ({p['min']})")
        s = shapes["x"]
        require(s is None or tuple(s) == (1,), "x", f"expected shape [1], got {list(s or [])}")
        return {"code": (p["size"],)}

    def rowwise(self):
        return True  # a function of the row's input alone

    def hand_backward(self):
        return True  # no weights, and its code passes no gradient back to x

    def forward(self, ctx, x):
        p = self.p
        positions = p["size"] - p["active"] + 1
        frac = ((x[:, 0] - p["min"]) / (p["max"] - p["min"])).clamp(0, 1).nan_to_num(0.0)
        first = torch.round(frac * (positions - 1)).long()
        idx = first.unsqueeze(1) + torch.arange(p["active"], device=x.device)
        code = torch.zeros(x.shape[0], p["size"], device=x.device).scatter_(1, idx, 1.0)
        # A NaN or infinite value turns its whole code into NaN (x * 0), so that training stops
        # on it as it would on the raw value instead of encoding it as an edge of the range.
        return {"code": code + x[:, :1].detach() * 0}


NODE = ScalarEncoder
