"""util.digit_images: a real handwritten 8x8 digit for each class index it is given.

Turns a symbol task (e.g. source.sequence's high-order sequences over the symbols 0..9) into an
image task: the current symbol and the next one become random training samples of those
digit classes. A sample is a pure function of (seed, stream, step), and the 'target' image of
a step is the 'image' of the next step, so the next image is the one the model will be shown.
"""
from __future__ import annotations

import numpy as np
import torch

from ..node import Node
from ..graph.spec import Param, Port
from .source_digits import SIDE, require_class_index, training_images


class DigitImages(Node):
    type_name = "util.digit_images"
    category = "util"
    doc = ("A random training sample of scikit-learn's 8x8 digits (bundled, no download) for each class "
           "index 0..9: 'image' for 'symbol', 'target' for 'target_symbol' (the next step's image). The "
           "split matches source.digits, so metric.digits's classifier never saw these samples.")
    inputs = (
        Port("symbol", "tensor", "the current class index, shape [1], 0..9"),
        Port("target_symbol", "tensor", "the next class index, shape [1], 0..9"),
    )
    outputs = (
        Port("image", "image", "a sample of the current class, shape [1, 8, 8], values 0..1"),
        Port("target", "image", "a sample of the next class (next step's image), shape [1, 8, 8]"),
    )
    params = (
        Param("holdout", "float", 0.3, "fraction of each class kept aside (never shown; the metric's "
              "classifier trains on it)", min=0.05, max=0.9),
        Param("seed", "int", 0, "seed of the split and of the samples drawn", min=0, max=2**31 - 1),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("symbol", "target_symbol"):
            require_class_index(shapes, port)
        return {"image": (1, SIDE, SIDE), "target": (1, SIDE, SIDE)}

    @classmethod
    def param_count(cls, p, shapes):
        return 1797 * SIDE * SIDE  # the whole data set, held as one tensor

    def setup(self, batch, generator):
        self.images, self.by_class = training_images(self.p, self.node_id)

    def _sample(self, b: int, step: int, c: int) -> int:
        pool = self.by_class[c % 10]
        return int(pool[np.random.default_rng((self.p["seed"], b, step)).integers(len(pool))])

    def _draw(self, classes: torch.Tensor, step: int, dev) -> torch.Tensor:
        idx = [self._sample(b, step, c) for b, c in enumerate(classes.detach().reshape(-1).round().long().tolist())]
        return self.images[idx].unsqueeze(1).to(dev)

    def forward(self, ctx, symbol, target_symbol):
        return {"image": self._draw(symbol, ctx.step, symbol.device),
                "target": self._draw(target_symbol, ctx.step + 1, symbol.device)}


NODE = DigitImages
