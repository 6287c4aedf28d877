"""htm.tm_segments: a temporal memory whose cells have distal segments, as in HTM.

Hawkins & Ahmad (2016), "Why neurons have thousands of synapses": each cell has several
dendritic segments; a segment is a short list of presynaptic cells with permanence-like
weights, and it is active when enough of ITS OWN synapses see active cells. A context that
shares most of its cells with another does not activate the other's segments, so two
contexts stay on different cells. htm.tm sums all of a cell's input (one segment per cell)
and merges such contexts; this node does not.

The forward state is exact HTM (active segments, predicted cells, bursting, winners, segment
growth). The weights learn by SGD on hinge losses with a temperature (see 'loss'); with
'downstream_grad', a downstream loss also reaches them through a softmax relaxation of each
column's winner. Streams of a batch share the segments and learn in turn.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node
from ..graph.spec import Param, Port
from .htm_tm import infer_tm_shapes


class SegmentTemporalMemory(Node):
    type_name = "htm.tm_segments"
    # 2: the active cells of earlier steps that fallback_steps reads are saved (extra state);
    # 3: whether each segment grew from a specific context (seg_specific)
    version = 3
    category = "htm"
    live_role = "tm"
    doc = ("Columns x cells, each cell with up to 'segments_per_cell' distal segments (lists of "
           "presynaptic cells and weights). A segment whose weights from the previous step's "
           "active cells sum past the threshold predicts its cell; in an active column the "
           "predicted cells fire and win, a column with none bursts and its winner is the cell "
           "of the best matching segment, else its least used cell, which grows a new segment "
           "from the previous winners. Learning segments grow synapses only up to 'sample_size' "
           "active ones, so a burst (a union of contexts) does not merge contexts.")
    inputs = (
        Port("columns", "sdr", "active columns from the SP, shape [C]"),
        Port("context", "sdr", "previous step's active cells (delayed edge from 'cells'), shape [C*K]",
             optional=True),
        Port("winner_context", "sdr", "previous step's winner cells (delayed edge from 'winners'), "
                                      "shape [C*K]; new synapses come from these only (default: the context)",
             optional=True),
    )
    outputs = (
        Port("cells", "sdr", "active cells: the predicted cells of active columns, or all their cells "
                             "when a column bursts; shape [C*K]"),
        Port("winners", "sdr", "the predicted cells of each active column, or the one winner of a "
                               "bursting column; shape [C*K]"),
        Port("predicted", "tensor", "probability that each column is active next step (sigmoid of its "
                                    "best segment's margin over the threshold; no gradient), shape [C]"),
        Port("anomaly", "scalar", "raw anomaly 1 - |predicted & active| / |active|, per stream"),
        Port("loss", "loss", "hinge losses on the segments' weights: learning segments reach the "
                             "threshold (active synapses grow, inactive ones decay), segments that "
                             "matched or predicted an inactive column weaken"),
    )
    params = (
        Param("cells_per_column", "int", 32, "cells per column (K)", min=1, max=256),
        Param("segments_per_cell", "int", 4, "most distal segments a cell holds; a new one replaces "
              "the cell's least recently used", min=1, max=1024),
        Param("synapses_per_segment", "int", 16, "most synapses a segment holds; growth replaces the "
              "weakest", min=1, max=1024),
        Param("sample_size", "int", 8, "a learning segment grows synapses from the previous winners "
              "until this many of its synapses see active cells (HTM's new-synapse count)", min=1, max=1024),
        Param("threshold", "float", 4.0, "summed weight (each in [0, 1]) of a segment's active synapses "
              "above which it is active and predicts its cell", min=1e-3, max=1e4),
        Param("match_threshold", "int", 5, "synapses (weight > 0) onto active cells at which a segment "
              "matches: a bursting column's winner is the cell of its best matching segment, which "
              "grows; keep it a majority of sample_size, or a half-burst (two contexts' cells active "
              "at once) lets one context's segment grow onto the other's cells", min=1, max=1024),
        Param("initial_weight", "float", 0.2, "weight of a newly grown synapse: well below threshold / "
              "sample_size, so a transition predicts after a few presentations, and one seen only now "
              "and then (a noise element's successor) never does", min=0.0, max=1.0),
        Param("context_initial_weight", "float", 0.0, "weight of the synapses of a new segment grown from "
              "a predicted context (most previous winners in columns that neither burst nor fell back); 0: "
              "initial_weight. Within one distal_lr step of threshold / sample_size, the next element of a "
              "sequence is predicted from its second presentation on instead of its fourth, so a long chain is "
              "learned faster, while a transition out of a burst (a noise element's successor) keeps "
              "initial_weight",
              min=0.0, max=1.0),
        Param("temperature", "float", 3.0, "temperature of the threshold's relaxation: learning stops "
              "one temperature past it, punishment one temperature below it", min=1e-4, max=100.0),
        Param("distal_lr", "float", 0.1, "SGD rate of the segment weights: the step of an active "
              "synapse of a learning segment (HTM's permanence increment)", min=0.0, max=100.0),
        Param("decay", "float", 0.2, "inactive synapses of a learning segment shrink by decay x "
              "distal_lr per step (an L1 term; HTM's permanence decrement)", min=0.0, max=100.0),
        Param("false_prediction_weight", "float", 0.75, "active synapses of a segment that matched or "
              "predicted a column that stays inactive shrink by this x distal_lr (HTM's predicted-"
              "segment decrement) when most of them see a specific context (cells of columns that did "
              "not burst). A successor that follows its context a fraction q of the time keeps predicting "
              "only while this is below about q / (1 - q): >= 1 keeps a transition seen half the time "
              "from predicting, 0.75 one seen a third of the time",
              min=0.0, max=100.0),
        Param("burst_false_prediction_weight", "float", 0.5, "the same for a segment driven mostly by "
              "cells of bursting columns: a burst predicts every successor its symbol has had, so all but "
              "one are wrong. A transition that follows a burst of its context a fraction q of the time "
              "keeps predicting only while this is below about q / (1 - q): 0.5 drops a noise element's "
              "random successors (q of 1/8 to 1/4 among 4-8 sequences) yet keeps the successors of a "
              "symbol that starts or recurs in two or three sequences", min=0.0, max=100.0),
        Param("column_fallback", "bool", False, "a column that no segment predicts from the previous "
              "active cells fires, instead of all its cells, those whose segments would be active if every "
              "previously active column had burst (context read at the level of columns), plus its winner; "
              "it bursts only when none would be. A symbol predicted in a cell of a rare context (a noise "
              "element's burst predicting a first element) then still passes on the context its column "
              "carries, where a burst would pass on every context. Winners, learning and anomaly stay those "
              "of a burst, so a new context is still learned on its own cells. With it, the continuations of a "
              "first element shared by several sequences (a third to a half of the time each) can be kept "
              "by false prediction weights of 0.25 (specific) and 0.4 (burst), and a noise element's "
              "successors seen a quarter of the time still drop"),
        Param("fallback_steps", "int", 1, "with column_fallback, how many steps back a column that no "
              "segment predicts reads its context. 1: the previous columns whole. d > 1: first the cells the "
              "last d - 1 elements fire when the element d steps back is read by columns (as if it had burst) "
              "and each later one by its cells and the cells so predicted; only where that finds no cell, "
              "d - 1 steps, and so on. A first element predicted in a cell of a noise symbol starts a chain of "
              "cells of that noise symbol; where the chain is not learned on, reading the previous columns "
              "whole fires the cells of every context of the previous symbol (the other pair's too, where a "
              "middle recurs), while a few steps further back the first element's columns still tell the pairs "
              "apart", min=1, max=8),
        Param("top_up_one_per_column", "bool", False, "an active segment (one that predicted its cell) "
              "tops itself up only from columns in which it has no live synapse, one cell per column. Without "
              "it, a segment of one context that is active while the previous symbol half bursts (its bursting "
              "columns drive the segment, its other columns fire another context's cells) grows onto that other "
              "context's cells, and once that context is learned the segment fires in both: two contexts merged "
              "on the same cells with no burst left to show it. Bursting columns' segments still grow freely, "
              "so a first element read through noise-dependent cells still predicts its successor"),
        Param("spare_specific_segments", "bool", False, "a segment grown from a specific context (most "
              "previous winners were predicted cells) that has learned it (its weights alone reach the "
              "threshold) is not weakened for a false prediction made while bursting columns' cells drive it: "
              "a burst is a union of contexts that need not contain its own, so the prediction was a hedge. "
              "Segments grown out of a burst (a noise element's successors) and those still learning are "
              "weakened by burst_false_prediction_weight. Without it, a symbol that recurs in several "
              "sequences and bursts in one of them (a first element after noise) wears down the segments "
              "of its other contexts"),
        Param("downstream_grad", "bool", False,
              "let downstream losses (e.g. a decoder's) reach the segment weights through the winners"),
    )

    @classmethod
    def infer(cls, p, shapes):
        return infer_tm_shapes(p, shapes)

    @classmethod
    def param_count(cls, p, shapes):
        segments = (shapes["columns"] or (1,))[0] * p["cells_per_column"] * p["segments_per_cell"]
        # per synapse a weight and a presynaptic index; per segment a last-used stamp and its origin
        return segments * (2 * p["synapses_per_segment"] + 2) + 1

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.C, self.K, self.S = shapes["columns"][0], p["cells_per_column"], p["segments_per_cell"]
        self.M = p["synapses_per_segment"]
        segments = self.C * self.K * self.S  # segment s belongs to cell s // S
        self.syn_w = nn.Parameter(torch.zeros(segments, self.M))
        self.register_buffer("syn_pre", torch.full((segments, self.M), -1, dtype=torch.int32))  # -1: empty
        # Step at which a segment was last active or learned (-1: free), for replacing the oldest.
        self.register_buffer("seg_stamp", torch.full((segments,), -1, dtype=torch.int64))
        self.register_buffer("clock", torch.zeros((), dtype=torch.int64))
        # Whether a segment was grown from a specific context (most previous winners predicted cells).
        self.register_buffer("seg_specific", torch.zeros((segments,), dtype=torch.bool))
        # Active cells of the steps before the previous one, newest first, for fallback_steps.
        self.past_cells: list[torch.Tensor] = []
        self.generator = None

    def setup(self, batch, generator):
        self.generator = generator

    def get_extra_state(self):
        # One tensor [steps, B, C*K] (one empty row when there are none: no zero-size tensors).
        cells = torch.stack(self.past_cells) if self.past_cells else torch.zeros(1, 1, 1, dtype=torch.bool)
        return {"past_steps": len(self.past_cells), "past_cells": cells.to(torch.uint8)}

    def set_extra_state(self, state):
        cells = state["past_cells"].to(self.syn_w.device) != 0
        self.past_cells = list(cells[:int(state["past_steps"])])

    @classmethod
    def migrate_state(cls, old_version, tensors, extra):
        if old_version not in (1, 2):
            return None
        # The origin of older segments is unknown: all count as grown out of a burst, which
        # keeps their false predictions weakened as before.
        tensors = {**tensors, "seg_specific": torch.zeros_like(tensors["seg_stamp"], dtype=torch.bool)}
        if old_version == 1:  # no earlier cells were kept: the fallback read one step back
            extra = {"past_steps": 0, "past_cells": torch.zeros(1, 1, 1, dtype=torch.uint8)}
        return tensors, extra

    def data_parallel_problem(self):
        return ("htm.tm_segments grows segments from each process's own streams, so the processes' "
                "segments would drift apart")

    def param_groups(self):
        return [{"params": [self.syn_w], "lr": self.p["distal_lr"], "optimizer": "sgd"}]

    # ---- segment activity ------------------------------------------------------------------

    def overlaps(self, active: torch.Tensor, segs: torch.Tensor):
        """For segments `segs` and presynaptic activity `active` [B, n] (bool): the summed
        weight of their active synapses [B, U] and the count of active synapses with weight > 0."""
        pre = self.syn_pre[segs].long()
        w = self.syn_w.detach()[segs]
        on = active[:, pre.clamp_min(0)] & (pre >= 0)  # [B, U, M]: gathers only the segments' synapses
        drive = (on * w.clamp(0, 1)).sum(-1)
        potential = (on & (w > 0)).sum(-1)
        return drive, potential

    def used_segments(self) -> torch.Tensor:
        return (self.seg_stamp >= 0).nonzero().squeeze(1)

    def predicted_cells(self, drive: torch.Tensor, segs: torch.Tensor, B: int) -> torch.Tensor:
        """[B, C, K] bool: cells with an active segment."""
        n = self.C * self.K
        pred = torch.zeros(B, n, dtype=torch.bool, device=drive.device)
        b, u = (drive > self.p["threshold"]).nonzero(as_tuple=True)
        pred[b, segs[u] // self.S] = True
        return pred.view(B, self.C, self.K)

    @torch.no_grad()
    def predicted_by(self, context: torch.Tensor) -> torch.Tensor:
        """Cells that `context` (active cells [B, n]) predicts, bool [B, C, K]: for live views."""
        segs = self.used_segments()
        drive, _ = self.overlaps(context != 0, segs)
        return self.predicted_cells(drive, segs, context.shape[0])

    # ---- one stream's winners and growth (no gradient) -----------------------------------------

    @torch.no_grad()
    def choose_and_grow(self, b, segs, drive, potential, col_active, cell_pred, prev_win, learn_mask,
                        prev_specific=False):
        """Winners of stream b [C, K] (bool); in training, marks the learning segments in
        learn_mask[b] and grows new segments and synapses."""
        C, K, S, p = self.C, self.K, self.S, self.p
        seg_cell = segs // S
        seg_col = seg_cell // K
        col_pred = cell_pred.any(-1)
        burst = col_active & ~col_pred
        winners = cell_pred & col_active.unsqueeze(-1)
        # Learning segments of predicted columns: their active segments.
        learn = (drive > p["threshold"]) & col_active[seg_col]
        # Bursting columns: the best matching segment (most active potential synapses).
        match = (potential >= p["match_threshold"]) & burst[seg_col]
        P = self.seg_stamp.shape[0]
        score = potential[match] * P + (P - 1 - segs[match])  # ties: the lower segment index
        best = torch.full((C,), -1, dtype=torch.int64, device=segs.device)
        best.scatter_reduce_(0, seg_col[match], score, "amax")
        matched = best >= 0
        best_seg = P - 1 - best[matched] % P
        winners.view(-1)[best_seg // S] = True
        learn_segs = torch.cat([segs[learn], best_seg])
        top_up = torch.cat([potential[learn], potential[torch.searchsorted(segs, best_seg)]])  # segs is sorted
        # Bursting columns with no match: the least used cell (fewest segments, ties at random).
        fresh_cols = (burst & ~matched).nonzero().squeeze(1)
        if fresh_cols.numel():
            counts = (self.seg_stamp.view(C, K, S)[fresh_cols] >= 0).sum(-1).float()
            noise = torch.rand(counts.shape, generator=self.generator).to(counts.device)
            fresh_cell = fresh_cols * K + (counts + 0.5 * noise).argmin(-1)
            winners.view(-1)[fresh_cell] = True
        if not self.training:
            return winners
        n_new = 0
        if fresh_cols.numel() and prev_win.numel():
            new_segs = self.new_segments(fresh_cell)
            n_new = new_segs.shape[0]
            self.seg_specific[new_segs] = bool(prev_specific)
            learn_segs = torch.cat([learn_segs, new_segs])
            top_up = torch.cat([top_up, top_up.new_zeros(n_new)])
        if learn_segs.numel():
            learn_mask[b, learn_segs] = True
            self.seg_stamp[learn_segs] = self.clock
            weight = torch.full(learn_segs.shape, p["initial_weight"], device=learn_segs.device)
            if prev_specific and p["context_initial_weight"] > 0 and n_new:
                weight[-n_new:] = p["context_initial_weight"]
            one_per_column = torch.zeros(learn_segs.shape, dtype=torch.bool, device=learn_segs.device)
            if p["top_up_one_per_column"]:
                one_per_column[:int(learn.sum())] = True  # the active segments come first in learn_segs
            self.grow(learn_segs, (p["sample_size"] - top_up).clamp_min(0), prev_win, weight, one_per_column)
        return winners

    def new_segments(self, cells: torch.Tensor) -> torch.Tensor:
        """A fresh segment on each cell: a free slot, else the cell's least recently used one."""
        slot = self.seg_stamp.view(-1, self.S)[cells].argmin(-1)  # free slots hold -1
        segs = cells * self.S + slot
        self.syn_pre[segs] = -1
        self.syn_w.data[segs] = 0.0
        self.seg_stamp[segs] = self.clock
        return segs

    def grow(self, segs: torch.Tensor, want: torch.Tensor, prev_win: torch.Tensor, weight: torch.Tensor,
             one_per_column: torch.Tensor) -> None:
        """Segment segs[i] grows up to want[i] synapses of weight[i] from a random sample of the
        previous winners it has no synapse from (where one_per_column[i], none in a column it has a
        live synapse in), into its empty or dead slots first, then its weakest."""
        if prev_win.numel() == 0 or int(want.max()) == 0:
            return
        pre = self.syn_pre[segs].long()  # [L, M]
        w = self.syn_w.data[segs]
        has = (pre.unsqueeze(-1) == prev_win.view(1, 1, -1)).any(1)  # [L, W]
        pick = torch.rand(has.shape, generator=self.generator).to(w.device)
        if bool(one_per_column.any()):
            has = has | (self.column_taken(pre, w, prev_win, pick) & one_per_column.unsqueeze(1))
        pick[has] = 2.0  # already presynaptic (or its column is): never picked
        cand = pick.argsort(1)
        G = min(prev_win.shape[0], self.M)
        n_grow = torch.minimum(want, (~has).sum(1)).clamp_max(G)
        key = torch.where(pre < 0, -2.0, torch.where(w <= 0, -1.0, w))  # empty, dead, then weakest
        slots = key.argsort(1)[:, :G]
        ok = torch.arange(G, device=w.device).unsqueeze(0) < n_grow.unsqueeze(1)  # [L, G]
        rows = segs.unsqueeze(1).expand(-1, G)[ok]
        cols = slots[ok]
        self.syn_pre[rows, cols] = prev_win[cand[:, :G]][ok].to(self.syn_pre.dtype)
        self.syn_w.data[rows, cols] = weight.unsqueeze(1).expand(-1, G)[ok]

    def column_taken(self, pre, w, prev_win, pick) -> torch.Tensor:
        """[L, W] bool: candidates (previous winners) a segment may not grow onto because it has a
        live synapse in their column already, or because another candidate of the same column
        drew a lower random pick: at most one cell per presynaptic column."""
        K = self.K
        cand_col = (prev_win // K).view(1, -1).expand(pre.shape[0], -1)
        live_cols = torch.zeros(pre.shape[0], self.C + 1, dtype=torch.bool, device=pre.device)
        live = (pre >= 0) & (w > 0)
        live_cols.scatter_(1, torch.where(live, pre // K, self.C), True)  # column C: a dump for the others
        first = torch.full((pre.shape[0], self.C), 3.0, device=pick.device)
        first.scatter_reduce_(1, cand_col, pick, "amin")
        return live_cols[:, :self.C].gather(1, cand_col) | (pick > first.gather(1, cand_col))

    def columns_of(self, cells: torch.Tensor) -> torch.Tensor:
        """[B, C*K] cells -> [B, C] the columns with any of them."""
        return cells.view(cells.shape[0], self.C, self.K).any(-1)

    def whole_columns(self, cols: torch.Tensor) -> torch.Tensor:
        """[B, C] active columns -> [B, C*K] every cell of them."""
        B = cols.shape[0]
        return cols.unsqueeze(-1).expand(B, self.C, self.K).reshape(B, self.C * self.K)

    def predicted_in(self, active: torch.Tensor, cols: torch.Tensor, segs: torch.Tensor) -> torch.Tensor:
        """[B, C*K] the cells of columns `cols` [B, C] that `active` cells [B, C*K] predict."""
        B = cols.shape[0]
        segs = segs[cols.any(0)[segs // (self.S * self.K)]]
        drive, _ = self.overlaps(active, segs)
        return self.predicted_cells(drive, segs, B).view(B, -1) & self.whole_columns(cols)

    def read_from(self, past: list, prev_act: torch.Tensor, segs: torch.Tensor) -> torch.Tensor:
        """The previous cells with those predicted when the oldest of `past` (cells of earlier steps,
        newest first) is read by its columns and each later step by its cells and the cells so predicted."""
        read = self.whole_columns(self.columns_of(past[-1]))
        for cells in past[-2::-1] + [prev_act]:
            read = cells | self.predicted_in(read, self.columns_of(cells), segs)
        return read

    @torch.no_grad()
    def column_fallback(self, fire, prev_act, segs, burst, winners, past=()):
        """Cells that fire [B, C, K]: in bursting columns, the cells predicted when each previously
        active column counts as bursting, plus the winner; all cells where there are none. With
        `past` (active cells of earlier steps, newest first), first the cells predicted when the
        oldest of them is read by columns (read_from), then the next oldest, and so on."""
        B, C, K = burst.shape[0], self.C, self.K
        whole = self.whole_columns(self.columns_of(prev_act))
        partial = (whole & ~prev_act).any(1)  # streams where some previous column did not burst
        if not bool((partial & burst.any(1)).any()):
            return fire
        todo = burst & partial.view(B, 1)
        by_column = torch.zeros(B, C, K, dtype=torch.bool, device=fire.device)
        for d in range(len(past), -1, -1):  # the furthest read first; d = 0: the previous columns whole
            read = self.read_from(list(past[:d]), prev_act, segs) if d else whole
            cells = self.predicted_in(read, todo, segs).view(B, C, K)
            found = cells.any(-1)
            by_column |= cells
            todo = todo & ~found
            if not bool(todo.any()):
                break
        found = by_column.any(-1, keepdim=True)
        return torch.where(found, (by_column | winners).to(fire.dtype), fire)

    # ---- the step ---------------------------------------------------------------------------

    def forward(self, ctx, columns, context=None, winner_context=None):
        B, C, K, p = columns.shape[0], self.C, self.K, self.p
        n, temp, thr = C * K, p["temperature"], p["threshold"]
        col_active = columns != 0
        prev_act = context != 0 if context is not None else None
        prev_win = winner_context != 0 if winner_context is not None else prev_act
        if prev_act is None:
            prev_act = prev_win if prev_win is not None else torch.zeros(B, n, dtype=torch.bool, device=columns.device)
            prev_win = prev_act
        segs = self.used_segments()
        drive, potential = self.overlaps(prev_act, segs)
        cell_pred = self.predicted_cells(drive, segs, B)
        learn_mask = torch.zeros(B, self.seg_stamp.shape[0], dtype=torch.bool, device=columns.device)
        prev_specific = [False] * B
        if p["context_initial_weight"] > 0 or p["spare_specific_segments"]:
            # Winners of columns that were predicted (all their active cells won: no burst, no
            # fallback): a new segment grown from them reads a known context.
            extra = self.whole_columns(self.columns_of(prev_act & ~prev_win))
            prev_specific = ((prev_win & ~extra).sum(1) * 2 > prev_win.sum(1)).tolist()
        winners = torch.stack([
            self.choose_and_grow(b, segs, drive[b], potential[b], col_active[b], cell_pred[b],
                                 prev_win[b].nonzero().squeeze(1), learn_mask, prev_specific[b])
            for b in range(B)])
        if self.training:
            active_segs = drive > thr
            self.seg_stamp[segs[active_segs.any(0)]] = self.clock
            self.clock += 1
        col_pred = cell_pred.any(-1)
        out = {}
        # Exact HTM: predicted cells of an active column fire; with none predicted, all fire.
        fire = cell_pred.to(columns.dtype) + (~col_pred).to(columns.dtype).unsqueeze(-1)
        if p["column_fallback"]:
            past = [c for c in self.past_cells if c.shape == prev_act.shape] if context is not None else []
            fire = self.column_fallback(fire, prev_act, segs, col_active & ~col_pred, winners, past)
            self.past_cells = ([prev_act] + past)[:p["fallback_steps"] - 1] if context is not None else []
        out["cells"] = (columns.unsqueeze(-1) * fire).reshape(B, n)
        n_active = col_active.sum(1).clamp_min(1)
        out["anomaly"] = 1 - (col_pred & col_active).sum(1) / n_active

        # Segments that learn by gradient: the learning ones, those that predicted a column that
        # stayed inactive and, for the winners' relaxation, every segment of an active column.
        seg_col = segs // (self.S * K)
        false_mask = torch.zeros_like(learn_mask)
        # As in HTM, matching segments too (not only active ones) of columns that stay inactive.
        wrong = (drive > thr) | (potential >= p["match_threshold"])
        b_f, u_f = (wrong & ~col_active[:, seg_col]).nonzero(as_tuple=True)
        false_mask[b_f, segs[u_f]] = True
        rows = learn_mask | false_mask
        soft = p["downstream_grad"] and torch.is_grad_enabled()
        if soft:
            now = self.used_segments()
            in_active = torch.zeros_like(rows)
            b_a, u_a = col_active[:, now // (self.S * K)].nonzero(as_tuple=True)
            in_active[b_a, now[u_a]] = True
            rows = rows | in_active
        b_r, s_r = rows.nonzero(as_tuple=True)
        w = F.embedding(s_r, self.syn_w, sparse=True).clamp(0, 1)  # row-sparse gradient
        pre = self.syn_pre[s_r].long()
        exists = pre >= 0
        on = prev_act[b_r.unsqueeze(1), pre.clamp_min(0)] & exists
        z = ((on * w).sum(-1) - thr) / temp
        learning, falsely = learn_mask[b_r, s_r], false_mask[b_r, s_r]
        hit = temp * F.relu(1 - z[learning]).sum()
        decay = p["decay"] * (w * (exists & ~on))[learning].sum()
        # A false prediction drawn mostly from bursting columns' cells is a hedge, not a context's error.
        prev_burst = prev_act.view(B, C, K).all(-1)
        from_burst = (on & prev_burst[b_r.unsqueeze(1), pre.clamp_min(0) // K]).sum(-1) * 2 > on.sum(-1)
        weight = torch.where(from_burst, p["burst_false_prediction_weight"], p["false_prediction_weight"])
        if p["spare_specific_segments"]:
            # A segment that has learned a specific context (its weights alone reach the threshold),
            # driven now by a burst (a union of contexts that need not include its own), was not
            # shown its context: no error to punish. One still learning is weakened as before, so
            # a context seen only now and then (a chain started in a noise symbol's cell) fades.
            learned = (w.detach() * exists).sum(-1) >= thr
            weight = torch.where(from_burst & self.seg_specific[s_r] & learned, 0.0, weight)
        false = (weight * temp * F.relu(1 + z))[falsely].sum()
        out["loss"] = (hit + decay + false) / B

        hard = winners.to(columns.dtype)
        if soft:
            # Softmax over each column's cells of their best segment's margin: the relaxed winner.
            z_cell = z.new_full((B * n,), -thr / temp)
            keep = in_active[b_r, s_r]
            z_cell = z_cell.scatter_reduce(0, (b_r * n + s_r // self.S)[keep], z[keep], "amax")
            z_cell = z_cell.view(B, C, K)
            # Inactive columns output zeros but pass their gradient to the column at one cell.
            idle = F.one_hot(z_cell.detach().argmax(-1), K).to(hard.dtype) * (~col_active).unsqueeze(-1)
            w_soft = torch.softmax(z_cell, -1)
            w_out = hard + idle + (w_soft - w_soft.detach())
        else:
            w_out = hard
        out["winners"] = (columns.unsqueeze(-1) * w_out).reshape(B, n)
        if "predicted" in self.used_outputs:
            with torch.no_grad():
                now = self.used_segments()
                d_next, _ = self.overlaps(out["cells"].detach() != 0, now)
                best = d_next.new_zeros(B, C).scatter_reduce(1, (now // (self.S * K)).expand(B, -1), d_next, "amax")
                out["predicted"] = torch.sigmoid((best - thr) / temp)
        return out


NODE = SegmentTemporalMemory
