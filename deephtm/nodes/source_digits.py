"""source.digits: scikit-learn's bundled 8x8 handwritten digits in a repeating class order.

The digits ship inside scikit-learn (load_digits reads a file in the package: no download).
A fixed, seeded split keeps 'holdout' of each class aside: the source never shows those, so
a classifier trained on them (metric.generated_images) judges generated images fairly.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import GraphError, node_where
from ..node import Node, require
from ..graph.spec import Param, Port

SIDE = 8  # the images are 8x8, values 0..16


def require_class_index(shapes: dict, port: str) -> None:
    """infer(): a digit class input is one index, shape [1]."""
    s = shapes[port]
    require(s is None or tuple(s) == (1,), port, f"expected a class index, shape [1], got {list(s or [])}")


def training_images(p: dict, node_id: str) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The training part of the split (images [N, 8, 8]) and each class's row numbers."""
    try:
        x, y, _, _ = digits_split(p["seed"], p["holdout"])
    except GraphError as exc:
        raise GraphError(exc.message, where=node_where(node_id)) from None
    return torch.from_numpy(x), [np.flatnonzero(y == c) for c in range(10)]


@functools.lru_cache(maxsize=8)
def digits_split(seed: int, holdout: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images [N,8,8] in 0..1, train labels, held-out images, held-out labels),
    split per class so every class keeps the same held-out fraction."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GraphError("source.digits needs scikit-learn (pip install 'deephtm[data]')") from None
    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(holdout * len(idx)))
        test.extend(idx[:k])
        train.extend(idx[k:])
    train, test = np.sort(train), np.sort(test)
    return images[train], labels[train], images[test], labels[test]


class DigitsSource(Node):
    type_name = "source.digits"
    category = "source"
    doc = ("scikit-learn's 8x8 digits (bundled, no download) in the class order 0, 1, ..., 9, 0, ...: "
           "at each step a random training sample of the current class. Outputs the image, the next "
           "image (the target) and both labels. Each stream starts at its own class.")
    inputs = ()
    outputs = (
        Port("image", "image", "the current digit, shape [1, 8, 8], values 0..1"),
        Port("label", "tensor", "the current digit's class, shape [1]"),
        Port("target", "image", "the next digit in the sequence, shape [1, 8, 8]"),
        Port("target_label", "tensor", "the next digit's class, shape [1]"),
    )
    params = (
        Param("holdout", "float", 0.3, "fraction of each class kept aside (never shown; the metric's "
              "classifier trains on it)", min=0.05, max=0.9),
        Param("step_classes", "int", 1, "classes advanced per step (1: 0,1,2,...; 3: 0,3,6,9,2,...)",
              min=1, max=9),
        Param("seed", "int", 0, "seed of the split and of the samples drawn", min=0, max=2**31 - 1),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"image": (1, SIDE, SIDE), "label": (1,), "target": (1, SIDE, SIDE), "target_label": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 1797 * SIDE * SIDE  # the whole data set, held as one tensor

    def setup(self, batch, generator):
        self.images, self.by_class = training_images(self.p, self.node_id)

    def _at(self, b: int, step: int) -> tuple[int, int]:
        """(class, sample index) of stream b at a step: a pure function of (seed, b, step), so a
        resumed run sees the same digits."""
        c = (b + step * self.p["step_classes"]) % 10
        rng = np.random.default_rng((self.p["seed"], b, step))
        pool = self.by_class[c]
        return c, int(pool[rng.integers(len(pool))])

    def forward(self, ctx):
        now = [self._at(b, ctx.step) for b in range(ctx.batch)]
        nxt = [self._at(b, ctx.step + 1) for b in range(ctx.batch)]
        dev = ctx.device
        img = self.images[[i for _, i in now]].unsqueeze(1).to(dev)
        tgt = self.images[[i for _, i in nxt]].unsqueeze(1).to(dev)
        return {
            "image": img,
            "label": torch.tensor([[float(c)] for c, _ in now], device=dev),
            "target": tgt,
            "target_label": torch.tensor([[float(c)] for c, _ in nxt], device=dev),
        }


NODE = DigitsSource
