"""metric.touch_accuracy: recognition accuracy as a function of the number of touches."""
from collections import deque

import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class TouchAccuracy(Node):
    type_name = "metric.touch_accuracy"
    version = 2  # 2: the windows are saved (extra state)
    category = "metric"
    doc = ("Accuracy of the object guessed after 1, 2, ..., max_touches touches, each over its last "
           "'window' episodes: accuracy_after_touches (a list) and accuracy_after_N_touches for N = 'report'.")
    is_metric = True
    inputs = (
        Port("pred", "tensor", "guessed object index, shape [1], or scores, shape [objects]"),
        Port("target", "tensor", "true object index, shape [1]"),
        Port("touch", "tensor", "touches made so far, this one included, shape [1]"),
    )
    outputs = ()
    params = (
        Param("max_touches", "int", 10, "touch counts reported (1..max_touches)", min=1, max=1000),
        Param("report", "int", 5, "touch count also reported as its own number (the progress bar's)",
              min=1, max=1000),
        Param("window", "int", 500, "episodes in each moving average", min=1, max=10**7),
        Param("prefix", "str", "", "put before the metric names (e.g. 'bayes_' for a baseline), so "
              "several of these nodes can score one run"),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("target", "touch"):
            s = shapes[port]
            require(s is None or tuple(s) == (1,), port, f"expected shape [1], got {list(s or [])}")
        s = shapes["pred"]
        require(s is None or len(s) == 1, "pred", f"expected a 1-D shape, got {list(s or [])}")
        require(p["report"] <= p["max_touches"], "touch", f"report ({p['report']}) exceeds max_touches")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return p["max_touches"] * p["window"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.hits = [deque(maxlen=p["window"]) for _ in range(p["max_touches"])]

    def forward(self, ctx, pred, target, touch):
        pred = pred.detach()
        guess = pred.reshape(-1).round().long() if pred.shape[1] == 1 else pred.argmax(1)
        right = (guess == target.detach().reshape(-1).round().long()).tolist()
        for t, r in zip(touch.detach().reshape(-1).round().long().tolist(), right):
            if 1 <= t <= self.p["max_touches"]:
                self.hits[t - 1].append(float(r))
        return {}

    def get_extra_state(self):
        # One row per touch count, padded with -1 (a hit is 0 or 1).
        rows = torch.full((len(self.hits), self.p["window"]), -1.0)
        for row, h in zip(rows, self.hits):
            row[: len(h)] = torch.tensor(list(h))
        return {"hits": rows}

    def set_extra_state(self, state):
        self.hits = [deque([v for v in row if v >= 0], maxlen=self.p["window"]) for row in state["hits"].tolist()]

    def value(self):
        if not all(self.hits):  # until a whole episode has been scored
            return None
        curve = [sum(h) / len(h) for h in self.hits]
        # The float first: the progress bar shows a node's first value.
        pre = self.p["prefix"]
        return {f"{pre}accuracy_after_{self.p['report']}_touches": curve[self.p["report"] - 1],
                f"{pre}accuracy_after_touches": curve}


NODE = TouchAccuracy
