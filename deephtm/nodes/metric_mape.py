"""metric.mape: mean absolute error over mean absolute truth (Cui et al. 2016's MAPE)."""
import torch

from ..node import Node, require_same_shape
from ..graph.spec import Param, Port


class MAPE(Node):
    type_name = "metric.mape"
    version = 2  # 2: the sums are buffers (version 1 lost them on resume)
    category = "metric"
    doc = ("sum|pred - target| / sum|target| over every step from 'start' on, on the raw scale "
           "(x * scale + offset undoes the source's normalization). A fraction: 0.07 is 7%.")
    is_metric = True
    inputs = (Port("pred", "tensor", "prediction"), Port("target", "tensor", "target, same shape"))
    outputs = ()
    params = (
        Param("start", "int", 0, "first step scored (e.g. 10000 for the NYC taxi protocol)", min=0, max=10**9),
        Param("scale", "float", 1.0, "un-normalize: raw = x * scale + offset", min=-1e12, max=1e12),
        Param("offset", "float", 0.0, "un-normalize: raw = x * scale + offset", min=-1e12, max=1e12),
        Param("name", "str", "mape", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        require_same_shape(shapes, "target", like="pred")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return 2  # the two sums

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        # float64 buffers: checkpointed, and summed on the device without a sync per step.
        self.register_buffer("abs_err", torch.zeros((), dtype=torch.float64))
        self.register_buffer("abs_true", torch.zeros((), dtype=torch.float64))

    def forward(self, ctx, pred, target):
        if ctx.step >= self.p["start"]:
            s, o = self.p["scale"], self.p["offset"]
            raw_t = target.detach().double() * s + o
            raw_p = pred.detach().double() * s + o
            self.abs_err += (raw_p - raw_t).abs().sum()
            self.abs_true += raw_t.abs().sum()
        return {}

    def value(self):
        err, true = float(self.abs_err), float(self.abs_true)
        if true <= 0:
            return None
        return err / true


NODE = MAPE
