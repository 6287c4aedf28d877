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

from .rows import distinct_rows_grad


_CONSTANTS: dict[tuple, torch.Tensor] = {}  # index tensors that depend only on shapes, made once per key
# Up to this many cells over the batch, a step's operators cost their call more than their
# work: one call each then; above it, the layouts that run faster.
SMALL = 32768


def _constant(key: tuple, make) -> torch.Tensor:
    """The tensor make() builds for this key, built on first use: a step reuses it."""
    t = _CONSTANTS.get(key)
    if t is None:
        t = _CONSTANTS[key] = make()
    return t


def gather_rows(weights: torch.Tensor, rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Sum over a of scale[b, a] * weights[rows[b, a]]: [B, n]. One embedding-bag call (the
    aten one: F.embedding_bag's argument checks and offsets cost as much as the sum)."""
    B, A = rows.shape
    if A == 0:
        return weights.new_zeros(B, weights.shape[1])
    offsets = _constant(("offsets", B, A, rows.device), lambda: torch.arange(0, B * A, A, device=rows.device))
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
    # the stream of each gathered row
    bags = _constant(("bags", B, A, rows.device), lambda: torch.arange(B, device=rows.device).repeat_interleave(A))
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
    context), the apical matrix and input (or None), whether the cells and the winners are
    wanted, whether any context is wired, the active columns of each stream ([B, W] indices
    in ascending order, padded with inactive ones; None: found here) and whether any of
    them is padding, and whether the columns' producer reads their gradient at the active
    columns only (htm.sp). Outputs: winners [B, n] and cells [B, n] (None unless wanted), the loss
    (None without any context), and, without gradient, the winner cell of each of the W
    columns (flat indices [B, W]; None unless the winners are wanted), which of their cells
    fired ([B, W * K]; None unless the cells are wanted), the raw anomaly [B] and the active
    column count [B].

    Only the distal input and the false-prediction hinge (a cell of an inactive column
    predicted) span every cell. The winners, the cells that fire, the anomaly, the hit hinge
    and the soft winners are worked out on the W active columns' cells. Every column's
    winner is found only when the columns want a gradient there: an inactive column passes
    the gradient at its best matching cell (for a straight-through SP), which htm.sp drops."""

    @staticmethod
    def forward(ctx, tm, columns, distal, rows, scale, learn_rows, learn_scale, apical_w, apical,
                want_cells: bool, has_context: bool, active=None, want_winners: bool = True, padded: bool = True,
                active_grad_only: bool = False):
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
        if active is None:
            active, padded = tm.active_columns(columns != 0), True
        W = active.shape[1]
        col_at = columns.gather(1, active)  # [B, W]: the active columns' values, 0 for padding
        on = col_at != 0 if padded else None  # None: every one is active
        cells_at = tm.cells_of(active)  # [B, W * K]: their cells' flat indices
        # z = (input - threshold) / temperature: the hinges' margin, and z > 0 where input > threshold
        z_learn = (d_learn - thr).div_(temp)
        zl_at = z_learn.gather(1, cells_at).view(B, W, K)
        z_at = zl_at if d_learn is d else ((d.gather(1, cells_at) - thr) / temp).view(B, W, K)
        # The columns learn: every column's winner and firing, unless only the active ones'
        # gradient is read, which their winners and cells below give.
        every = ctx.needs_input_grad[1] and not active_grad_only
        win_all = fire_all = None
        # The winner is the cell most depolarized by its input itself: z may round two inputs to one value.
        if every:
            best, win_all = d_learn.view(B, C, K).max(-1)
            if p["match_threshold"] > 0:
                win_all = tm.least_used_unless_matching(win_all, best, columns != 0)
            winner = win_all.gather(1, active)
        else:
            best, winner = d_learn.gather(1, cells_at).view(B, W, K).max(-1)
            if p["match_threshold"] > 0:
                winner = tm.least_used_at(winner, best, col_at != 0, active)
        at_winner = winner.unsqueeze(-1)
        winners = cells = win_cells = fired = None
        if want_winners:  # padding columns write their zero at one of their cells
            win_cells = winner + active * K
            winners = columns.new_zeros(B, C * K).scatter_(1, win_cells, col_at)
        if want_cells:
            # Exact HTM: the predicted cells of an active column fire; with none predicted, all fire.
            pred = z_at > 0
            col_pred = pred.any(-1)
            fire = torch.where(col_pred.unsqueeze(-1), pred, True)
            cells = columns.new_zeros(B, C * K).scatter_(1, cells_at, (col_at.unsqueeze(-1) * fire).view(B, -1))
            fired = (fire if on is None else fire & on.unsqueeze(-1)).view(B, -1)
            if every:
                pred3 = d.view(B, C, K) > thr
                fire_all = pred3.to(d.dtype).add_((~pred3.any(-1)).to(d.dtype).unsqueeze(-1))
        else:  # a column is predicted when its most depolarized cell is
            col_pred = z_at.amax(-1) > 0
        hits = torch.sigmoid(z_at.amax(-1)) if p["anomaly_mode"] == "graded" else col_pred
        if on is None:
            count = n_active = None
            anomaly = 1 - torch.mean(hits, 1, dtype=d.dtype)
        else:
            count = on.sum(1)
            n_active = count.clamp_min(1)
            anomaly = 1 - (hits * on).sum(1, dtype=d.dtype) / n_active
        z_win = zl_at.gather(-1, at_winner).squeeze(-1)
        loss = false_cells = None
        if has_context:
            # The hit hinge at each active column's winner; the weighted false ones, relu(1 + z),
            # at every cell of the inactive columns (padding columns are inactive ones). z itself
            # is not needed past here: its cells turn into the false hinges in place.
            false_cells = z_learn.add_(1).relu_()
            masked = 0.0 if on is None else (false_cells.gather(1, cells_at).view(B, W, K) * ~on.unsqueeze(-1)).view(B, -1)
            false = false_cells.scatter_(1, cells_at, masked).sum(1)
            hit = (1 - z_win).relu_()
            if on is None:
                per_stream = torch.add(hit.sum(1), false, alpha=p["false_prediction_weight"]).div_(W)
            else:
                per_stream = torch.add((hit * on).sum(1), false, alpha=p["false_prediction_weight"]).div_(n_active)
            loss = per_stream.view(()) if B == 1 else per_stream.mean()
        soft = None
        if p["downstream_grad"] and want_winners:
            # The soft winners pass the gradient of active columns only (inactive ones output
            # zero whatever their softmax): only their cells' softmax.
            soft = cell_softmax(zl_at)
        ctx.tm, ctx.has_context, ctx.W = tm, has_context, W
        ctx.has_apical = apical is not None
        at_only = ctx.needs_input_grad[1] and active_grad_only
        ctx.save_for_backward(col_at, on, cells_at, at_winner, z_win, false_cells, soft, win_all, fire_all, n_active,
                              rows if learn_rows is None else learn_rows,
                              scale if learn_rows is None else learn_scale, apical_w, apical,
                              active if at_only else None, fire if at_only and want_cells else None)
        if count is None:  # every stream has all W
            count = _constant(("count", B, W, columns.device), lambda: torch.full((B,), W, device=columns.device))
        ctx.mark_non_differentiable(*(t for t in (win_cells, fired, anomaly, count) if t is not None))
        ctx.set_materialize_grads(False)
        return winners, cells, loss, win_cells, fired, anomaly, count

    @staticmethod
    def backward(ctx, g_winners, g_cells, g_loss, *_):
        (col_at, on, cells_at, at_winner, z_win, false_cells, soft, win_all, fire_all, n_active,
         rows, scale, apical_w, apical, active, fire) = ctx.saved_tensors
        p, W = ctx.tm.p, ctx.W
        B, C, K = col_at.shape[0], ctx.tm.C, ctx.tm.K
        g_columns = g_at = g_d = g_win_at = None
        if g_winners is not None:
            # winners = columns * (one-hot + softmax - softmax.detach()): the column gets the
            # gradient at its winner, the winner's softmax over the column's cells the rest.
            g_cells_at = g_winners.gather(1, cells_at).view(B, W, K)
            if win_all is not None:
                g_columns = g_winners.view(B, C, K).gather(-1, win_all.unsqueeze(-1)).squeeze(-1)
            elif active is not None:
                g_win_at = g_cells_at.gather(-1, at_winner).squeeze(-1)
            if soft is not None:
                g_s = col_at.unsqueeze(-1) * g_cells_at
                g_at = soft * (g_s - cell_sum(g_s * soft, keepdim=True))
        temp = p["temperature"]  # d z / d input = 1 / temperature
        if g_cells is not None and fire_all is not None:
            g_fire = cell_sum(g_cells.view(B, C, K) * fire_all)
            g_columns = g_fire if g_columns is None else g_columns + g_fire
        elif g_cells is not None and fire is not None:
            g_fire = cell_sum(g_cells.gather(1, cells_at).view(B, W, K) * fire)
            g_win_at = g_fire if g_win_at is None else g_win_at + g_fire
        if g_win_at is not None:  # the active columns only (padding ones get zero)
            g_columns = g_win_at.new_zeros(B, C).scatter_(1, active, g_win_at if on is None else g_win_at * on)
        if g_loss is not None and ctx.has_context:
            per = g_loss / (B * (W if n_active is None else n_active))  # d loss / d (hit + w * false), per stream
            # relu(1 + z) of the inactive columns' cells (the active ones' were masked to 0),
            # relu(1 - z) of the active ones' winners
            g_d = (false_cells > 0) * (p["false_prediction_weight"] * per / temp).reshape(-1, 1)
            hit = z_win < 1 if on is None else (z_win < 1) & on
            if g_at is None:  # the hit hinge alone: its gradient, divided by the temperature
                g_hit = (hit * (-per / temp).reshape(-1, 1)).unsqueeze(-1)
                g_at = g_hit.new_zeros(B, W, K).scatter_(-1, at_winner, g_hit)
            else:
                g_hit = (hit * -per.reshape(-1, 1)).unsqueeze(-1)
                g_at = g_at.scatter_add_(-1, at_winner, g_hit).div_(temp)
        elif g_at is not None:
            g_at = g_at / temp
        if g_at is not None:  # the active columns' cells; padding ones add zero
            g_at = g_at.reshape(B, -1)
            g_d = g_d.scatter_add_(1, cells_at, g_at) if g_d is not None else \
                g_at.new_zeros(B, C * K).scatter_(1, cells_at, g_at)
        g_distal = g_apical_w = g_apical = None
        if g_d is not None:
            if ctx.needs_input_grad[2]:
                g_distal = distal_grad(rows, scale, g_d, (C * K, C * K))
            if ctx.has_apical:
                if ctx.needs_input_grad[7]:
                    g_apical_w = apical.transpose(0, 1) @ g_d
                if ctx.needs_input_grad[8]:
                    g_apical = g_d @ apical_w.transpose(0, 1)
        if g_columns is not None and not ctx.needs_input_grad[1]:
            g_columns = None
        return (None, g_columns, g_distal, None, None, None, None, g_apical_w, g_apical, None, None, None, None, None,
                None)
