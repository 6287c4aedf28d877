"""metric.position_error: how far a decoded position is from the true one."""
from collections import deque

import numpy as np
import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class PositionError(Node):
    type_name = "metric.position_error"
    version = 2  # 2: the window is saved (extra state)
    category = "metric"
    doc = ("Mean Euclidean distance between the predicted and the true position, as a fraction of the "
           "arena's side, over the last 'window' scored items (where mask is 1, e.g. after 100 moves).")
    is_metric = True
    inputs = (
        Port("pred", "tensor", "decoded position, shape [2]"),
        Port("target", "tensor", "true position, shape [2]"),
        Port("mask", "scalar", "score only where this is 1", optional=True),
    )
    outputs = ()
    params = (
        Param("side", "float", 1.0, "side of the arena the error is divided by", min=1e-6, max=1e6),
        Param("window", "int", 500, "scored items in the moving average", min=1, max=10**7),
        Param("name", "str", "position_error", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        a, b = shapes["pred"], shapes["target"]
        require(a is None or tuple(a) == (2,), "pred", f"expected a position, shape [2], got {list(a or [])}")
        require(b is None or tuple(b) == (2,), "target", f"expected a position, shape [2], got {list(b or [])}")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return p["window"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.errors: deque = deque(maxlen=p["window"])

    def forward(self, ctx, pred, target, mask=None):
        with torch.no_grad():
            err = (pred.detach() - target.detach()).norm(dim=1) / self.p["side"]
            if mask is not None:
                err = err[mask.detach().reshape(-1) > 0.5]
            self.errors.extend(err.tolist())
        return {}

    def get_extra_state(self):
        return {"errors": torch.tensor(list(self.errors), dtype=torch.float64)}

    def set_extra_state(self, state):
        self.errors = deque(state["errors"].tolist(), maxlen=self.p["window"])

    def value(self):
        return float(np.mean(self.errors)) if self.errors else None


NODE = PositionError
