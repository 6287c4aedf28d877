"""metric.sp_entropy: how evenly an SDR's units (e.g. the SP's columns) are used."""
import torch

from ..node import Node, flat_size
from ..graph.spec import Param, Port
from .htm_sp import usage_entropy_ratio


class SDREntropy(Node):
    type_name = "metric.sp_entropy"
    version = 2  # 2: the step count is saved (extra state)
    category = "metric"
    doc = ("Entropy of the units' duty cycles (moving averages of how often each unit is active) over "
           "its maximum log(units): 1.0 when every column is used equally, 0 when one column does all.")
    is_metric = True
    inputs = (Port("columns", "sdr", "an SDR, e.g. htm.sp's 'columns'"),)
    outputs = ()
    params = (
        Param("inertia", "float", 0.999, "moving-average inertia of the duty cycles", min=0.0, max=0.999999),
        Param("name", "str", "sp_entropy", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return flat_size(shapes["columns"] or (1,))

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.register_buffer("duty", torch.zeros(flat_size(shapes["columns"])))
        self.steps = 0

    def forward(self, ctx, columns):
        active = (columns.detach().flatten(1) != 0).float().mean(0)
        self.steps += 1
        # Early on, average plainly (1/steps), so the first steps are not swamped by the zeros.
        a = max(self.p["inertia"], 0.0) if self.steps * (1 - self.p["inertia"]) >= 1 else 1 - 1 / self.steps
        self.duty.mul_(a).add_(active, alpha=1 - a)
        return {}

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state):
        self.steps = int(state["steps"])

    def value(self):
        if self.steps == 0 or float(self.duty.sum()) == 0:
            return None
        return usage_entropy_ratio(self.duty)


NODE = SDREntropy
