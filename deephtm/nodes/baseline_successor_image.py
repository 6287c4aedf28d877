"""baseline.successor_image: the trivial image predictor a sequence model must beat.

It counts, online, which class followed which (first-order transitions), and draws the mean
training image of the most frequent successor of the current class. A task where this scores
as well as a model needs no memory of anything before the current class.
"""
from __future__ import annotations

import torch

from ..node import Node
from ..graph.spec import Param, Port
from .source_digits import SIDE, require_class_index, training_images


class SuccessorImage(Node):
    type_name = "baseline.successor_image"
    category = "baseline"
    doc = ("First-order baseline for image sequences: the mean training image of the class that most "
           "often followed the current class so far (transition counts kept online; ties: lowest class).")
    inputs = (
        Port("label", "tensor", "the current class index, shape [1], 0..9"),
        Port("target_label", "tensor", "the next class index, shape [1]: counted after predicting"),
    )
    outputs = (Port("image", "image", "mean image of the likely next class, shape [1, 8, 8]"),
               Port("class", "tensor", "the likely next class, shape [1]"))
    params = (
        Param("holdout", "float", 0.3, "held-out fraction; must match the digit images' source",
              min=0.05, max=0.9),
        Param("seed", "int", 0, "split seed; must match the digit images' source", min=0, max=2**31 - 1),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("label", "target_label"):
            require_class_index(shapes, port)
        return {"image": (1, SIDE, SIDE), "class": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 10 * SIDE * SIDE + 100

    def setup(self, batch, generator):
        images, by_class = training_images(self.p, self.node_id)
        means = torch.stack([images[rows].mean(0) for rows in by_class])
        self.register_buffer("means", means.float(), persistent=False)
        self.register_buffer("counts", torch.zeros(10, 10))

    def forward(self, ctx, label, target_label):
        cur = label.detach().reshape(-1).round().long().clamp(0, 9)
        nxt = target_label.detach().reshape(-1).round().long().clamp(0, 9)
        counts = self.counts.to(cur.device)
        guess = counts[cur].argmax(1)  # predicted before this step's transition is counted
        self.counts = counts.index_put((cur, nxt), torch.ones_like(cur, dtype=counts.dtype), accumulate=True)
        return {"image": self.means.to(cur.device)[guess].unsqueeze(1), "class": guess.float().unsqueeze(1)}


NODE = SuccessorImage
