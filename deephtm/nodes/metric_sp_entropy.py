"""metric.sp_entropy: how evenly an SDR's units (e.g. the SP's columns) are used.

It counts each unit's wins over exactly the last 'window' steps (a ring of the per-step wins
minus what falls out of it), so a unit that stopped winning 'window' steps ago no longer counts,
as a moving average would still let it."""
import math

import torch

from ..node import QueuedSteps, flat_size
from ..graph.spec import Param, Port


QUEUE_VALUES = 1 << 20  # the most queued values (steps x streams x units)


class SDREntropy(QueuedSteps):
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
        # Each step's active units wait in a queue, [steps, streams, units], and enter the ring
        # and counts a block at a time (flush: on a full queue, a read, a checkpoint): one
        # comparison per step instead of the several operators of a ring update.
        self._queue: torch.Tensor | None = None
        self._queued = 0

    def hand_backward(self):
        return True  # no weights, no outputs

    def forward(self, ctx, columns):
        with torch.no_grad():
            on = columns.detach().flatten(1)
            q = self._queue
            if q is None or q.shape[1:] != on.shape or q.device != on.device:
                self.flush()
                steps = max(1, min(self.QUEUE_STEPS, self.p["window"], QUEUE_VALUES // on.numel()))
                q = self._queue = torch.empty((steps, *on.shape), dtype=torch.bool, device=on.device)
            torch.ne(on, 0, out=q[self._queued])
            self._queued += 1
            if self._queued == q.shape[0]:
                self.flush()
        return {}

    def flush(self) -> None:
        """Move the queued steps into the ring and the counts: the counts lose the ring slots
        the block overwrites and gain its wins (distinct slots, as the block is no longer than
        the window: the same as one step at a time)."""
        k = self._queued
        if not k:
            return
        self._queued = 0
        with torch.no_grad():
            wins = self._queue[:k].sum(1).clamp_max(255).to(torch.uint8)  # [k, units], over the streams
            start = int(self.steps)
            slots = torch.arange(start, start + k, device=wins.device) % self.p["window"]
            self.counts.sub_(self.ring.index_select(0, slots).sum(0)).add_(wins.sum(0))
            self.ring.index_copy_(0, slots, wins)
            self.steps.add_(k)


    def value(self):
        self.flush()
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
