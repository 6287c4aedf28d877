"""metric.nrmse: RMSE over a moving window divided by the target's standard deviation."""
import torch

from ..node import Node, require
from ..spec import Param, Port


class NRMSE(Node):
    type_name = "metric.nrmse"
    category = "metric"
    doc = "Normalized RMSE over the last 'window' steps: RMSE / std of the target over the same steps."
    is_metric = True
    inputs = (Port("pred", "tensor", "prediction"), Port("target", "tensor", "target, same shape"))
    outputs = ()
    params = (
        Param("window", "int", 1000, "steps in the moving window", min=1, max=10**7),
        Param("name", "str", "nrmse", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        a, b = shapes["pred"], shapes["target"]
        require(a is None or b is None or a == b, "target", f"shape {list(b or [])} differs from pred's {list(a or [])}")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return 3 * p["window"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        w = p["window"]
        # Per step: mean squared error, mean target and mean squared target over the batch.
        self.register_buffer("stats", torch.zeros(3, w))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, ctx, pred, target):
        with torch.no_grad():
            t = target.detach()
            row = torch.stack([(pred.detach() - t).pow(2).mean(), t.mean(), t.pow(2).mean()])
            self.stats[:, self.count % self.p["window"]] = row
            self.count += 1
        return {}

    def value(self):
        n = int(min(int(self.count), self.p["window"]))
        if n == 0:
            return None
        mse, mean, sq = self.stats[:, :n].mean(1).tolist()
        std = max(sq - mean * mean, 0.0) ** 0.5
        return (mse ** 0.5) / std if std > 0 else float("inf")


NODE = NRMSE
