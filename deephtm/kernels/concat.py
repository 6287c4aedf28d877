"""util.concat's join with its backward (the gradient split back into the pieces), so that a
step through it can run without autograd (deephtm/kernels/tape.py)."""
import torch


class Concat(torch.autograd.Function):
    """torch.cat(pieces, dim=1) of [B, n_i] pieces."""

    @staticmethod
    def forward(ctx, *pieces):
        ctx.sizes = [p.shape[1] for p in pieces]
        return torch.cat(pieces, dim=1)

    @staticmethod
    def backward(ctx, g):
        return tuple(g.split(ctx.sizes, dim=1))
