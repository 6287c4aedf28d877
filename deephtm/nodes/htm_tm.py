"""htm.tm: a differentiable temporal memory with predictive cells, winners and bursting."""
import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node, require
from ..spec import Param, Port


class TemporalMemory(Node):
    type_name = "htm.tm"
    category = "htm"
    doc = ("Columns x cells. Cells whose distal input from the previous step's active cells (the "
           "'context', a delayed edge from 'cells') exceeds the threshold are predicted; in an "
           "active column the predicted cells fire, and a column with none bursts, which makes "
           "the next step predict every continuation it has learned. As in HTM, learning uses "
           "the previous winner cells (one per column). The forward state is exact HTM; "
           "learning is by backprop through a sigmoid relaxation.")
    inputs = (
        Port("columns", "sdr", "active columns from the SP, shape [C]"),
        Port("context", "sdr", "previous step's active cells (delayed edge from 'cells'), shape [C*K]; "
                               "they depolarize the cells they have learned to predict", optional=True),
        Port("winner_context", "sdr", "previous step's winner cells (delayed edge from 'winners'), "
                                      "shape [C*K]; learning grows synapses from these only (default: "
                                      "the context)", optional=True),
        Port("apical", "tensor", "feedback from a higher region, any 1-D size; it depolarizes cells",
             optional=True),
    )
    outputs = (
        Port("cells", "sdr", "active cells: the predicted cells of active columns, or all their cells "
                             "when a column bursts; shape [C*K]"),
        Port("winners", "sdr", "one winner cell per active column: its most depolarized cell "
                               "(the predicted one, or the best matching one when it bursts); shape [C*K]"),
        Port("predicted", "tensor", "probability that each column is active next step, shape [C]"),
        Port("anomaly", "scalar", "raw anomaly 1 - |predicted & active| / |active|, per stream"),
        Port("loss", "loss", "self-supervised loss: the context predicts this step's winner cells "
                             "and no cell of an inactive column"),
    )
    params = (
        Param("cells_per_column", "int", 5, "cells per column (K)", min=1, max=256),
        Param("threshold", "float", 0.5, "distal input above which a cell is predicted", min=1e-3, max=1e3),
        Param("temperature", "float", 0.1, "temperature of the sigmoid relaxation of the threshold",
              min=1e-4, max=100.0),
        Param("init_std", "float", 0.01, "std of the initial distal weights", min=0.0, max=10.0),
        Param("distal_lr", "float", 0.02,
              "learning rate of the distal (and apical) synapses, trained by plain SGD on the rows "
              "of the active cells only: like HTM's permanence increments, a transition is learned "
              "from a few presentations, and Adam's per-weight scaling would turn the tiny "
              "gradients of rarely active cells into full steps", min=0.0, max=100.0),
        Param("false_prediction_weight", "float", 0.1,
              "weight of the loss on cells predicted in inactive columns; small, so that a context "
              "followed by either of two elements keeps predicting both", min=0.0, max=100.0),
        Param("match_threshold", "float", 0.0,
              "a bursting column's winner is its best matching cell only when that cell's distal "
              "input from the previous winners reaches this; otherwise it is the column's least "
              "used cell, as in HTM, so that a new context gets cells of its own instead of "
              "reusing the cells of a context it merely overlaps (0: always the best matching)",
              min=0.0, max=1e3),
        Param("downstream_grad", "bool", True,
              "let downstream losses (e.g. a decoder's) reach the distal weights through the winners"),
    )

    @classmethod
    def infer(cls, p, shapes):
        cols = shapes["columns"]
        require(cols is not None and len(cols) == 1, "columns", f"expected a 1-D column vector, got {list(cols or [])}")
        n = cols[0] * p["cells_per_column"]
        for port in ("context", "winner_context"):
            ctx = shapes.get(port)
            require(ctx is None or tuple(ctx) == (n,), port, f"expected shape [{n}], got {list(ctx or [])}")
        ap = shapes.get("apical")
        require(ap is None or len(ap) == 1, "apical", f"expected a 1-D shape, got {list(ap or [])}")
        return {"cells": (n,), "winners": (n,), "predicted": (cols[0],), "anomaly": (), "loss": ()}

    @classmethod
    def param_count(cls, p, shapes):
        n = (shapes["columns"] or (1,))[0] * p["cells_per_column"]
        apical = (shapes.get("apical") or (0,))[0]
        return n * n + apical * n + n  # distal and apical synapses, cell usage

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.C = shapes["columns"][0]
        self.K = p["cells_per_column"]
        n = self.C * self.K
        # Row i holds the synapses from presynaptic cell i onto every cell. A step gathers only
        # the rows of the active cells (an embedding bag), never a dense matmul over all cells.
        self.distal = nn.Parameter(torch.randn(n, n) * p["init_std"])
        ap = shapes.get("apical")
        self.apical = nn.Parameter(torch.randn(ap[0], n) * p["init_std"]) if ap else None
        self.used_outputs = {port.name for port in self.outputs}  # until the graph says
        # How often each cell was picked as a new (least used) winner, per stream: HTM's segment count.
        self.register_buffer("usage", torch.zeros(self.C, self.K))
        self.generator = None

    def setup(self, batch, generator):
        self.generator = generator

    def param_groups(self):
        synapses = [self.distal] + ([self.apical] if self.apical is not None else [])
        return [{"params": synapses, "lr": self.p["distal_lr"], "optimizer": "sgd"}]

    def gather(self, active: torch.Tensor, weights: torch.Tensor, binary: bool = True) -> torch.Tensor:
        """Sum of the rows of `weights` picked by the non-zero units of `active`: [B, C, K]."""
        b_idx, unit_idx = active.nonzero(as_tuple=True)
        offsets = torch.searchsorted(b_idx, torch.arange(active.shape[0], device=active.device))
        per_sample = None if binary else active[b_idx, unit_idx]
        d = F.embedding_bag(unit_idx, weights, offsets, mode="sum", per_sample_weights=per_sample,
                            sparse=True)  # row-sparse gradient: SGD touches only these rows
        return d.view(-1, self.C, self.K)

    def least_used_unless_matching(self, winner, best, col_active):
        """Winners of bursting columns whose best cell does not match: the least used cell
        (ties broken at random), whose usage then grows."""
        fresh = (best < self.p["match_threshold"]) & col_active
        # Usage grows by the fraction of streams that picked a cell, so that data-parallel
        # ranks, which average it, agree with one process; the noise only breaks ties.
        noise = torch.rand(self.usage.shape, generator=self.generator).to(self.usage.device)
        fresh_cell = (self.usage + noise * (0.5 / fresh.shape[0])).argmin(-1)  # [C]
        winner = torch.where(fresh, fresh_cell, winner)
        if self.training:
            share = fresh.to(self.usage.dtype).mean(0)
            self.usage.add_(F.one_hot(fresh_cell, self.K).to(self.usage.dtype) * share.unsqueeze(-1))
        return winner

    def forward(self, ctx, columns, context=None, winner_context=None, apical=None):
        B, C, K = columns.shape[0], self.C, self.K
        p = self.p
        col_active = columns != 0
        d = self.gather(context, self.distal) if context is not None else columns.new_zeros(B, C, K)
        d_learn = self.gather(winner_context, self.distal) if winner_context is not None else d
        if apical is not None:
            d_apical = self.gather(apical.flatten(1), self.apical, binary=False)
            d, d_learn = d + d_apical, d_learn + d_apical
        z = (d - p["threshold"]) / p["temperature"]
        z_learn = (d_learn - p["threshold"]) / p["temperature"] if d_learn is not d else z
        pred_cell = z > 0
        col_pred = pred_cell.any(-1)
        col = columns.unsqueeze(-1)
        out = {}
        # The winner of an active column is the cell the previous winners depolarize most:
        # the one they predict, or, when they predict none, the best matching one (with a
        # match threshold: only a cell that matches well enough; else the least used). Choosing
        # it from the winners rather than from all active cells keeps contexts apart: after
        # a burst the union of contexts predicts a cell, but the new context gets its own.
        best, winner = d_learn.max(-1)
        if p["match_threshold"] > 0:
            winner = self.least_used_unless_matching(winner, best, col_active)
        w_hard = F.one_hot(winner, K).to(z.dtype)
        if p["downstream_grad"]:
            # Softmax over the few cells of each column, computed along the column axis of the
            # transposed view: the same values, about 8x faster for short last dimensions.
            w_soft = torch.softmax(z_learn.transpose(-1, -2), -2).transpose(-1, -2)
            w_out = w_hard + (w_soft - w_soft.detach())  # exact forward, relaxed backward
        else:
            w_out = w_hard
        out["winners"] = (col * w_out).reshape(B, C * K)
        if self.used_outputs & {"cells", "predicted"}:
            # Exact HTM: predicted cells of an active column fire; with none predicted, all fire.
            fire = pred_cell.to(z.dtype) + (~col_pred).to(z.dtype).unsqueeze(-1)
            out["cells"] = (col * fire).reshape(B, C * K)

        n_active = col_active.sum(1).clamp_min(1)
        out["anomaly"] = 1 - (col_pred & col_active).sum(1) / n_active
        if context is not None or winner_context is not None or apical is not None:
            # The previous winners should predict each active column's winner, and no cell of
            # an inactive column (weakly: an ambiguous context may predict several futures).
            # Hinge losses: learning stops one temperature past the threshold, so synapses
            # saturate like HTM permanences and a context that only partly overlaps a learned
            # one does not reach the threshold (it bursts and gets cells of its own).
            z_win = z_learn.gather(-1, winner.unsqueeze(-1)).squeeze(-1)
            hit = (F.relu(1 - z_win) * col_active).sum(1)
            false = (F.relu(1 + z_learn) * (~col_active).unsqueeze(-1)).sum((1, 2))
            out["loss"] = ((hit + p["false_prediction_weight"] * false) / n_active).mean()
        else:
            out["loss"] = columns.new_zeros(())
        if "predicted" in self.used_outputs:
            d_next = self.gather(out["cells"].detach(), self.distal)
            out["predicted"] = torch.sigmoid((d_next.max(-1).values - p["threshold"]) / p["temperature"])
        return out


NODE = TemporalMemory
