"""htm.tm's training step (dense distal matrix) as one autograd function.

At batch 1 the step is bound by its count of small operators, not by its FLOPs. Here the
forward runs without recording anything for autograd, and the backward is derived by hand
(checked against autograd by tests/test_fused_tm.py): it needs fewer operators than
autograd's replay of the forward, and none of its bookkeeping.

Every shape in the step is fixed by the batch, the layer and the number of presynaptic
rows gathered, never by the data: the rows come as a [B, A] index tensor with 0/1 weights
(padding rows weigh 0), so the step can be captured in a CUDA graph or compiled.
"""
import torch
import torch.nn.functional as F

from .rows import distinct_rows_grad


_OFFSETS: dict[tuple, torch.Tensor] = {}  # (B, A, device) -> the bags' first rows; ("bags", B, A, device) -> each row's bag
# Up to this many cells over the batch, a step's operators cost their call more than their
# work: one call each then; above it, the layouts that run faster.
SMALL = 32768


def gather_rows(weights: torch.Tensor, rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Sum over a of scale[b, a] * weights[rows[b, a]]: [B, n]. One embedding-bag call (the
    aten one: F.embedding_bag's argument checks and offsets cost as much as the sum)."""
    B, A = rows.shape
    if A == 0:
        return weights.new_zeros(B, weights.shape[1])
    key = (B, A, rows.device)
    offsets = _OFFSETS.get(key)
    if offsets is None:
        offsets = _OFFSETS[key] = torch.arange(0, B * A, A, device=rows.device)
    return torch.embedding_bag(weights, rows.reshape(-1), offsets, False, 0, False, scale.reshape(-1))[0]


def cell_sum(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """x.sum(-1) over the K cells of each column [B, C, K]. In a batch, as a matrix-vector
    product: a reduction over a last dimension of a few elements is several times slower
    on CPUs (for a small step the single call is cheaper)."""
    if x.numel() <= SMALL:
        return x.sum(-1, keepdim=keepdim)
    out = x @ x.new_ones(x.shape[-1])
    return out.unsqueeze(-1) if keepdim else out


def cell_softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax over each column's cells, along the column axis of the transposed view: the
    same values (to rounding), several times faster for a short last dimension at any size
    (26 µs against 7 at 256 x 5 on one CPU thread). Small steps keep the transposed layout;
    the backward's products read it as they read any tensor."""
    soft = torch.softmax(z.transpose(-1, -2), -2).transpose(-1, -2)
    return soft if z.numel() <= SMALL else soft.contiguous()


def row_sparse_grad(rows: torch.Tensor, scale: torch.Tensor, grad_d: torch.Tensor, shape) -> torch.Tensor:
    """The gradient of gather_rows with respect to its weights, row-sparse as an embedding
    bag's (sparse=True): plain SGD then touches only the gathered rows."""
    values = (scale.unsqueeze(-1) * grad_d.unsqueeze(1)).reshape(-1, grad_d.shape[1])
    return torch.sparse_coo_tensor(rows.reshape(1, -1), values, shape, check_invariants=False)


def distal_grad(rows: torch.Tensor, scale: torch.Tensor, grad_d: torch.Tensor, shape) -> torch.Tensor:
    """The gradient of gather_rows with respect to its weights, row-sparse. In a batch the
    streams gather many of the same rows: each distinct row once (kernels/rows.py)."""
    B, A = rows.shape
    if B == 1:
        return row_sparse_grad(rows, scale, grad_d, shape)
    key = ("bags", B, A, rows.device)
    bags = _OFFSETS.get(key)
    if bags is None:  # the stream of each gathered row
        bags = _OFFSETS[key] = torch.arange(B, device=rows.device).repeat_interleave(A)
    return distinct_rows_grad(grad_d, rows.reshape(-1), bags, scale.reshape(-1), shape)


def column_hits(z: torch.Tensor, col_pred: torch.Tensor, col_active, mode: str) -> torch.Tensor:
    """How far each column counts as predicted, for the raw anomaly: 0/1 (binary) or the
    sigmoid of its most depolarized cell's margin z = (input - threshold) / temperature
    (graded). z: [..., K] cells; col_active (or None: all count) masks the columns."""
    hits = torch.sigmoid(z.max(-1).values) if mode == "graded" else col_pred.to(z.dtype)
    return hits if col_active is None else hits * col_active


class FusedTMStep(torch.autograd.Function):
    """One htm.tm step. Inputs: the node (for its params, usage and winner choice), the
    columns [B, C], the distal matrix [n, n], the rows of the context and of the winner
    context with their weights ([B, A] each; the winner context's are None when it is the
    context), the apical matrix and input (or None), and optionally the active columns of each
stream ([B, W] indices, padded with inactive ones: only their cells' softmax is kept for the
backward, the others' gets no gradient). Outputs: winners [B, n], cells [B, n]
    (None unless wanted), the loss (None without any context), and, without gradient, the
    winner cell of each column [B, C], the raw anomaly [B] and the active column count [B]."""

    @staticmethod
    def forward(ctx, tm, columns, distal, rows, scale, learn_rows, learn_scale, apical_w, apical,
                want_cells: bool, has_context: bool, active=None):
        p = tm.p
        B, C, K = columns.shape[0], tm.C, tm.K
        thr, temp = p["threshold"], p["temperature"]
        d = gather_rows(distal, rows, scale)
        d_learn = None if learn_rows is None else gather_rows(distal, learn_rows, learn_scale)
        if apical is not None:
            d_apical = apical @ apical_w
            d = d + d_apical
            d_learn = None if d_learn is None else d_learn + d_apical
        d_learn = d if d_learn is None else d_learn
        d3 = d.view(B, C, K)
        dl3 = d_learn.view(B, C, K)
        col_active = columns != 0
        best, winner = dl3.max(-1)
        if p["match_threshold"] > 0:
            winner = tm.least_used_unless_matching(winner, best, col_active)
        at_winner = winner.unsqueeze(-1)
        col = columns.unsqueeze(-1)
        winners = torch.zeros_like(dl3).scatter_(-1, at_winner, col).view(B, C * K)
        cells = fire = None
        if not want_cells:  # a column is predicted when its most depolarized cell is: one short reduction, not two
            col_pred = (best if d_learn is d else d3.amax(-1)) > thr
        else:
            pred = d3 > thr
            col_pred = pred.any(-1)
            fire = pred.to(d.dtype).add_((~col_pred).to(d.dtype).unsqueeze(-1))
            cells = (col * fire).view(B, C * K)
        count = col_active.sum(1)
        n_active = count.clamp_min(1)
        z = (d3 - thr).div_(temp) if p["anomaly_mode"] == "graded" else d3
        anomaly = 1 - column_hits(z, col_pred, col_active, p["anomaly_mode"]).sum(1) / n_active
        z_learn = (dl3 - thr).div_(temp)
        z_win = z_learn.gather(-1, at_winner).squeeze(-1)
        loss = None
        if has_context:
            # Per column: the hit hinge where it is active, the weighted false ones where not.
            false = cell_sum(F.relu(1 + z_learn)).mul_(p["false_prediction_weight"])
            per_col = torch.where(col_active, F.relu(1 - z_win), false)
            loss = (per_col.sum(1) / n_active).mean()
        soft = at_active = None
        if p["downstream_grad"]:
            # The soft winners pass the gradient of active columns only (inactive ones output
            # zero whatever their softmax): given those columns, only their cells' softmax.
            if active is None:
                soft = cell_softmax(z_learn)
            else:
                at_active = active.unsqueeze(-1).expand(-1, -1, K)
                soft = cell_softmax(z_learn.gather(1, at_active))
        ctx.tm, ctx.has_context, ctx.want_cells = tm, has_context, want_cells
        ctx.has_apical = apical is not None
        ctx.save_for_backward(columns, col_active, at_winner, z_win, z_learn, soft, at_active, fire, n_active,
                              rows if learn_rows is None else learn_rows,
                              scale if learn_rows is None else learn_scale, apical_w, apical)
        ctx.mark_non_differentiable(winner, anomaly, count)
        ctx.set_materialize_grads(False)
        return winners, cells, loss, winner, anomaly, count

    @staticmethod
    def backward(ctx, g_winners, g_cells, g_loss, *_):
        (columns, col_active, at_winner, z_win, z_learn, soft, at_active, fire, n_active,
         rows, scale, apical_w, apical) = ctx.saved_tensors
        p = ctx.tm.p
        B, C, K = z_learn.shape
        g_columns = None
        g_z = g_soft = None
        if g_winners is not None:
            g_w = g_winners.view(B, C, K)
            # winners = columns * (one-hot + softmax - softmax.detach()): the column gets the
            # gradient at its winner, the winner's softmax over the column's cells the rest.
            g_columns = g_w.gather(-1, at_winner).squeeze(-1)
            if soft is not None and at_active is None:
                g_s = columns.unsqueeze(-1) * g_w
                g_z = soft * (g_s - cell_sum(g_s * soft, keepdim=True))
            elif soft is not None:  # the active columns' cells only, [B, W, K]
                g_s = columns.gather(1, at_active[..., 0]).unsqueeze(-1) * g_w.gather(1, at_active)
                g_soft = soft * (g_s - cell_sum(g_s * soft, keepdim=True))
        if g_cells is not None and fire is not None:
            g_fire = cell_sum(g_cells.view(B, C, K) * fire)
            g_columns = g_fire if g_columns is None else g_columns + g_fire
        if g_loss is not None and ctx.has_context:
            per = g_loss / (B * n_active)  # d loss / d (hit + w * false) of each stream
            # relu(1 + z) of the inactive columns' cells, relu(1 - z) of the active ones' winners
            false = (z_learn > -1) & (~col_active).unsqueeze(-1)
            g_loss_z = false * (p["false_prediction_weight"] * per).view(B, 1, 1)
            hit = (z_win < 1) & col_active
            g_loss_z.scatter_add_(-1, at_winner, (hit * -per.unsqueeze(-1)).unsqueeze(-1))
            g_z = g_loss_z if g_z is None else g_z + g_loss_z
        if g_soft is not None:  # padding columns add zero: their column value is zero
            g_z = g_z.scatter_add_(1, at_active, g_soft) if g_z is not None else \
                g_soft.new_zeros(B, C, K).scatter_(1, at_active, g_soft)
        g_distal = g_apical_w = g_apical = None
        if g_z is not None:
            g_d = (g_z / p["temperature"]).reshape(B, C * K)
            if ctx.needs_input_grad[2]:
                g_distal = distal_grad(rows, scale, g_d, (C * K, C * K))
            if ctx.has_apical:
                if ctx.needs_input_grad[7]:
                    g_apical_w = apical.transpose(0, 1) @ g_d
                if ctx.needs_input_grad[8]:
                    g_apical = g_d @ apical_w.transpose(0, 1)
        if g_columns is not None and not ctx.needs_input_grad[1]:
            g_columns = None
        return None, g_columns, g_distal, None, None, None, None, g_apical_w, g_apical, None, None, None
