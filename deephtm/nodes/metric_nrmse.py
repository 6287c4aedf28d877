"""metric.nrmse: RMSE divided by the standard deviation of the target.

Two protocols: over a moving window, divided by the target's std over the same window (the
default, for live curves); or over every step from 'start' on, divided by the std of the
whole series seen so far (Cui et al. 2016's NYC taxi protocol: one pass, so at the end that
is the std of the whole series)."""
import math

import torch

from ..node import QueuedSteps, require_same_shape
from ..graph.spec import Param, Port




class NRMSE(QueuedSteps):
    type_name = "metric.nrmse"
    version = 2  # 2: the window-0 sums and the series' moments are buffers
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
        return 3 * max(p["window"], 1) + 1 + 7  # + the step counter, the sums and the moments

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        w = max(p["window"], 1)
        # Per step: mean squared error, mean target and mean squared target over the batch.
        self.register_buffer("stats", torch.zeros(3, w))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        # float64 buffers, so a checkpoint holds them. Window 0: the sums of the squared errors,
        # the targets, the squared targets, and the items; every target: count, mean, M2 (Welford).
        self.register_buffer("sums", torch.zeros(4, dtype=torch.float64))
        self.register_buffer("series", torch.zeros(3, dtype=torch.float64))
        # Moving window: each step's prediction and target wait in a queue, [steps, 2, items],
        # and enter `stats` a block at a time (flush: on a full queue, a read, a checkpoint):
        # one copy per step instead of the few operators of its statistics.
        self._queue: torch.Tensor | None = None
        self._queued = 0

    def hand_backward(self):
        return True  # no weights, no outputs

    def forward(self, ctx, pred, target):
        p = self.p
        with torch.no_grad():
            t = target.detach()
            if p["divide_by"] == "series":
                n, mean, m2 = self.series.tolist()
                for v in t.double().reshape(-1).tolist():
                    n += 1
                    d = v - mean
                    mean += d / n
                    m2 += d * (v - mean)
                self.series.copy_(torch.tensor([n, mean, m2], dtype=torch.float64))
            if ctx.step < p["start"]:
                return {}
            if p["window"] == 0:
                e, td = (pred.detach() - t).double(), t.double()
                self.sums += torch.stack((e.pow(2).sum(), td.sum(), td.pow(2).sum(),
                                          torch.tensor(float(t.numel()), dtype=torch.float64, device=td.device)))
                return {}
            q = self._queue
            if q is None or q.shape[2] != t.numel() or q.device != t.device:
                self.flush()
                q = self._queue = self.stats.new_empty(min(self.QUEUE_STEPS, p["window"]), 2, t.numel())
            torch.stack((pred.detach().reshape(-1), t.reshape(-1)), out=q[self._queued])
            self._queued += 1
            if self._queued == q.shape[0]:
                self.flush()
        return {}

    def flush(self) -> None:
        """Move the queued steps' statistics into the window (in the order they came)."""
        k = self._queued
        if not k:
            return
        self._queued = 0
        with torch.no_grad():
            q = self._queue[:k]
            t = q[:, 1]
            e = q[:, 0] - t
            slots = torch.arange(int(self.count), int(self.count) + k, device=q.device) % self.p["window"]
            self.stats.index_copy_(1, slots, torch.stack((e * e, t, t * t)).mean(2))
            self.count.add_(k)


    @classmethod
    def migrate_state(cls, old_version, tensors, extra):
        # Version 1 kept these in Python and started them at zero on resume; so does this.
        # Exact for a moving window divided by the scored targets (the default).
        return dict(tensors, sums=torch.zeros(4, dtype=torch.float64),
                    series=torch.zeros(3, dtype=torch.float64)), extra

    def value(self):
        self.flush()
        if self.p["window"] == 0:
            err, tot, tot_sq, n = self.sums.tolist()
            if n == 0:
                return None
            mse, mean, sq = err / n, tot / n, tot_sq / n
        else:
            n = int(min(int(self.count), self.p["window"]))
            if n == 0:
                return None
            mse, mean, sq = self.stats[:, :n].mean(1).tolist()
        if self.p["divide_by"] == "series":
            k, _, m2 = self.series.tolist()
            std = math.sqrt(m2 / (k - 1)) if k > 1 else 0.0
        else:
            std = max(sq - mean * mean, 0.0) ** 0.5
        return (mse ** 0.5) / std if std > 0 else float("inf")


NODE = NRMSE
