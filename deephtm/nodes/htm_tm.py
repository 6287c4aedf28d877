"""htm.tm: a differentiable temporal memory with predictive cells and bursting."""
import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node, require
from ..spec import Param, Port


class TemporalMemory(Node):
    type_name = "htm.tm"
    category = "htm"
    doc = ("Columns x cells. Cells predicted by the previous step's active cells (the 'context', "
           "wired from 'cells' by a delayed edge) become active in active columns; an active "
           "column with no predicted cell bursts. Forward state is exact HTM; gradients use a "
           "sigmoid relaxation with a temperature.")
    inputs = (
        Port("columns", "sdr", "active columns from the SP, shape [C]"),
        Port("context", "sdr", "previous step's active cells (delayed edge from 'cells'), shape [C*K]",
             optional=True),
    )
    outputs = (
        Port("cells", "sdr", "active cells, shape [C*K]"),
        Port("predicted", "tensor", "probability that each column is active next step, shape [C]"),
        Port("anomaly", "scalar", "raw anomaly 1 - |predicted & active| / |active|, per stream"),
        Port("loss", "loss", "self-supervised loss: predict this step's columns from the context"),
    )
    params = (
        Param("cells_per_column", "int", 5, "cells per column (K)", min=1, max=256),
        Param("temperature", "float", 0.1, "temperature of the relaxation used for gradients", min=1e-4, max=100.0),
        Param("init_std", "float", 0.01, "std of the initial distal weights", min=0.0, max=10.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        cols = shapes["columns"]
        require(cols is not None and len(cols) == 1, "columns", f"expected a 1-D column vector, got {list(cols or [])}")
        n = cols[0] * p["cells_per_column"]
        ctx = shapes["context"]
        require(ctx is None or tuple(ctx) == (n,), "context", f"expected shape [{n}], got {list(ctx or [])}")
        return {"cells": (n,), "predicted": (cols[0],), "anomaly": (), "loss": ()}

    @classmethod
    def param_count(cls, p, shapes):
        n = (shapes["columns"] or (1,))[0] * p["cells_per_column"]
        return n * n + 1

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.C = shapes["columns"][0]
        self.K = p["cells_per_column"]
        n = self.C * self.K
        # Row i holds the distal synapses from presynaptic cell i onto every cell. A step
        # gathers only the rows of the active cells (an embedding bag), never a dense matmul.
        self.distal = nn.Parameter(torch.randn(n, n) * p["init_std"])
        self.threshold = nn.Parameter(torch.full((1,), 0.5))
        self.used_outputs = {"cells", "predicted", "anomaly", "loss"}  # until the graph says

    def depolarization(self, active: torch.Tensor) -> torch.Tensor:
        """Summed distal input to every cell from the active cells: [B, C, K]."""
        b_idx, cell_idx = active.nonzero(as_tuple=True)
        offsets = torch.searchsorted(b_idx, torch.arange(active.shape[0], device=active.device))
        d = F.embedding_bag(cell_idx, self.distal, offsets, mode="sum")
        return d.view(-1, self.C, self.K)

    def forward(self, ctx, columns, context=None):
        B, C, K = columns.shape[0], self.C, self.K
        tau = self.p["temperature"]
        col_active = columns != 0
        if context is None:
            d = torch.zeros(B, C, K, device=columns.device)
        else:
            d = self.depolarization(context)
        z = (d - self.threshold) / tau
        p_cell = torch.sigmoid(z)  # soft predictive state of each cell
        pred_cell = z > 0  # exact predictive state
        col_pred = pred_cell.any(-1)
        # Exact HTM: predicted cells of an active column fire; with none predicted, all fire.
        w_hard = pred_cell.float() + (~col_pred).float().unsqueeze(-1)
        w_soft = p_cell + (1 - p_cell.max(-1, keepdim=True).values)
        w = w_hard + (w_soft - w_soft.detach())
        cells = (columns.unsqueeze(-1) * w).reshape(B, C * K)
        out = {"cells": cells}

        n_active = col_active.sum(1).clamp_min(1)
        out["anomaly"] = 1 - (col_pred & col_active).sum(1) / n_active
        # Self-supervised: the context should have predicted exactly the active columns.
        col_logit = z.max(-1).values
        target = col_active.float()
        pos = -(F.logsigmoid(col_logit) * target).sum(1) / n_active
        neg = -(F.logsigmoid(-col_logit) * (1 - target)).sum(1) / (C - n_active).clamp_min(1)
        out["loss"] = (pos + neg).mean() if context is not None else columns.new_zeros(())
        if "predicted" in self.used_outputs:
            d_next = self.depolarization(cells.detach())
            out["predicted"] = torch.sigmoid((d_next.max(-1).values - self.threshold) / tau)
        return out


NODE = TemporalMemory
