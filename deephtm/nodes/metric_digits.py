"""metric.digits: how good generated digit images are.

image_mse is the mean squared pixel error against the real next digit. generated_accuracy is
the accuracy of a classifier trained on real digits (logistic regression on the split that
source.digits holds out, so it never saw the source's images) applied to the generated images:
a generator that draws the right digit clearly enough to be read scores high even though it
cannot know which handwriting sample comes next. At the end of a run the last generated image
of each class is saved next to a real one as a PNG grid in the run directory.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..errors import GraphError, node_where
from ..node import Node, require
from ..png import image_grid, write_png
from ..graph.spec import Param, Port
from .source_digits import SIDE, digits_split


class DigitsMetric(Node):
    type_name = "metric.digits"
    version = 2  # 2: the windows and the last images are saved (extra state)
    category = "metric"
    doc = ("Generated 8x8 digits: image_mse against the real next digit and generated_accuracy, the "
           "accuracy of a logistic-regression classifier trained on the held-out real digits, over the "
           "last 'window' scored images (where mask is 1). Writes a PNG grid (real row above generated row) into the run directory.")
    is_metric = True
    inputs = (
        Port("pred", "image", "generated image, shape [1, 8, 8], values 0..1"),
        Port("target", "image", "the real image, shape [1, 8, 8]"),
        Port("label", "tensor", "the real image's class, shape [1]"),
        Port("mask", "scalar", "score only where this is 1 (e.g. source.sequence's 'last')", optional=True),
    )
    outputs = ()
    params = (
        Param("window", "int", 500, "images in the moving averages", min=1, max=10**7),
        Param("holdout", "float", 0.3, "held-out fraction; must match source.digits", min=0.05, max=0.9),
        Param("seed", "int", 0, "split seed; must match source.digits", min=0, max=2**31 - 1),
        Param("prefix", "str", "", "put before the metric names (e.g. 'no_tm_' for an ablation's "
              "decoder), so several of these nodes can score one run"),
        Param("png", "str", "generated_digits.png", "file written into the run directory at the end "
              "(empty: none)"),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("pred", "target"):
            s = shapes[port]
            require(s is None or tuple(s) == (1, SIDE, SIDE), port, f"expected shape [1, 8, 8], got {list(s or [])}")
        lab = shapes["label"]
        require(lab is None or tuple(lab) == (1,), "label", f"expected a class index, shape [1], got {list(lab or [])}")
        require("/" not in p["png"] and "\\" not in p["png"] and p["png"] not in (".", ".."), "png",
                "expected a plain file name, written into the run directory")
        return {}

    @classmethod
    def param_count(cls, p, shapes):
        return (SIDE * SIDE + 1) * 10 + 2 * p["window"] + 20 * SIDE * SIDE

    def setup(self, batch, generator):
        try:
            from sklearn.linear_model import LogisticRegression
            train_x, train_y, held_x, held_y = digits_split(self.p["seed"], self.p["holdout"])
        except (ImportError, GraphError):
            raise GraphError("metric.digits needs scikit-learn (pip install 'deephtm[data]')",
                             where=node_where(getattr(self, "node_id", "?"))) from None
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(held_x.reshape(len(held_x), -1), held_y)
        # The real digits the classifier never saw (those the source shows): its reference accuracy.
        self.real_accuracy = float(clf.score(train_x.reshape(len(train_x), -1), train_y))
        self.register_buffer("clf_w", torch.tensor(clf.coef_, dtype=torch.float32), persistent=False)
        self.register_buffer("clf_b", torch.tensor(clf.intercept_, dtype=torch.float32), persistent=False)
        self.sq_err: deque = deque(maxlen=self.p["window"])
        self.correct: deque = deque(maxlen=self.p["window"])
        self.last: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # class -> (real, generated)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class index of each image [B, 1, 8, 8] by the classifier trained on real digits."""
        return (images.flatten(1) @ self.clf_w.T + self.clf_b).argmax(1)

    def forward(self, ctx, pred, target, label, mask=None):
        with torch.no_grad():
            pred, target = pred.detach(), target.detach()
            labels = label.detach().reshape(-1).round().long()
            if mask is not None:
                keep = mask.detach().reshape(-1) > 0.5
                pred, target, labels = pred[keep], target[keep], labels[keep]
            self.sq_err.extend((pred - target).pow(2).flatten(1).mean(1).tolist())
            self.correct.extend((self.classify(pred) == labels).float().tolist())
            for b, c in enumerate(labels.tolist()):
                self.last[int(c)] = (target[b, 0].cpu(), pred[b, 0].cpu())
        return {}

    def get_extra_state(self):
        classes = sorted(self.last)
        empty = torch.zeros(0, SIDE, SIDE)
        return {"sq_err": torch.tensor(list(self.sq_err), dtype=torch.float64),
                "correct": torch.tensor(list(self.correct), dtype=torch.float64),
                "last_class": torch.tensor(classes, dtype=torch.int64),
                "last_real": torch.stack([self.last[c][0] for c in classes]) if classes else empty,
                "last_generated": torch.stack([self.last[c][1] for c in classes]) if classes else empty}

    def set_extra_state(self, state):
        w = self.p["window"]
        self.sq_err = deque(state["sq_err"].tolist(), maxlen=w)
        self.correct = deque(state["correct"].tolist(), maxlen=w)
        self.last = {c: (real, gen) for c, real, gen in
                     zip(state["last_class"].tolist(), state["last_real"], state["last_generated"])}

    def value(self):
        if not self.sq_err:
            return None
        pre = self.p["prefix"]
        out = {f"{pre}generated_accuracy": float(np.mean(self.correct)), f"{pre}image_mse": float(np.mean(self.sq_err))}
        if not pre:
            out["classifier_accuracy_real"] = self.real_accuracy
        return out

    def on_end(self, run_dir):
        if not self.p["png"] or not self.last:
            return
        classes = sorted(self.last)
        grid = image_grid([[self.last[c][0] for c in classes], [self.last[c][1] for c in classes]])
        write_png(run_dir / self.p["png"], grid)


NODE = DigitsMetric
