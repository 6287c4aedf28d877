"""metric.accuracy: moving-average accuracy over the last N scored items, with learn and
relearn steps (Cui, Ahmad & Hawkins 2016: steps until the moving average reaches 95% of
its final value, before and after the task changes at 'swap_step')."""
import torch

from ..node import Node, require
from ..graph.spec import Param, Port


class Accuracy(Node):
    type_name = "metric.accuracy"
    version = 2  # 2: the window and the trace are saved (extra state)
    category = "metric"
    doc = ("Fraction of correct predictions among the last 'window' scored items (steps x streams "
           "where mask is 1). With swap_step, also the accuracy just before the swap and at the end, "
           "and the learn / relearn steps.")
    is_metric = True
    inputs = (Port("pred", "tensor", "predicted class index, shape [1], or logits/scores, shape [classes]"),
              Port("target", "tensor", "true class index, shape [1], or one-hot, shape [classes]"),
              Port("mask", "scalar", "score only where this is 1 (e.g. source.sequence's 'last')",
                   optional=True))
    outputs = ()
    params = (
        Param("window", "int", 100, "scored items in the moving average", min=1, max=10**7),
        Param("swap_step", "int", 0, "step where the task changes (0: none); splits the learn and "
              "relearn measurements", min=0, max=10**9),
        Param("fraction", "float", 0.95, "learn steps: steps until the average reaches this fraction "
              "of its final value", min=0.0, max=1.0),
        Param("history", "int", 1_000_000, "most scored items whose moving average is kept for the "
              "learn/relearn steps (oldest dropped)", min=1, max=10**8),
        Param("name", "str", "accuracy", "name in metrics.jsonl and summary.json"),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("pred", "target"):
            s = shapes[port]
            require(s is None or len(s) == 1, port, f"expected a 1-D shape, got {list(s or [])}")
        return {}

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.ring = [0.0] * p["window"]
        self.n = 0  # items scored so far
        self.hits = 0.0  # correct items in the ring
        self.trace: list[tuple[int, float]] = []  # (step, moving average) after each scored item

    @staticmethod
    def _classes(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1).round().long() if x.shape[1] == 1 else x.argmax(1)

    def forward(self, ctx, pred, target, mask=None):
        correct = (self._classes(pred.detach()) == self._classes(target.detach())).float()
        if mask is not None:
            keep = mask.detach().reshape(-1) > 0.5
            correct = correct[keep]
        w = self.p["window"]
        for c in correct.tolist():
            slot = self.n % w
            self.hits += c - self.ring[slot]
            self.ring[slot] = c
            self.n += 1
            self.trace.append((ctx.step, self.hits / min(self.n, w)))
        if len(self.trace) > self.p["history"]:
            del self.trace[: len(self.trace) - self.p["history"]]
        return {}

    def get_extra_state(self):
        # The ring and the trace as tensors: the trace may hold a million items.
        return {"n": self.n, "hits": self.hits, "ring": torch.tensor(self.ring, dtype=torch.float64),
                "trace_step": torch.tensor([s for s, _ in self.trace], dtype=torch.int64),
                "trace_value": torch.tensor([a for _, a in self.trace], dtype=torch.float64)}

    def set_extra_state(self, state):
        self.n, self.hits = int(state["n"]), float(state["hits"])
        self.ring = state["ring"].tolist()
        self.trace = list(zip(state["trace_step"].tolist(), state["trace_value"].tolist()))

    def value(self):
        if self.n == 0:
            return None
        name, swap = self.p["name"], self.p["swap_step"]
        out = {name: self.hits / min(self.n, self.p["window"])}
        before = [t for t in self.trace if not swap or t[0] < swap]
        after = [t for t in self.trace if swap and t[0] >= swap]
        if before:
            out["learn_steps"] = self._learn_steps(before, start=0)
            if swap:
                out[f"{name}_before_swap"] = before[-1][1]
        if after:
            out[f"{name}_after_swap"] = after[-1][1]
            out["relearn_steps"] = self._relearn_steps(after, swap)
        return out

    def _learn_steps(self, trace, start):
        """Steps from 'start' until the first full-window average >= fraction * final value."""
        full = trace[self.p["window"] - 1:] if len(trace) >= self.p["window"] else trace
        goal = self.p["fraction"] * trace[-1][1]
        return next(step for step, acc in full if acc >= goal) + 1 - start

    def _relearn_steps(self, trace, swap):
        """Steps from the swap until the average, having dipped below fraction * final value,
        is back at or above it (0 if it never dipped)."""
        goal = self.p["fraction"] * trace[-1][1]
        dipped = False
        for step, acc in trace:
            if acc < goal:
                dipped = True
            elif dipped:
                return step + 1 - swap
        return 0


NODE = Accuracy
