"""htm.sp's step as one autograd function: the overlap, the k winners and the winners'
values in the forward, and a hand-derived backward through the winners only (checked
against autograd by tests/test_fused_sp.py)."""
import torch

from .mlp import bias_grad


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
        ctx.save_for_backward(mask, x, w, potential)
        ctx.mark_non_differentiable(mask)
        ctx.set_materialize_grads(False)
        return out, mask

    @staticmethod
    def backward(ctx, g_out, _g_mask):
        if g_out is None:
            return None, None, None, None, None
        mask, x, w, potential = ctx.saved_tensors
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
