"""htm.tm: a differentiable temporal memory with predictive cells, winners and bursting."""
import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node, require
from ..graph.spec import Param, Port
from ..kernels.grad_hints import grad_nonzero_only, mark_nonzero_at
from ..kernels.tm_fanout import FanoutTMStep
from ..kernels.tm_step import FusedTMStep, column_hits
from ..kernels.tape import apply


def infer_tm_shapes(p, shapes) -> dict:
    """Shape checks and output shapes shared by the temporal memories: C columns in, C x K
    cells out, and a context of C x K cells when one is wired."""
    cols = shapes["columns"]
    require(cols is not None and len(cols) == 1, "columns", f"expected a 1-D column vector, got {list(cols or [])}")
    n = cols[0] * p["cells_per_column"]
    for port in ("context", "winner_context"):
        ctx = shapes.get(port)
        require(ctx is None or tuple(ctx) == (n,), port, f"expected shape [{n}], got {list(ctx or [])}")
    return {"cells": (n,), "winners": (n,), "predicted": (cols[0],), "anomaly": (), "loss": ()}


class TemporalMemory(Node):
    type_name = "htm.tm"
    category = "htm"
    live_role = "tm"
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
        Port("anomaly", "scalar", "raw anomaly 1 - |predicted & active| / |active|, per stream "
                                  "(graded: each active column counts by its prediction confidence)"),
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
        Param("fan_out", "int", 0,
              "distal synapses per presynaptic cell, onto random cells drawn when the node is built "
              "(0: a dense cells x cells matrix); as in HTM, a new winner grows synapses from the "
              "previous winners (their weakest ones re-pointed). Large TMs (htm.core's 2,048 x 32) "
              "need it: memory and step time grow with cells x fan_out instead of cells^2",
              min=0, max=65536),
        Param("anomaly_mode", "str", "binary",
              "raw anomaly: 'binary' counts an active column predicted when any of its cells "
              "crosses the threshold (HTM's); 'graded' counts it by its confidence, the sigmoid "
              "relaxation of its most depolarized cell's margin, so a column barely predicted or "
              "barely missed counts about half instead of all or nothing",
              choices=("binary", "graded")),
    )

    @classmethod
    def infer(cls, p, shapes):
        out = infer_tm_shapes(p, shapes)
        ap = shapes.get("apical")
        require(ap is None or len(ap) == 1, "apical", f"expected a 1-D shape, got {list(ap or [])}")
        return out

    @classmethod
    def param_count(cls, p, shapes):
        n = (shapes["columns"] or (1,))[0] * p["cells_per_column"]
        apical = (shapes.get("apical") or (0,))[0]
        fan_out = p.get("fan_out", 0)
        distal = 2 * n * fan_out if fan_out else n * n  # fan-out: a weight and a target per synapse
        return distal + apical * n + n  # distal and apical synapses, cell usage

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.C = shapes["columns"][0]
        self.K = p["cells_per_column"]
        n = self.C * self.K
        # Row i holds the synapses from presynaptic cell i onto every cell. A step gathers only
        # the rows of the active cells (an embedding bag), never a dense matmul over all cells.
        # With a fan-out F, row i holds F synapses onto the cells distal_to[i] (presynaptic-major
        # lists, drawn from the seeded global RNG; a buffer, so checkpoints keep them).
        self.fan_out = p.get("fan_out", 0)
        if self.fan_out:
            self.distal = nn.Parameter(torch.randn(n, self.fan_out) * p["init_std"])
            self.register_buffer("distal_to", torch.randint(0, n, (n, self.fan_out), dtype=torch.int32))
        else:
            self.distal = nn.Parameter(torch.randn(n, n) * p["init_std"])
        self._sources: dict[str, tuple] = {}  # output port -> (tensor, version, active indices)
        self._widths: dict[str, int] = {}  # input port -> rows gathered at the last eager step
        self.width_exceeded = None  # on CUDA: whether a captured step met a wider input
        self._cells_of = None  # (active columns, their cells' indices) of the last step
        self.constants: dict[tuple, torch.Tensor] = {}  # ramps, the cells of each column, ones(): made once
        ap = shapes.get("apical")
        self.apical = nn.Parameter(torch.randn(ap[0], n) * p["init_std"]) if ap else None
        # How often each cell was picked as a new (least used) winner, per stream: HTM's segment count.
        self.register_buffer("usage", torch.zeros(self.C, self.K))
        self.generator = None

    def setup(self, batch, generator):
        self.generator = generator

    def data_parallel_problem(self):
        if self.fan_out:
            return ("fan_out > 0 grows synapses from each process's own streams, so the processes' "
                    "synapses would drift apart; use fan_out 0 with --distributed")
        return None

    def param_groups(self):
        synapses = [self.distal] + ([self.apical] if self.apical is not None else [])
        return [{"params": synapses, "lr": self.p["distal_lr"], "optimizer": "sgd"}]

    def gather(self, active: torch.Tensor, weights: torch.Tensor, binary: bool = True) -> torch.Tensor:
        """Sum of the rows of `weights` picked by the non-zero units of `active`: [B, C, K]."""
        if self.fan_out and weights is self.distal:
            return self.spread(active).view(-1, self.C, self.K)
        b_idx, unit_idx = active.nonzero(as_tuple=True)
        offsets = torch.searchsorted(b_idx, torch.arange(active.shape[0], device=active.device))
        per_sample = None if binary else active[b_idx, unit_idx]
        d = F.embedding_bag(unit_idx, weights, offsets, mode="sum", per_sample_weights=per_sample,
                            sparse=True)  # row-sparse gradient: SGD touches only these rows
        return d.view(-1, self.C, self.K)

    @torch.no_grad()
    def predicted_by(self, context: torch.Tensor) -> torch.Tensor:
        """Cells whose distal input from `context` exceeds the threshold, bool [B, C, K]: for
        live views (an apical input, if wired, is left out)."""
        return (self.gather(context, self.distal) - self.p["threshold"]) > 0

    def tie_noise(self) -> torch.Tensor:
        """Uniform noise [C, K] that breaks ties between equally used cells."""
        if self.usage.is_cuda and torch.cuda.is_current_stream_capturing():
            # A CUDA graph replays device work only: the noise is drawn there on each replay.
            return torch.rand(self.usage.shape, device=self.usage.device)
        noise = torch.rand(self.usage.shape, generator=self.generator)
        return noise if noise.device == self.usage.device else noise.to(self.usage.device)

    def least_used_unless_matching(self, winner, best, col_active):
        """Winners of bursting columns whose best cell does not match: the least used cell
        (ties broken at random), whose usage then grows."""
        fresh = (best < self.p["match_threshold"]) & col_active
        # Usage grows by the fraction of streams that picked a cell, so that data-parallel
        # ranks, which average it, agree with one process; the noise only breaks ties.
        fresh_cell = (self.usage + self.tie_noise() * (0.5 / fresh.shape[0])).argmin(-1)  # [C]
        winner = torch.where(fresh, fresh_cell, winner)
        if self.training:
            share = fresh.to(self.usage.dtype)
            share = share[0] if share.shape[0] == 1 else share.mean(0)  # one stream: its row, no reduction
            self.usage.scatter_add_(-1, fresh_cell.unsqueeze(-1), share.unsqueeze(-1))
        return winner

    def least_used_at(self, winner, best, on, act):
        """least_used_unless_matching for the columns `act` [B, W] only (winner, best, on: [B, W]):
        the same draw of tie-breaking noise, the same choices and usage counts."""
        fresh = (best < self.p["match_threshold"]) & on
        fresh_cell = (self.usage + self.tie_noise() * (0.5 / fresh.shape[0])).argmin(-1)  # [C]
        fresh_at = fresh_cell[act]
        winner = torch.where(fresh, fresh_at, winner)
        if self.training:
            if fresh.shape[0] == 1:  # one stream: each fresh column's cell gains 1
                self.usage.view(-1).index_add_(0, (act * self.K + fresh_at).view(-1), fresh.view(-1).to(self.usage.dtype))
            else:  # the share of streams that picked it, as least_used_unless_matching
                share = torch.zeros(fresh.shape[0], self.C, dtype=self.usage.dtype, device=act.device)
                share = share.scatter_(1, act, fresh.to(share.dtype)).mean(0)
                self.usage.scatter_add_(-1, fresh_cell.unsqueeze(-1), share.unsqueeze(-1))
        return winner

    # The step runs as one autograd function with a hand-derived backward; False: the same
    # step recorded by autograd op by op (the reference the fused one is tested against).
    fused = True

    def hand_backward(self):
        # The fused steps; 'predicted' is computed outside them, through autograd.
        return self.fused and "predicted" not in self.used_outputs and not (self.fan_out and self.apical is not None)

    def fanout_fused(self, apical) -> bool:
        # The fan-out kernel leaves out the apical input and 'predicted' (the autograd step has them).
        return self.fused and apical is None and "predicted" not in self.used_outputs

    def forward(self, ctx, columns, context=None, winner_context=None, apical=None):
        if self.fan_out:
            if self.fanout_fused(apical):
                return self.forward_fanout(columns, context, winner_context)
            return self.forward_fanout_autograd(columns, context, winner_context, apical)
        if self.fused:
            return self.forward_fused(columns, context, winner_context, apical)
        return self.forward_autograd(columns, context, winner_context, apical)

    # ---- the dense step with fixed shapes: the presynaptic rows are a [B, A] index tensor
    # with 0/1 weights whose width A does not depend on the data once the sparsity is fixed.

    def rows_of(self, active: torch.Tensor, port: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The presynaptic rows of `active` [B, n] and their 0/1 weights, both [B, A]. This
        node's own output of the previous step (a delayed edge) gives the rows it was built
        from: its winners one per active column, its cells the K cells of each. Any other
        input gives its non-zero units, padded to the busiest stream's count; that count is
        read from the data, except while a CUDA graph is being captured (no host reads
        then), which reuses the count of the last step run before it."""
        rows = self.remembered(active)
        if rows is not None:
            return rows
        on = active != 0
        rows = self.first_units(on, self.fixed_width(on, port))
        return rows, on.gather(1, rows).to(self.distal.dtype)

    def first_units(self, on: torch.Tensor, width: int) -> torch.Tensor:
        """Indices of the non-zero units of `on` [B, n] in ascending order, padded to `width`
        with others: a top-k of a key that falls with the index. The order is the one the
        rows are summed in, so every path (remembered rows, a context restored from a
        checkpoint) sums them alike, to the last bit."""
        n = on.shape[1]
        ramp = self.constant((n, on.device), lambda: torch.arange(n, 0, -1, device=on.device, dtype=torch.float32))
        return (on * ramp).topk(width, dim=1).indices

    def fixed_width(self, on: torch.Tensor, port: str) -> int:
        """The largest count of non-zero units over the streams (`on`: [B, n] bool, or the
        counts [B] themselves)."""
        counts = on.sum(1) if on.dim() == 2 else on
        if on.is_cuda and torch.cuda.is_current_stream_capturing():
            # Replays cannot widen the gather; a wider input sets this flag (read it after them).
            width = self._widths[port]
            self.width_exceeded |= counts.max() > width
            return width
        width = int(counts.max()) if counts.numel() > 1 else int(counts) if counts.numel() else 0
        self._widths[port] = width
        if on.is_cuda and self.width_exceeded is None:
            self.width_exceeded = torch.zeros((), dtype=torch.bool, device=on.device)
        return width

    def forward_fused(self, columns, context, winner_context, apical):
        B, C, K = columns.shape[0], self.C, self.K
        p = self.p
        if context is not None:
            rows, scale = self.rows_of(context, "context")
        else:
            rows = torch.zeros(B, 0, dtype=torch.long, device=columns.device)
            scale = columns.new_zeros(B, 0)
        learn_rows = learn_scale = None
        if winner_context is not None:
            learn_rows, learn_scale = self.rows_of(winner_context, "winner_context")
            if context is None:  # only the winners depolarize
                rows, scale = learn_rows, learn_scale
        apical = apical.flatten(1) if apical is not None else None
        want_cells = bool(self.used_outputs & {"cells", "predicted"})
        want_winners = "winners" in self.used_outputs
        has_context = context is not None or winner_context is not None or apical is not None
        # The active columns, padded with inactive ones to the busiest stream's count: the
        # step's work beyond the distal input stays on their cells.
        act = self.active_columns(columns != 0)
        # One stream has no padding unless no column is active (or a CUDA graph may replay
        # the step on another count).
        padded = B > 1 or columns.is_cuda or self._widths["columns"] == 0
        active_grad_only = grad_nonzero_only(columns)
        winners, cells, loss, win_cells, fired, anomaly, count = apply(FusedTMStep,
            self, columns, self.distal, rows, scale, learn_rows, learn_scale, self.apical, apical,
            want_cells, has_context, act, want_winners, padded, active_grad_only)
        out = {"anomaly": anomaly, "loss": loss if loss is not None else columns.new_zeros(())}
        # The rows the next step gathers when these outputs come back as its context: one
        # winner per active column (padding columns weigh 0), the cells that fired for 'cells'.
        if winners is not None:
            out["winners"] = winners
            weights = self.weights_of(count, act)
            self.remember_source("winners", winners, (win_cells, weights))
            if B > 1 and not winners.is_cuda:
                # The active columns' winners are the non-zero entries (a reader needs not scan
                # B x n). Not on a GPU: nonzero() reads the device, which a captured graph cannot.
                b_idx, w_idx = (weights != 0).nonzero(as_tuple=True)
                mark_nonzero_at(winners, b_idx, win_cells[b_idx, w_idx])
            elif active_grad_only:
                # The step reads the winners' gradient at the active columns' cells only: a
                # reader (decoder.mlp) computes it there, 100 of 1,280 cells in sine.json. In a
                # batch a dense product is cheaper than gathering a row per stream and cell.
                winners.grad_support = self.cells_of(act).view(-1)
        if cells is not None:
            out["cells"] = cells
            self.remember_source("cells", cells, self.fired_rows(fired, act))
        if "predicted" in self.used_outputs:
            nxt_rows, nxt_scale = self._sources["cells"][2]
            d_next = F.embedding_bag(nxt_rows, self.distal, mode="sum", per_sample_weights=nxt_scale,
                                     sparse=True).view(B, C, K)
            out["predicted"] = torch.sigmoid((d_next.max(-1).values - p["threshold"]) / p["temperature"])
        return out

    def active_columns(self, col_active: torch.Tensor) -> torch.Tensor:
        """The active columns of each stream [B, W] in ascending order, padded with inactive
        ones to the busiest stream's count W (at least 1)."""
        return self.first_units(col_active, max(self.fixed_width(col_active, "columns"), 1))

    def cells_of(self, act: torch.Tensor) -> torch.Tensor:
        """The flat indices of the K cells of each of the columns `act` [B, W]: [B, W * K]."""
        last = self._cells_of
        if last is not None and last[0] is act:  # the step and its bookkeeping ask for the same columns
            return last[1]
        # row c of the table: the cells of column c
        table = self.constant(("cells", act.device),
                              lambda: torch.arange(self.C * self.K, device=act.device).view(self.C, self.K))
        cells = table.index_select(0, act.view(-1)).view(act.shape[0], -1)
        self._cells_of = (act, cells)
        return cells

    def fired_rows(self, fired: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of the cells that fired (`fired`: [B, W * K] bool) among the K cells of each
        column of `act` [B, W], in ascending order, and their 0/1 weights. On the CPU only
        those, padded to the busiest stream's count: a bursting column fires all K cells, a
        predicted one mostly one, and rows that weigh 0 would cost the next step's gather and
        gradient as much as the others. On a GPU all K cells of each column: a fixed shape
        that a captured CUDA graph can replay."""
        cell_rows = self.cells_of(act)
        if fired.is_cuda:
            return cell_rows, fired.to(self.distal.dtype)
        if act.shape[0] == 1:
            rows = cell_rows.masked_select(fired).view(1, -1)
            width = rows.shape[1]
            return (rows if width else cell_rows[:, :1]), self.ones(width, act.device)
        pick = self.first_units(fired, max(self.fixed_width(fired, "cells"), 1))
        return cell_rows.gather(1, pick), fired.gather(1, pick).to(self.distal.dtype)

    def weights_of(self, count: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """0/1 weights of the columns `act` [B, W]: 1 for the active ones, which come first."""
        if act.shape[0] == 1:  # one stream, no padding: every row weighs 1 (unless none is active)
            return self.ones(self._widths["columns"], act.device)
        ramp = self.constant(("ramp", act.shape[1], act.device), lambda: torch.arange(act.shape[1], device=act.device))
        return (ramp < count.unsqueeze(-1)).to(self.distal.dtype)

    def ones(self, width: int, device) -> torch.Tensor:
        """[1, width] of ones, or one zero when no column is active (its one row is padding)."""
        return self.constant(("ones", width, device), lambda: torch.full(
            (1, max(width, 1)), float(width > 0), device=device, dtype=self.distal.dtype))

    def constant(self, key: tuple, make) -> torch.Tensor:
        """The tensor make() builds for this key (a ramp, an index table, ones), built on first
        use: every step reuses it."""
        t = self.constants.get(key)
        if t is None:
            t = self.constants[key] = make()
        return t

    # ---- this step's outputs and the units they were built from: when one comes back as the
    # next step's input (a delayed edge: same storage, unchanged), its units need no search.

    def remember_source(self, port: str, out: torch.Tensor, units: tuple) -> None:
        kept = out.detach()
        self._sources[port] = (kept, kept._version, units)

    def remembered(self, active: torch.Tensor) -> tuple | None:
        """What remember_source kept with `active`, if `active` is that output unchanged."""
        for kept, version, units in self._sources.values():
            if (active.data_ptr() == kept.data_ptr() and active.shape == kept.shape
                    and active.stride() == kept.stride() and active._version == version):
                return units
        return None

    def forward_autograd(self, columns, context=None, winner_context=None, apical=None):
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
        # one-hot by scatter: F.one_hot checks its input's range, two extra passes per step
        w_hard = torch.zeros_like(z).scatter_(-1, winner.unsqueeze(-1), 1.0)
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
        out["anomaly"] = 1 - column_hits(z.detach(), col_pred, col_active, p["anomaly_mode"]).sum(1) / n_active
        if context is not None or winner_context is not None or apical is not None:
            # The previous winners should predict each active column's winner, and no cell of
            # an inactive column (weakly: an ambiguous context may predict several futures).
            # Hinge losses: learning stops one temperature past the threshold, so synapses
            # saturate like HTM permanences and a context that only partly overlaps a learned
            # one does not reach the threshold (it bursts and gets cells of its own).
            z_win = (z_learn * w_hard).sum(-1)  # the winner's input (a gather is slower here)
            hit = (F.relu(1 - z_win) * columns.ne(0)).sum(1)
            false = (F.relu(1 + z_learn) * columns.eq(0).unsqueeze(-1)).sum((1, 2))
            out["loss"] = ((hit + p["false_prediction_weight"] * false) / n_active).mean()
        else:
            out["loss"] = columns.new_zeros(())
        if "predicted" in self.used_outputs:
            d_next = self.gather(out["cells"].detach(), self.distal)
            out["predicted"] = torch.sigmoid((d_next.max(-1).values - p["threshold"]) / p["temperature"])
        return out

    # ---- fan-out synapses (fan_out > 0): work on the active columns and the synapses of the
    # active cells only; the few whole-layer ops left are cheap elementwise ones or scans.

    def active_units(self, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stream, cell) indices of the non-zero units of `active`. When `active` is this
        node's own output of the previous step (a delayed edge: same storage, unchanged), the
        indices it was built from are reused instead of scanning every cell."""
        idx = self.remembered(active)
        return idx if idx is not None else active.nonzero(as_tuple=True)

    def remember(self, port: str, out: torch.Tensor, b_idx: torch.Tensor, flat_idx: torch.Tensor) -> None:
        self.remember_source(port, out, (b_idx, flat_idx - b_idx * self.C * self.K))

    def spread(self, active: torch.Tensor, with_synapses: bool = False, distal: torch.Tensor | None = None):
        """Distal input from the active units through their fan-out synapses (the weights
        `distal`, by default the node's): flat [B * C*K] (with_synapses: also the active
        (stream, cell) indices and the synapses' flat targets)."""
        B, n = active.shape[0], self.C * self.K
        b_idx, i_idx = self.active_units(active)
        rows = F.embedding(i_idx, self.distal if distal is None else distal, sparse=True)  # [A, F]: row-sparse gradient
        to = self.distal_to.index_select(0, i_idx)
        if B > 1:
            to = to.long() + (b_idx * n).unsqueeze(1)
        d = rows.new_zeros(B * n).index_add_(0, to.flatten(), rows.flatten())  # in place: no copy of the zeros
        return (d, (b_idx, i_idx), to.flatten()) if with_synapses else d

    def grow(self, units, to, b_win, win_cell, B: int) -> bool:
        """HTM's synapse growth, which random synapses need to learn a new transition: a winner
        cell that fewer than half of the previous winners reach gets a synapse from each of
        them. Each re-points its weakest synapse at the winner, with a weight that makes the
        whole context give threshold / 2 (a match, not yet a prediction). True if any grew."""
        b_src, i_src = units
        if i_src.numel() == 0:
            return False
        n, thr = self.C * self.K, self.p["threshold"]
        reach = self.distal.new_zeros(B * n).index_add_(0, to, self.distal.new_ones(to.shape[0]))
        if B == 1:  # every previous winner grows a synapse to every winner that needs one
            need = reach.index_select(0, win_cell) < i_src.shape[0] / 2
            if not bool(need.any()):
                return False
            self.repoint_grid(i_src, win_cell[need], thr / (2 * i_src.shape[0]))
            return True
        sources = torch.bincount(b_src, minlength=B).to(self.distal.dtype)  # previous winners per stream
        need = reach[win_cell] < sources[b_win] / 2
        if not bool(need.any()):
            return False
        gb, gj = b_win[need], win_cell[need] - b_win[need] * n
        ai, gi = (b_src.unsqueeze(1) == gb.unsqueeze(0)).nonzero(as_tuple=True)  # same-stream pairs
        self.repoint_pairs(i_src[ai], gj[gi], thr / (2 * sources[gb[gi]]))
        return True

    @torch.no_grad()
    def repoint_grid(self, rows, targets, weight: float) -> None:
        """Every row re-points its weakest synapses at all of `targets`."""
        k = min(targets.shape[0], self.fan_out)
        # the rows are distinct cells: each is read, changed and written back whole
        synapses = self.distal.index_select(0, rows)
        slots = synapses.abs().topk(k, dim=1, largest=False).indices
        self.distal.index_copy_(0, rows, synapses.scatter_(1, slots, weight))
        to = self.distal_to.index_select(0, rows)
        to.scatter_(1, slots, targets[:k].to(to.dtype).expand(rows.shape[0], -1))
        self.distal_to.index_copy_(0, rows, to)

    @torch.no_grad()
    def repoint_pairs(self, rows, targets, weights) -> None:
        """Row rows[j] re-points one of its weakest synapses at targets[j]."""
        order = torch.argsort(rows, stable=True)  # group the pairs by presynaptic cell
        rows, targets, weights = rows[order], targets[order], weights[order]
        uniq, counts = torch.unique_consecutive(rows, return_counts=True)
        k = min(int(counts.max()), self.fan_out)
        rank = torch.arange(rows.shape[0], device=rows.device) - (counts.cumsum(0) - counts).repeat_interleave(counts)
        slots = self.distal[uniq].abs().topk(k, dim=1, largest=False).indices
        pos = torch.arange(uniq.shape[0], device=rows.device).repeat_interleave(counts)
        keep = rank < k
        slot = slots[pos[keep], rank[keep]]
        self.distal[rows[keep], slot] = weights[keep]
        self.distal_to[rows[keep], slot] = targets[keep].to(self.distal_to.dtype)

    @staticmethod
    def per_stream(values: torch.Tensor, b_idx: torch.Tensor, B: int) -> torch.Tensor:
        if B == 1:
            return values.sum().reshape(1)
        return values.new_zeros(B).index_add(0, b_idx, values)

    def least_used_sparse(self, winner, best, c_act, B):
        """least_used_unless_matching for the active (stream, column) pairs only."""
        fresh = best < self.p["match_threshold"]
        cols, inv = (c_act, None) if B == 1 else torch.unique(c_act, return_inverse=True)
        noise = torch.rand((cols.shape[0], self.K), generator=self.generator).to(self.usage.device)
        fresh_cell = (self.usage.index_select(0, cols) + noise * (0.5 / B)).argmin(-1)
        if inv is not None:
            fresh_cell = fresh_cell[inv]  # one choice per column, shared by its streams
        winner = torch.where(fresh, fresh_cell, winner)
        if self.training:
            self.usage.view(-1).index_add_(0, c_act * self.K + fresh_cell, fresh.to(self.usage.dtype) / B)
        return winner

    def forward_fanout(self, columns, context, winner_context):
        """forward_fanout_autograd's step (without an apical input) as one function with a
        hand-derived backward (kernels/tm_fanout.py)."""
        want_cells = "cells" in self.used_outputs
        winners, cells, loss, anomaly, b_act, win_cells, cell_idx, fired, support = apply(
            FanoutTMStep, self, columns, self.distal, context, winner_context, want_cells, grad_nonzero_only(columns))
        out = {"winners": winners, "anomaly": anomaly, "loss": loss if loss is not None else columns.new_zeros(())}
        # The only entries whose gradient this step uses (a reader such as decoder.mlp then
        # computes its input gradient there only), and where the winners are non-zero.
        winners.grad_support = support
        self.remember("winners", winners, b_act, win_cells)
        mark_nonzero_at(winners, *self._sources["winners"][2])
        if cells is not None:
            out["cells"] = cells
            self.remember("cells", cells, b_act.unsqueeze(1).expand(-1, self.K)[fired], cell_idx[fired])
        return out

    def forward_fanout_autograd(self, columns, context, winner_context, apical):
        """The same step as forward() with fan-out synapses; identical semantics (ports, winner
        choice, losses and gradients, including the straight-through ones to the columns)."""
        B, C, K = columns.shape[0], self.C, self.K
        n, p = C * K, self.p
        thr, temp = p["threshold"], p["temperature"]
        col_active = columns != 0
        b_act, c_act = col_active.nonzero(as_tuple=True)  # [M] active (stream, column) pairs
        first = (b_act * C + c_act) * K  # flat index of each pair's first cell
        cell_idx = first.unsqueeze(1) + torch.arange(K, device=columns.device)  # [M, K]
        zero = columns.new_zeros(B * n)
        d, units, to = self.spread(context, True) if context is not None else (zero, None, None)
        source = context  # what learning grows synapses from
        d_learn = None
        if winner_context is not None:
            d_learn, units, to = self.spread(winner_context, True)
            source = winner_context
        d_apical = None
        if apical is not None:
            d_apical = self.gather(apical.flatten(1), self.apical, binary=False).reshape(-1)
            d = d + d_apical
            d_learn = d_learn + d_apical if d_learn is not None else None
        d_learn = d if d_learn is None else d_learn
        d_act = d[cell_idx]
        dl_act = d_learn[cell_idx] if d_learn is not d else d_act
        z = (d_act - thr) / temp  # [M, K]: only active columns fire, win or get the hit loss
        pred = z > 0
        col_pred = pred.any(-1)
        out = {}
        best, winner = dl_act.max(-1)
        if p["match_threshold"] > 0:
            winner = self.least_used_sparse(winner, best, c_act, B)
        d_choice = d_learn  # the input the winners were chosen by
        if self.training and units is not None and self.grow(units, to, b_act, first + winner, B):
            # This step already learns through the grown synapses (as a dense matrix would,
            # whose synapses all exist): the learning input is read again. The input read
            # before growing only chose the winners and gives no gradient.
            d_learn = self.spread(source) + (d_apical if d_apical is not None else 0)
            dl_act = d_learn[cell_idx]
        z_learn = (dl_act - thr) / temp if dl_act is not d_act else z
        col_vals = columns[b_act, c_act].unsqueeze(1)
        w_out = F.one_hot(winner, K).to(z.dtype)
        if p["downstream_grad"]:
            w_soft = torch.softmax(z_learn, -1)
            w_out = w_out + (w_soft - w_soft.detach())
        winners = columns.new_zeros(B * n).index_add_(0, cell_idx.flatten(), (col_vals * w_out).flatten())
        # Whether the inactive columns' gradient is read (htm.sp reads its winners' only)
        every = columns.requires_grad and not grad_nonzero_only(columns)
        if every:
            # Inactive columns output zeros but, as in forward(), pass the gradient at their
            # best matching cell back to the column (a straight-through SP learns from it).
            win_all = d_choice.view(B * C, K).argmax(-1) + torch.arange(B * C, device=d.device) * K
            winners = winners.index_add(0, win_all, (columns * ~col_active).flatten())
        out["winners"] = winners.view(B, n)
        if out["winners"].requires_grad:
            # The only entries whose gradient this step uses: the cells of the active columns
            # (their soft winners) and the inactive columns' best cells. A reader such as
            # decoder.mlp then computes its input gradient there only, not over all n cells.
            support = cell_idx.flatten()
            if every:
                support = torch.cat([support, win_all])
            out["winners"].grad_support = support
        self.remember("winners", out["winners"], b_act, first + winner)
        # Each active column's winner holds its value, every other cell 0 (a reader such as
        # decoder.mlp needs not scan the layer for them)
        mark_nonzero_at(out["winners"], *self._sources["winners"][2])
        if self.used_outputs & {"cells", "predicted"}:
            fire = pred.to(z.dtype) + (~col_pred).to(z.dtype).unsqueeze(-1)
            if every:  # exact straight-through gradient for every column
                pred_all = (d > thr).view(B, C, K)
                fire_all = pred_all.to(z.dtype) + (~pred_all.any(-1, keepdim=True)).to(z.dtype)
                out["cells"] = (columns.unsqueeze(-1) * fire_all).reshape(B, n)
            else:
                out["cells"] = zero.index_put((cell_idx.flatten(),), (col_vals * fire).flatten()).view(B, n)
            fired = fire > 0
            self.remember("cells", out["cells"], b_act.unsqueeze(1).expand(-1, K)[fired], cell_idx[fired])

        n_active = col_active.sum(1).clamp_min(1)
        hits = column_hits(z.detach(), col_pred, None, p["anomaly_mode"])
        out["anomaly"] = 1 - self.per_stream(hits, b_act, B) / n_active
        if context is not None or winner_context is not None or apical is not None:
            z_win = z_learn.gather(-1, winner.unsqueeze(-1)).squeeze(-1)
            hit = self.per_stream(F.relu(1 - z_win), b_act, B)
            # relu(1 + z) over every cell (an elementwise pass: cheaper than finding the cells
            # the context reached), minus the active columns' cells.
            false_all = F.relu(d_learn - (thr - temp)).view(B, n).sum(1) / temp
            false = false_all - self.per_stream(F.relu(1 + z_learn).sum(-1), b_act, B)
            out["loss"] = ((hit + p["false_prediction_weight"] * false) / n_active).mean()
        else:
            out["loss"] = columns.new_zeros(())
        if "predicted" in self.used_outputs:
            d_next = self.spread(out["cells"].detach()).view(B, C, K)
            out["predicted"] = torch.sigmoid((d_next.max(-1).values - thr) / temp)
        return out


NODE = TemporalMemory
