"""htm.sp: a differentiable spatial pooler with k-winners-take-all inhibition.

Columns may be laid out in 1-D or 2-D. Global inhibition keeps the k best columns of the
whole layer; local inhibition splits the layout into non-overlapping neighbourhoods
(segments of a 1-D layout, squares of a 2-D one) and keeps the k best of each, so every
neighbourhood has exactly k active columns (what an image needs: activity everywhere).
"""
import math

import torch
from torch import nn

from ..node import Node, lr_scale_param, flat_size, require
from ..graph.spec import Param, Port
from ..kernels.grad_hints import mark_grad_nonzero_only
from ..kernels.mlp import use_fused
from ..kernels.sp import WINNERS_ROWS_ABOVE, SPColumns
from ..kernels.tape import apply, recording_tape


class SpatialPooler(Node):
    type_name = "htm.sp"
    category = "htm"
    live_role = "sp"
    doc = ("Maps an input onto columns; k-winners inhibition (global, or local per neighbourhood of a "
           "1-D or 2-D column layout) keeps exactly 'winners' active (per neighbourhood). The "
           "columns' biases (their inhibition thresholds) learn by backprop; duty-cycle boosting (its "
           "strength may be trained) or settling threshold offsets even out column usage. Gradients "
           "flow through the winners only.")
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("columns", "sdr", "active columns, shape [columns], exactly 'winners' non-zero "
                                      "(per neighbourhood with local inhibition)"),)
    params = (
        Param("columns", "int", 256, "number of columns", min=1, max=65536),
        Param("winners", "int", 5, "active columns per step (k); per neighbourhood with local inhibition",
              min=1, max=65536),
        Param("potential_pct", "float", 1.0, "fraction of the inputs each column can connect to",
              min=0.001, max=1.0),
        Param("boost_strength", "float", 0.0, "duty-cycle boosting: exp(strength*(target-duty)), or "
              "exp(strength*(target-duty)/target) with boost_mode 'relative'; with 'threshold', how far "
              "a threshold moves per step; 0 is off", min=0.0, max=100.0),
        Param("boost_mode", "str", "absolute", "absolute: the duty's gap to the target as is (tiny at "
              "a low sparsity); relative: as a fraction of the target, so a column that never wins gets "
              "exp(strength) whatever the sparsity; threshold: no factor, each column's score gets an "
              "offset that rises while it wins less than the target and falls when it wins, so it "
              "stops moving once usage is even", choices=("absolute", "relative", "threshold")),
        Param("boost_settle", "float", 0.0, "boost_mode 'threshold': the rate falls as "
              "strength/(1 + step/settle), so the offsets settle and a given input keeps its code "
              "(0: a constant rate)", min=0.0, max=1e9),
        Param("boost_trainable", "bool", False,
              "learn the boost strength by backprop (the winners' gradient reaches it; the forward "
              "output is unchanged)"),
        Param("duty_inertia", "float", 0.99, "moving-average inertia of the duty cycles", min=0.0, max=0.999999),
        Param("output", "str", "magnitude", "winners pass their overlap, or 1 (binary, straight-through)",
              choices=("magnitude", "binary")),
        Param("inhibition", "str", "global", "global: k winners over all columns; local: k winners in "
              "each neighbourhood", choices=("global", "local")),
        Param("grid_height", "int", 1, "rows of the column layout (1: a 1-D line; columns must be a "
              "multiple of it)", min=1, max=65536),
        Param("neighbourhood", "int", 16, "local inhibition: side of a neighbourhood in columns (a "
              "segment in 1-D, a square in 2-D); must divide the layout", min=1, max=65536),
        lr_scale_param(),
    )

    @classmethod
    def layout(cls, p) -> tuple[int, int, int, int]:
        """(rows, cols, tile_rows, tile_cols) of the column layout and of one neighbourhood."""
        rows = p["grid_height"]
        cols = p["columns"] // rows
        if p["inhibition"] == "global":
            return rows, cols, rows, cols
        n = p["neighbourhood"]
        return rows, cols, (n if rows > 1 else 1), n

    @classmethod
    def infer(cls, p, shapes):
        require(p["columns"] % p["grid_height"] == 0, "columns",
                f"columns ({p['columns']}) is not a multiple of grid_height ({p['grid_height']})")
        rows, cols, th, tw = cls.layout(p)
        require(rows % th == 0 and cols % tw == 0, "columns",
                f"neighbourhood {p['neighbourhood']} does not divide the {rows}x{cols} column layout")
        require(p["winners"] <= th * tw, "columns",
                f"winners ({p['winners']}) exceed the {th * tw} columns of a neighbourhood")
        require(not (p["boost_trainable"] and p["boost_mode"] == "threshold"), "boost_trainable",
                "boost_mode 'threshold' moves its offsets by the wins, not by backprop")
        return {"columns": (p["columns"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n_in = flat_size(shapes["x"] or (1,))
        mask = n_in * p["columns"] if p["potential_pct"] < 1 else 0
        offsets = p["columns"] if p["boost_mode"] == "threshold" else 0
        return (n_in + 1) * p["columns"] + mask + p["columns"] + offsets + 1

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        n_in, c = flat_size(shapes["x"]), p["columns"]
        self.proj = nn.Linear(n_in, c)
        # The biases (learned inhibition thresholds) start equal: random ones would let the same
        # few columns win for every input, whatever its overlap.
        nn.init.zeros_(self.proj.bias)
        # The weight gradient kernels/sp.py reuses between steps without autograd (or None).
        self.grad_rows = None
        if p["potential_pct"] < 1.0:
            # Each column sees a random subset of the inputs (its potential pool).
            pool = torch.rand(c, n_in).argsort(dim=1) < max(1, math.ceil(p["potential_pct"] * n_in))
            self.register_buffer("potential", pool.float())
        else:
            self.potential = None
        self.rows, self.cols, self.tile_rows, self.tile_cols = self.layout(p)
        self.target = p["winners"] / (self.tile_rows * self.tile_cols)  # the sparsity every column aims at
        self.register_buffer("duty", torch.full((c,), self.target))
        if p["boost_trainable"]:
            self.boost = nn.Parameter(torch.tensor(float(p["boost_strength"])))
        else:
            self.register_buffer("boost", torch.tensor(float(p["boost_strength"])))
        if p["boost_mode"] == "threshold":
            self.register_buffer("offset", torch.zeros(c))  # per column, added to its score

    def overlap(self, x):
        w = self.proj.weight if self.potential is None else self.proj.weight * self.potential
        return nn.functional.linear(x.flatten(1), w, self.proj.bias)

    def boost_factors(self) -> torch.Tensor:
        """exp(strength * gap) per column, gap = target - duty (relative: over target): above 1
        for columns used too rarely, below 1 for those used too often."""
        gap = self.target - self.duty
        if self.p["boost_mode"] == "relative":
            gap = gap / self.target
        return torch.exp(self.boost.clamp_min(0) * gap)

    def threshold_rate(self, step: int) -> float:
        """How far the offsets move this step: annealed (1/t) so that they settle, since every
        move of a contender's offset can change the code of an input near a tie."""
        settle = self.p["boost_settle"]
        return self.p["boost_strength"] / (1 + step / settle) if settle > 0 else self.p["boost_strength"]

    def _move_offsets(self, won: torch.Tensor, step: int) -> None:
        """Integrate each column's shortfall of wins (`won`: its share of the streams), as a
        fraction of the target (a column that never wins rises by the rate per step, a winner
        falls by rate*(1/target - 1)): at rest when every column wins at the target rate,
        whatever the overlaps' scale."""
        self.offset.add_(self.target - won, alpha=self.threshold_rate(step) / self.target)

    def score(self, overlap: torch.Tensor) -> torch.Tensor:
        """What the winners are chosen by: the overlap plus the threshold offsets, or the
        overlap times the boost factors (neither carries a gradient)."""
        if self.p["boost_mode"] == "threshold":
            return overlap.detach() + self.offset
        if self.uses_factor():
            return (overlap.detach().clamp_min(0) + 1) * self.boost_factors().detach()
        return overlap.detach()

    def winners_mask(self, score: torch.Tensor) -> torch.Tensor:
        """1 for the k best scores of each neighbourhood (the whole layer when global)."""
        k = self.p["winners"]
        if self.p["inhibition"] == "global":
            return k_winners_mask(score, k)
        B = score.shape[0]
        r, c, tr, tc = self.rows, self.cols, self.tile_rows, self.tile_cols
        # [B, r, c] -> [B, r/tr, c/tc, tr*tc]: one row per neighbourhood.
        tiles = score.view(B, r // tr, tr, c // tc, tc).permute(0, 1, 3, 2, 4).reshape(B, r // tr, c // tc, tr * tc)
        mask = torch.zeros_like(tiles).scatter_(3, tiles.topk(k, dim=3).indices, 1.0)
        return mask.view(B, r // tr, c // tc, tr, tc).permute(0, 1, 3, 2, 4).reshape(B, r * c)

    def uses_factor(self) -> bool:
        p = self.p
        return (p["boost_strength"] > 0 or p["boost_trainable"]) and p["boost_mode"] != "threshold"

    def rowwise(self):
        # Boosting makes a column's score depend on the earlier rows (through the duty cycles).
        return self.p["boost_strength"] == 0 and not self.p["boost_trainable"]

    def duty_cycles(self):
        return self.duty

    # The step runs as one autograd function with a hand-derived backward (kernels/sp.py);
    # False: the same step recorded by autograd op by op, except while the trainer records a
    # step without autograd (kernels/tape.py), or for a layer whose one-stream backward works
    # on the winners' rows (kernels/sp.py), which always take the function.
    fused = False

    def hand_backward(self):
        return not self.p["boost_trainable"]  # the strength's gradient is autograd's

    def forward(self, ctx, x):
        if not self.p["boost_trainable"] and use_fused(x) and (
                self.fused or recording_tape() is not None or self.proj.weight.numel() > WINNERS_ROWS_ABOVE):
            return self.forward_fused(ctx, x)
        return self.forward_autograd(ctx, x)

    def forward_fused(self, ctx, x):
        out, mask = apply(SPColumns, self, x.flatten(1), self.proj.weight, self.proj.bias, self.potential)
        if self.training:
            self.track_wins(mask, ctx.step)
        return {"columns": mark_grad_nonzero_only(out)}  # only the winners pass a gradient on

    def track_wins(self, mask: torch.Tensor, step: int) -> None:
        """The duty cycles and (boost_mode 'threshold') the offsets after a step's wins."""
        p = self.p
        won = won_share(mask)
        inertia = p["duty_inertia"]
        self.duty.mul_(inertia).add_(won, alpha=1 - inertia)
        if p["boost_mode"] == "threshold" and p["boost_strength"] > 0:
            self._move_offsets(won, step)

    def forward_autograd(self, ctx, x):
        p = self.p
        overlap = self.overlap(x)
        mask = self.winners_mask(self.score(overlap))
        if p["output"] == "binary":
            out = mask + (overlap - overlap.detach()) * mask  # forward 0/1, gradient via winners
        else:
            # A winner whose overlap is exactly 0 would vanish from the SDR: give it a tiny value.
            out = torch.where(overlap == 0, overlap + 1e-6, overlap) * mask
        if p["boost_trainable"] and self.uses_factor():
            boost = self.boost_factors()
            out = out * (boost / boost.detach())  # forward unchanged; the strength gets a gradient
        if self.training:
            self.track_wins(mask, ctx.step)
        return {"columns": mark_grad_nonzero_only(out)}  # only the winners pass a gradient on

    def entropy_ratio(self) -> float:
        """Entropy of column usage over its maximum, log(columns): 1.0 is perfectly even."""
        return usage_entropy_ratio(self.duty)


def won_share(mask: torch.Tensor) -> torch.Tensor:
    """The share of the streams each column won in: mask.mean(0) (one stream: its row, the
    same values without a reduction)."""
    return mask[0] if mask.shape[0] == 1 else mask.mean(0)


def k_winners_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """1 for the k best scores of each row of score [B, n], else 0: global inhibition."""
    return torch.zeros_like(score).scatter_(1, score.topk(k, dim=1).indices, 1.0)


def usage_entropy_ratio(duty: torch.Tensor) -> float:
    """Entropy of the normalized duty cycles over log(n): 1.0 when every unit is used equally."""
    n = duty.numel()
    if n <= 1:
        return 1.0
    d = duty / duty.sum().clamp_min(1e-12)
    h = -(d * d.clamp_min(1e-12).log()).sum()
    return float(h / math.log(n))


NODE = SpatialPooler
