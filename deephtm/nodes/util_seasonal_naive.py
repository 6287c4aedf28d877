"""util.seasonal_naive: the seasonal naive forecasts, the mean of the values last seen at the
slot being predicted (e.g. the same half hour a week before, or over the last four weeks)."""
import torch

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class SeasonalNaive(Node):
    type_name = "util.seasonal_naive"
    category = "util"
    doc = ("Keeps the last 'periods' values observed at each slot of a one-hot slot code (e.g. "
           "encoder.periodic of the day of week, one slot per step of the week) and outputs their "
           "mean at the slot 'ahead' slots later: with periods 1, the value one period before the "
           "step predicted. Only observed values are used. Not learned by backprop.")
    inputs = (Port("slot", "sdr", "one-hot slot code of the current step, shape [slots]"),
              Port("value", "tensor", "the value observed now, shape [1]"))
    outputs = (Port("y", "tensor", "mean of the last 'periods' values seen at the slot 'ahead' later "
                                   "(fewer until seen that often; the current value until seen once), "
                                   "shape [1]"),)
    params = (
        Param("ahead", "int", 1, "slots ahead of the current one (the horizon)", min=0, max=1_000_000),
        Param("periods", "int", 1, "values averaged per slot, newest first", min=1, max=1000),
    )

    @classmethod
    def infer(cls, p, shapes):
        v = shapes["value"]
        require(v is None or flat_size(v) == 1, "value", f"expected shape [1], got {list(v or [])}")
        return {"y": (1,)}

    @classmethod
    def stream_state_count(cls, p, shapes):
        return (p["periods"] + 1) * flat_size(shapes["slot"] or (1,))  # every stream's own history

    def setup(self, batch, generator):
        n = flat_size(self.in_shapes["slot"])
        self.register_buffer("seen_values", torch.zeros(batch, n, self.p["periods"]))  # newest first
        self.register_buffer("count", torch.zeros(batch, n, dtype=torch.long))

    def forward(self, ctx, slot, value):
        n, k = self.seen_values.shape[1], self.p["periods"]
        v = value.detach().reshape(-1)
        rows = torch.arange(slot.shape[0], device=slot.device)
        now = slot.detach().flatten(1).argmax(1)
        self.seen_values[rows, now] = torch.cat([v.unsqueeze(1), self.seen_values[rows, now, :-1]], dim=1)
        self.count[rows, now] += 1
        later = (now + self.p["ahead"]) % n
        seen = self.count[rows, later].clamp_max(k)
        mean = self.seen_values[rows, later].sum(1) / seen.clamp_min(1)
        return {"y": torch.where(seen > 0, mean, v).unsqueeze(1)}


NODE = SeasonalNaive
