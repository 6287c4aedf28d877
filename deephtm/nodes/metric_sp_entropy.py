"""metric.sp_entropy: how evenly an SDR's units (e.g. the SP's columns) are used.

It counts each unit's wins over exactly the last 'window' steps (a ring of the per-step wins
minus what falls out of it), so a unit that stopped winning 'window' steps ago no longer counts,
as a moving average would still let it."""
import math

import torch

from ..node import Node, flat_size
from ..graph.spec import Param, Port


class SDREntropy(Node):
    type_name = "metric.sp_entropy"
    category = "metric"
    version = 2  # version 1 averaged the activity with a moving average ('inertia')
    doc = ("Column usage over the last 'window' steps: the entropy of each unit's share of the wins "
           "over its maximum log(units) (1.0 when every column wins equally often, 0 when one does "
           "all), and the number of units that won at least once.")
    is_metric = True
    inputs = (Port("columns", "sdr", "an SDR, e.g. htm.sp's 'columns'"),)
    outputs = ()
    params = (
        Param("window", "int", 1000, "steps counted (the last 'window')", min=1, max=10**6),
        Param("name", "str", "sp_entropy", "name of the entropy ratio in metrics.jsonl and summary.json"),
        Param("active_name", "str", "sp_active_columns",
              "name of the count of units that won in the window"),
        Param("inertia", "float", 0.999, "unused: the window count replaced the moving average; kept so "
              "older graph files load", min=0.0, max=0.999999),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return (p["window"] + 1) * flat_size(shapes["columns"] or (1,)) + 1

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        n = flat_size(shapes["columns"])
        # Wins per step and unit (summed over the streams of a batch, up to 255), and their total.
        self.register_buffer("ring", torch.zeros(p["window"], n, dtype=torch.uint8))
        self.register_buffer("counts", torch.zeros(n, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def hand_backward(self):
        return True  # no weights, no outputs

    def forward(self, ctx, columns):
        with torch.no_grad():
            wins = (columns.detach().flatten(1) != 0).sum(0).clamp_max(255).to(torch.uint8)
            slot = self.ring[int(self.steps) % self.p["window"]]
            self.counts.sub_(slot).add_(wins)
            slot.copy_(wins)
            self.steps.add_(1)
        return {}

    def value(self):
        total = int(self.counts.sum())
        if total == 0:
            return None
        return count_entropy_ratio(self.counts)

    def values(self, name):
        e = self.value()
        if e is None:
            return {}
        return {name: e, self.p["active_name"]: int((self.counts > 0).sum())}


def count_entropy_ratio(counts: torch.Tensor) -> float:
    """Entropy of the counts' shares over log(n): 1.0 when every unit counts the same."""
    n = counts.numel()
    if n <= 1:
        return 1.0
    share = counts.double() / counts.sum().clamp_min(1)
    h = -(share * share.clamp_min(1e-300).log()).sum()
    return float(h / math.log(n))


NODE = SDREntropy
