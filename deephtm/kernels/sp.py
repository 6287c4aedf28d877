"""htm.sp's step as one autograd function: the overlap, the k winners and the winners'
values in the forward, and a hand-derived backward through the winners only (checked
against autograd by tests/test_fused_sp.py)."""
import torch

from .mlp import bias_grad
from .tape import recording_tape


# Above this many weights, one stream's backward works on the winners' rows (winners_backward):
# a dense pass over the weight then costs more than finding the winners (measured inside the
# 2,048-column network: 138 against 244 µs; at 256 x 256 the dense pass wins, 40 against 78).
WINNERS_ROWS_ABOVE = 1 << 17


class SPColumns(torch.autograd.Function):
    """Inputs: the node (it scores the overlaps and picks the winners: inhibition, boosting,
    threshold offsets), x [B, n_in], the weight [C, n_in], the bias [C] and the potential
    pool (or None). Outputs: the columns [B, C] (each winner's overlap, or 1 for output
    'binary') and, without gradient, the winners' 0/1 mask. Only the winners pass a gradient
    to their overlap; the choice of winners has none."""

    @staticmethod
    def forward(ctx, sp, x, weight, bias, potential):
        w = weight if potential is None else weight * potential
        overlap = torch.addmm(bias, x, w.t())
        mask = sp.winners_mask(sp.score(overlap))
        if sp.p["output"] == "binary":
            out = mask.clone()
        else:
            # A winner whose overlap is exactly 0 would vanish from the SDR: give it a tiny value.
            out = torch.where(overlap == 0, 1e-6, overlap).mul_(mask)
        ctx.sp = sp
        ctx.on_tape = recording_tape() is not None  # the weight's gradient is then the tensor the backward returns
        ctx.save_for_backward(mask, x, w, potential)
        ctx.mark_non_differentiable(mask)
        ctx.set_materialize_grads(False)
        return out, mask

    @staticmethod
    def backward(ctx, g_out, _g_mask):
        if g_out is None:
            return None, None, None, None, None
        mask, x, w, potential = ctx.saved_tensors
        if x.shape[0] == 1 and w.numel() > WINNERS_ROWS_ABOVE and not x.is_cuda:  # nonzero() reads the device
            return winners_backward(ctx, g_out, mask, x, w, potential)
        g = g_out * mask  # d out / d overlap: 1 at the winners, 0 elsewhere, in both outputs
        g_x = g.mm(w) if ctx.needs_input_grad[1] else None
        g_w = g_b = None
        if ctx.needs_input_grad[2]:
            g_w = g.t().mm(x)
            if potential is not None:
                g_w.mul_(potential)
        if ctx.needs_input_grad[3]:
            g_b = bias_grad(g)
        return None, g_x, g_w, g_b, None


def winners_backward(ctx, g_out, mask, x, w, potential):
    """SPColumns.backward for one stream, on the winners' rows only: the input gradient reads
    their weight rows instead of every column's, and the weight gradient (dense, as Adam
    moves every row) is zeros but for theirs."""
    win = mask[0].nonzero().squeeze(1)
    g_win = g_out[0].index_select(0, win)  # d out / d overlap is 1 at the winners
    g_x = g_w = g_b = None
    if ctx.needs_input_grad[1]:
        g_x = (g_win @ w.index_select(0, win)).unsqueeze(0)
    if ctx.needs_input_grad[2]:
        rows = g_win.unsqueeze(1) * x
        if potential is not None:
            rows.mul_(potential.index_select(0, win))
        g_w = zeros_but_rows(ctx.sp, w, win, rows, ctx.on_tape)
    if ctx.needs_input_grad[3]:
        g_b = w.new_zeros(w.shape[0]).index_copy_(0, win, g_win)
    return None, g_x, g_w, g_b, None


def zeros_but_rows(sp, like: torch.Tensor, win: torch.Tensor, rows: torch.Tensor, reuse: bool) -> torch.Tensor:
    """A tensor shaped like `like`: `rows` at the rows `win`, zeros elsewhere. In a step
    without autograd (kernels/tape.py; `reuse`) the weight's gradient is this tensor itself,
    so the last step's one is reused: only its rows are zeroed again, not the whole layer
    (2 MB at 2,048 x 256). Anything that wrote to it since (clipping, averaging over ranks)
    makes a fresh one. Under autograd the engine may keep the tensor it gets as the .grad,
    so each step makes a fresh one."""
    kept = sp.grad_rows
    if not reuse or kept is None or kept[0].shape != like.shape or kept[0].dtype != like.dtype \
            or kept[0].device != like.device or kept[0]._version != kept[1]:
        out = like.new_zeros(like.shape)
    else:
        out = kept[0].index_fill_(0, kept[2], 0)
    out.index_copy_(0, win, rows)
    if reuse:
        sp.grad_rows = (out, out._version, win)
    return out
