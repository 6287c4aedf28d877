"""metric.anomaly: the mean raw anomaly score over a moving window."""
import torch

from ..node import Node
from ..graph.spec import Param, Port


class MeanAnomaly(Node):
    type_name = "metric.anomaly"
    version = 2  # 2: the window is saved (extra state)
    category = "metric"
    doc = "Mean of a raw anomaly score (e.g. htm.tm's 'anomaly') over the last 'window' steps from 'start' on."
    is_metric = True
    inputs = (Port("anomaly", "scalar", "raw anomaly in [0, 1] per stream"),)
    outputs = ()
    params = (
        Param("window", "int", 1000, "steps in the moving window", min=1, max=10**7),
        Param("start", "int", 0, "first step counted", min=0, max=10**9),
        Param("name", "str", "anomaly", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {}

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.ring = [0.0] * p["window"]
        self.n = 0
        self.total = 0.0

    def forward(self, ctx, anomaly):
        if ctx.step >= self.p["start"]:
            w = self.p["window"]
            v = float(anomaly.detach().float().mean())
            slot = self.n % w
            self.total += v - self.ring[slot]
            self.ring[slot] = v
            self.n += 1
            if slot == w - 1:  # re-sum once per lap: no drift
                self.total = sum(self.ring)
        return {}

    def get_extra_state(self):
        return {"n": self.n, "total": self.total, "ring": torch.tensor(self.ring, dtype=torch.float64)}

    def set_extra_state(self, state):
        self.n, self.total = int(state["n"]), float(state["total"])
        self.ring = state["ring"].tolist()

    def value(self):
        if self.n == 0:
            return None
        return self.total / min(self.n, self.p["window"])


NODE = MeanAnomaly
