"""htm.tm's step with fan-out synapse lists as one function with a hand-derived backward.

The forward computes what the node's op-by-op fan-out step computes
(TemporalMemory.forward_fanout_autograd: the same winners, growth, outputs and loss, to the
bit) without recording anything; the backward needs a handful of gathers on the active
columns' cells and on the active rows' synapses. With it a network with a fan-out TM steps
without autograd (kernels/tape.py), as one with a dense TM does. Checked against autograd
by tests/test_tm_fanout_hand.py (gradcheck in float64, and the same weights after training
steps).
"""
import torch
import torch.nn.functional as F

from .tm_step import column_hits


def at_cells(values: torch.Tensor, cell_idx: torch.Tensor) -> torch.Tensor:
    """values (any shape, read flat over streams x cells) at the flat cell indices cell_idx, in
    cell_idx's shape: one gather."""
    return values.reshape(-1).index_select(0, cell_idx.reshape(-1)).view(cell_idx.shape)


class FanoutTMStep(torch.autograd.Function):
    """Inputs: the node (params, synapse lists, usage, growth), the columns [B, C], the
    distal weights [n, F] (the node's own: growth re-points some in place), the context and
    winner context [B, n] (either may be None), whether the cells are wanted, and whether the
    columns' producer reads their gradient at the active columns only (htm.sp).

    Outputs: winners [B, n], cells [B, n] (None unless wanted), the loss (None without a
    context), and, without gradient, the raw anomaly [B], the streams of the active columns
    [M], their winner cells [M] (flat indices into B * n), their cells [M, K] (flat), which
    of those fired ([M, K] bool; None unless the cells are wanted) and the entries of the
    winners whose gradient the step reads (flat)."""

    @staticmethod
    def forward(ctx, tm, columns, distal, context, winner_context, want_cells: bool, active_grad_only: bool):
        p = tm.p
        B, C, K = columns.shape[0], tm.C, tm.K
        n = C * K
        thr, temp = p["threshold"], p["temperature"]
        col_active = columns != 0
        b_act, c_act = col_active.nonzero(as_tuple=True)  # [M] active (stream, column) pairs
        first = (b_act * C + c_act) * K  # flat index of each pair's first cell
        cell_idx = first.unsqueeze(1) + tm.constant(("ramp_k", columns.device),
                                                     lambda: torch.arange(K, device=columns.device))
        if context is not None:
            d, units, to = tm.spread(context, True, distal)
        else:
            d, units, to = columns.new_zeros(B * n), None, None
        source, d_learn = context, d  # what learning grows synapses from, and the input it reads
        if winner_context is not None:
            d_learn, units, to = tm.spread(winner_context, True, distal)
            source = winner_context
        d_act = at_cells(d, cell_idx)
        dl_act = at_cells(d_learn, cell_idx) if d_learn is not d else d_act
        z = (d_act - thr) / temp  # [M, K]: only active columns fire, win or get the hit loss
        pred = z > 0
        col_pred = pred.any(-1)
        best, winner = dl_act.max(-1)
        if p["match_threshold"] > 0:
            winner = tm.least_used_sparse(winner, best, c_act, B)
        d_choice = d_learn  # the input the winners were chosen by
        if tm.training and units is not None and tm.grow(units, to, b_act, first + winner, B):
            # This step learns through the grown synapses: the learning input is read again.
            d_learn, units, to = tm.spread(source, True, distal)
            dl_act = at_cells(d_learn, cell_idx)
        z_learn = (dl_act - thr) / temp if dl_act is not d_act else z
        col_vals = columns.reshape(-1).index_select(0, b_act * C + c_act)
        win_cells = first + winner
        # each active column's value at its winner: the one-hot of the straight-through winners
        winners = columns.new_zeros(B * n).index_put_((win_cells,), col_vals).view(B, n)
        every = ctx.needs_input_grad[1] and not active_grad_only  # every column's gradient is read
        win_all = None
        support = cell_idx.flatten()
        if every:  # an inactive column passes the gradient at its best matching cell
            win_all = d_choice.view(B * C, K).argmax(-1) + torch.arange(B * C, device=d.device) * K
            support = torch.cat([support, win_all])
        soft = torch.softmax(z_learn, -1) if p["downstream_grad"] else None
        cells = fire = fire_all = fired = None
        if want_cells:
            fire = pred.to(z.dtype) + (~col_pred).to(z.dtype).unsqueeze(-1)
            if every:  # exact straight-through gradient for every column
                pred_all = (d > thr).view(B, C, K)
                fire_all = pred_all.to(z.dtype) + (~pred_all.any(-1, keepdim=True)).to(z.dtype)
                cells = (columns.unsqueeze(-1) * fire_all).reshape(B, n)
            else:
                cells = columns.new_zeros(B * n).index_put((cell_idx.flatten(),), (col_vals.unsqueeze(-1) * fire).flatten()).view(B, n)
            fired = fire > 0
        n_active = col_active.sum(1).clamp_min(1)
        hits = column_hits(z, col_pred, None, p["anomaly_mode"])
        anomaly = 1 - tm.per_stream(hits, b_act, B) / n_active
        loss = z_win = over = None
        if context is not None or winner_context is not None:
            z_win = z_learn.gather(-1, winner.unsqueeze(-1)).squeeze(-1)
            hit = tm.per_stream(F.relu(1 - z_win), b_act, B)
            # relu(1 + z) over every cell (kept: the backward reads where it is positive),
            # minus the active columns' cells.
            over = (d_learn - (thr - temp)).relu_()
            false_all = over.view(B, n).sum(1) / temp
            false = false_all - tm.per_stream(F.relu(1 + z_learn).sum(-1), b_act, B)
            loss = ((hit + p["false_prediction_weight"] * false) / n_active).mean()
        ctx.tm, ctx.B = tm, B
        ctx.save_for_backward(b_act, c_act, cell_idx, winner, col_vals, soft, z_learn, z_win, over, n_active,
                              units[1] if units is not None else None, to, col_active if every else None, win_all,
                              fire, fire_all)
        ctx.mark_non_differentiable(anomaly, b_act, win_cells, cell_idx, support, *(() if fired is None else (fired,)))
        ctx.set_materialize_grads(False)
        return winners, cells, loss, anomaly, b_act, win_cells, cell_idx, fired, support

    @staticmethod
    def backward(ctx, g_winners, g_cells, g_loss, *_):
        (b_act, c_act, cell_idx, winner, col_vals, soft, z_learn, z_win, over, n_active, rows, to, col_active,
         win_all, fire, fire_all) = ctx.saved_tensors
        tm, B = ctx.tm, ctx.B
        C, K, p = tm.C, tm.K, tm.p
        temp, fpw = p["temperature"], p["false_prediction_weight"]
        at_winner = winner.unsqueeze(-1)
        g_col = g_z = g_every = None  # d / d col_vals [M], d / d z_learn [M, K], d / d columns [B, C]
        if g_winners is not None:
            # winners = col_vals at (one-hot + softmax - softmax.detach()): the column gets
            # the gradient at its winner, the softmax of its cells the rest.
            g_at = at_cells(g_winners, cell_idx)
            g_col = g_at.gather(-1, at_winner).squeeze(-1)
            if soft is not None:
                g_s = col_vals.unsqueeze(-1) * g_at
                g_z = soft * (g_s - (g_s * soft).sum(-1, keepdim=True))
            if win_all is not None:
                g_every = (g_winners.reshape(-1).index_select(0, win_all) * ~col_active.view(-1)).view(B, C)
        if g_cells is not None:
            if fire_all is not None:
                g_fire = (g_cells.view(B, C, K) * fire_all).sum(-1)
                g_every = g_fire if g_every is None else g_every + g_fire
            else:
                g_fire = (at_cells(g_cells, cell_idx) * fire).sum(-1)
                g_col = g_fire if g_col is None else g_col + g_fire
        g_false = g_z_loss = None
        if g_loss is not None and over is not None:
            # loss = mean over streams of (hit + w * false) / n_active
            per = (g_loss / B) / n_active  # [B]
            per_act = per.index_select(0, b_act)  # [M]
            g_false = per * fpw
            g_hit = -(per_act * (z_win < 1))  # relu(1 - z_win)
            g_z_loss = torch.zeros_like(z_learn).scatter_(-1, at_winner, g_hit.unsqueeze(-1))
            # the active columns' cells leave the false hinge
            g_z_loss = g_z_loss - g_false.index_select(0, b_act).unsqueeze(-1) * (z_learn > -1)
            g_z = g_z_loss if g_z is None else g_z + g_z_loss
        g_distal = None
        if rows is not None and ctx.needs_input_grad[2] and (g_false is not None or g_z is not None):
            # Each active row's synapses get the gradient at the cells they reach (row-sparse):
            # read at their targets only, not over the layer.
            g_to = None
            if g_false is not None:  # relu(input - (threshold - temperature)) / temperature at every cell
                scale = g_false / temp
                g_to = (over.index_select(0, to) > 0) * (scale if B == 1 else scale.index_select(0, to // (C * K)))
            if g_z is not None:  # the active columns' cells
                g_act = z_learn.new_zeros(B * C * K).index_put_((cell_idx.flatten(),), (g_z / temp).flatten())
                g_act = g_act.index_select(0, to)
                g_to = g_act if g_to is None else g_to + g_act
            g_distal = torch.sparse_coo_tensor(rows.unsqueeze(0), g_to.view(rows.shape[0], tm.fan_out),
                                               (C * K, tm.fan_out), check_invariants=False)
        g_columns = None
        if ctx.needs_input_grad[1] and (g_col is not None or g_every is not None):
            g_columns = g_every if g_every is not None else z_learn.new_zeros(B, C)
            if g_col is not None:
                g_columns = g_columns.index_put((b_act, c_act), g_col, accumulate=True)
        return None, g_columns, g_distal, None, None, None, None
