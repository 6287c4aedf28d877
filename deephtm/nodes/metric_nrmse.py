"""metric.nrmse: RMSE divided by the standard deviation of the target.

Two protocols: over a moving window, divided by the target's std over the same window (the
default, for live curves); or over every step from 'start' on, divided by the std of the
whole series seen so far (Cui et al. 2016's NYC taxi protocol: one pass, so at the end that
is the std of the whole series)."""
import math

import torch

from ..node import Node, require_same_shape
from ..graph.spec import Param, Port


class NRMSE(Node):
    type_name = "metric.nrmse"
    category = "metric"
    doc = ("Normalized RMSE: over the last 'window' steps / the target's std over those steps, or "
           "(window 0) over every step from 'start' on / the std chosen by 'divide_by'.")
    is_metric = True
    inputs = (Port("pred", "tensor", "prediction"), Port("target", "tensor", "target, same shape"))
    outputs = ()
    params = (
        Param("window", "int", 1000, "steps in the moving window (0: every step from 'start' on)",
              min=0, max=10**7),
        Param("start", "int", 0, "first step scored", min=0, max=10**9),
        Param("divide_by", "str", "scored", "std of the targets that are scored, or of the whole "
              "series (every target from step 0, scored or not)", choices=("scored", "series")),
        Param("name", "str", "nrmse", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        require_same_shape(shapes, "target", like="pred")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return 3 * max(p["window"], 1) + 1  # + the step counter

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        w = max(p["window"], 1)
        # Per step: mean squared error, mean target and mean squared target over the batch.
        self.register_buffer("stats", torch.zeros(3, w))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.sums = [0.0, 0.0, 0.0, 0]  # window 0: squared error, target, squared target, items
        self.series = [0, 0.0, 0.0]  # every target: count, mean, M2 (Welford, float64)

    def forward(self, ctx, pred, target):
        p = self.p
        with torch.no_grad():
            t = target.detach()
            if p["divide_by"] == "series":
                for v in t.double().reshape(-1).tolist():
                    n, mean, m2 = self.series
                    n += 1
                    d = v - mean
                    mean += d / n
                    self.series = [n, mean, m2 + d * (v - mean)]
            if ctx.step < p["start"]:
                return {}
            if p["window"] == 0:
                e, td = (pred.detach() - t).double(), t.double()
                self.sums[0] += float(e.pow(2).sum())
                self.sums[1] += float(td.sum())
                self.sums[2] += float(td.pow(2).sum())
                self.sums[3] += t.numel()
                return {}
            # Few ops per step (it runs every step of every run): one stacked mean, one copy.
            t = t.reshape(-1)
            e = pred.detach().reshape(-1) - t
            slot = int(self.count) % p["window"]
            self.stats.select(1, slot).copy_(torch.stack((e * e, t, t * t)).mean(1))
            self.count.add_(1)
        return {}

    def value(self):
        if self.p["window"] == 0:
            n = self.sums[3]
            if n == 0:
                return None
            mse, mean, sq = self.sums[0] / n, self.sums[1] / n, self.sums[2] / n
        else:
            n = int(min(int(self.count), self.p["window"]))
            if n == 0:
                return None
            mse, mean, sq = self.stats[:, :n].mean(1).tolist()
        if self.p["divide_by"] == "series":
            k, _, m2 = self.series
            std = math.sqrt(m2 / (k - 1)) if k > 1 else 0.0
        else:
            std = max(sq - mean * mean, 0.0) ** 0.5
        return (mse ** 0.5) / std if std > 0 else float("inf")


NODE = NRMSE
