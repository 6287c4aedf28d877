"""The MLP and loss nodes' forward and hand-derived backward, each one autograd node.

Autograd records a node per addmm, relu, transpose and sum, and accumulates each weight's
gradient in more calls. These functions compute a whole MLP or loss in a few large ops and
its backward in a few more, with the same numbers. A Python autograd node has a cost of its
own (tens of µs per step on a CPU), so one pays where it replaces a Python node or many C++
ones (docs/performance.md has the figures).

The nodes keep their plain autograd path (nn.Linear layers) as the reference and for
autocast: these backward passes run at the weights' precision, which mixed precision is not.
"""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from .rows import distinct_rows_grad


def use_fused(x: torch.Tensor) -> bool:
    """Whether the fused functions apply to a step on x's device: not under autocast."""
    return not torch.is_autocast_enabled(x.device.type)


# ---- dense layers -----------------------------------------------------------------
def layers_forward(h: torch.Tensor, weights, biases, relu_last: bool) -> list[torch.Tensor]:
    """Linear layers (nn.Linear layout: weight [out, in]) with ReLU between them and, if
    relu_last, after the last; returns the input and every layer's output."""
    acts = [h]
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = torch.addmm(b, h, w.t())
        if i < last or relu_last:
            h = h.relu_()  # a fresh tensor: in place saves an allocation
        acts.append(h)
    return acts


def layers_backward(g: torch.Tensor, acts, weights, relu_last: bool, need_input: bool):
    """Gradient of layers_forward: (input gradient or None, weight gradients, bias gradients)."""
    last = len(weights) - 1
    grad_w, grad_b = [None] * len(weights), [None] * len(weights)
    g = g.contiguous()  # an expanded gradient (stride 0) would send mm down a slow path
    for i in range(last, -1, -1):
        if i < last or relu_last:
            g = torch.ops.aten.threshold_backward(g, acts[i + 1], 0)  # zero where the ReLU was off
        grad_w[i] = g.t().mm(acts[i])
        grad_b[i] = bias_grad(g)
        g = g.mm(weights[i]) if i > 0 or need_input else None
    return g, grad_w, grad_b


def bias_grad(g: torch.Tensor) -> torch.Tensor:
    return g[0] if g.shape[0] == 1 else g.sum(0)  # one row: a view, no reduction


class MLP(torch.autograd.Function):
    """encoder.mlp: y = relu(... relu(x W1ᵀ + b1) ...), every layer followed by a ReLU."""

    @staticmethod
    def forward(ctx, x, relu_last, *params):
        weights, biases = params[0::2], params[1::2]
        acts = layers_forward(x, weights, biases, relu_last)
        ctx.relu_last = relu_last
        ctx.save_for_backward(*acts, *weights)
        return acts[-1]

    @staticmethod
    def backward(ctx, grad_y):
        saved = ctx.saved_tensors
        n = (len(saved) - 1) // 2
        acts, weights = saved[:n + 1], saved[n + 1:]
        g_x, g_w, g_b = layers_backward(grad_y, acts, weights, ctx.relu_last, ctx.needs_input_grad[0])
        return (g_x, None, *[t for pair in zip(g_w, g_b) for t in pair])


# ---- a first layer that reads a sparse input ----------------------------------------
def sparse_rows_forward(x, weight, bias, b_idx, i_idx):
    """bias + x @ weight (weight input-major, [in, out]) summing the rows of x's non-zero
    entries (b_idx, i_idx: their positions); also returns those entries' values."""
    if x.shape[0] == 1:  # one row: two gathers (cheaper than x[b_idx, i_idx]) and a vector-matrix product
        vals = x[0].index_select(0, i_idx).to(weight.dtype)  # under autocast x may be bf16
        return torch.addmm(bias, vals.unsqueeze(0), weight.index_select(0, i_idx)), vals
    vals = x[b_idx, i_idx].to(weight.dtype)
    offsets = torch.searchsorted(b_idx, torch.arange(x.shape[0], device=x.device))
    return F.embedding_bag(i_idx, weight, offsets, mode="sum", per_sample_weights=vals) + bias, vals


def sparse_rows_grad_w(grad_y, weight, b_idx, i_idx, vals):
    """The row-sparse weight gradient: only the rows of the non-zero inputs."""
    if grad_y.shape[0] == 1:  # every entry is in the one row: a broadcast product, no gather
        rows = vals.unsqueeze(1) * grad_y.to(weight.dtype)
        # nonzero() of one row gives sorted, distinct indices: already coalesced
        return torch.sparse_coo_tensor(i_idx.unsqueeze(0), rows, weight.shape, check_invariants=False,
                                       is_coalesced=True)
    # In a batch the streams share rows: one row per distinct input (kernels/rows.py)
    return distinct_rows_grad(grad_y.to(weight.dtype), i_idx, b_idx, vals, weight.shape)


def sparse_rows_grad_x(grad_y, weight, x_shape, x_dtype, support):
    """The input gradient, dense; with `support` (flat indices into [batch, in]) only there."""
    g = grad_y.to(weight.dtype)
    if support is None:
        return g.mm(weight.t()).to(x_dtype)
    n = x_shape[1]
    if g.shape[0] == 1:  # online: one gather (into a kept buffer) and a matrix-vector product
        rows = torch.mv(torch.index_select(weight.detach(), 0, support, out=_scratch(weight, support.shape[0])), g[0])
    else:
        rows = (g.index_select(0, support // n) * weight.index_select(0, support % n)).sum(1)
    grad_x = rows.new_zeros(x_shape[0] * n).index_put((support,), rows)  # repeats hold equal values
    return grad_x.view(x_shape).to(x_dtype)


_SCRATCH = threading.local()  # per thread: two trainers in one process must not share a buffer


def _scratch(like: torch.Tensor, rows: int) -> torch.Tensor:
    """A [rows, like.shape[1]] buffer for gathered weight rows, kept between calls: a fresh
    one of a megabyte or more each step costs the process fresh pages (a page fault per 4 kB,
    measured in the 2,048 x 32 network) when the allocator hands such blocks back."""
    kept = getattr(_SCRATCH, "buffers", None)
    if kept is None:
        kept = _SCRATCH.buffers = {}
    key = (like.dtype, like.device, like.shape[1])
    buf = kept.get(key)
    if buf is None or buf.shape[0] < rows:
        buf = kept[key] = like.new_empty(rows, like.shape[1])
    return buf[:rows]


class SparseInputMLP(torch.autograd.Function):
    """decoder.mlp: a first layer of input-major weight `w0` that reads the non-zero inputs
    only (b_idx, i_idx; None: a dense matmul), then ReLU and linear layers."""

    @staticmethod
    def forward(ctx, x, b_idx, i_idx, support, w0, b0, *params):
        weights, biases = params[0::2], params[1::2]
        if i_idx is None:
            pre, vals = torch.addmm(b0, x, w0), None
        else:
            pre, vals = sparse_rows_forward(x, w0, b0, b_idx, i_idx)
        acts = layers_forward(pre.relu_() if weights else pre, weights, biases, relu_last=False)
        ctx.x_shape, ctx.x_dtype, ctx.sparse = x.shape, x.dtype, i_idx is not None
        ctx.save_for_backward(x if i_idx is None else None, b_idx, i_idx, support, vals, w0, *acts, *weights)
        return acts[-1]

    @staticmethod
    def backward(ctx, grad_y):
        x, b_idx, i_idx, support, vals, w0, *rest = ctx.saved_tensors
        n = len(rest) // 2
        acts, weights = rest[:n + 1], rest[n + 1:]
        g_w, g_b = [], []
        g = grad_y
        if weights:
            g, g_w, g_b = layers_backward(g, acts, weights, False, True)
            g = torch.ops.aten.threshold_backward(g, acts[0], 0)  # the first layer's ReLU
        grad_x = grad_w0 = None
        if ctx.needs_input_grad[0]:
            grad_x = sparse_rows_grad_x(g, w0, ctx.x_shape, ctx.x_dtype, support if ctx.sparse else None)
        if ctx.needs_input_grad[4]:
            grad_w0 = sparse_rows_grad_w(g, w0, b_idx, i_idx, vals) if ctx.sparse else x.t().mm(g)
        return (grad_x, None, None, None, grad_w0, bias_grad(g),
                *[t for pair in zip(g_w, g_b) for t in pair])


# ---- losses -------------------------------------------------------------------------
class MSE(torch.autograd.Function):
    """weight * mean((pred - target)²)."""

    @staticmethod
    def forward(ctx, pred, target, weight):
        diff = pred - target
        ctx.weight = weight
        ctx.save_for_backward(diff)
        return torch.dot(diff.view(-1), diff.view(-1)).mul_(weight / diff.numel())

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        g = diff * (grad * (2 * ctx.weight / diff.numel()))
        return (g if ctx.needs_input_grad[0] else None, -g if ctx.needs_input_grad[1] else None, None)


class Scale(torch.autograd.Function):
    """weight * value (loss.term)."""

    @staticmethod
    def forward(ctx, value, weight):
        ctx.weight = weight
        return value * weight

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.weight, None


class CrossEntropy(torch.autograd.Function):
    """weight * the (mask-weighted) mean over rows of the cross-entropy of `logits` [B, C]
    against class indices [B] (probs None) or class probabilities `probs` [B, C]."""

    @staticmethod
    def forward(ctx, logits, classes, probs, mask, weight):
        lsm = F.log_softmax(logits, 1)
        if probs is None:
            per = -lsm.gather(1, classes.unsqueeze(1)).squeeze(1)
        else:
            per = -(probs * lsm).sum(1)
        if mask is None:
            denom = torch.tensor(float(per.shape[0]), dtype=per.dtype, device=per.device)
            loss = per.sum() * (weight / per.shape[0])
        else:
            denom = mask.sum().clamp_min(1.0)
            loss = (per * mask).sum() / denom * weight
        ctx.weight = weight
        ctx.save_for_backward(lsm, classes, probs, mask, per, denom)
        return loss

    @staticmethod
    def backward(ctx, grad):
        lsm, classes, probs, mask, per, denom = ctx.saved_tensors
        w = ctx.weight
        coef = grad * w / denom  # d loss / d per-row loss, times the row's mask below
        rows = coef.expand(per.shape) if mask is None else mask * coef
        grad_logits = grad_probs = grad_mask = None
        if ctx.needs_input_grad[0]:
            soft = lsm.exp()
            if probs is None:  # softmax - one-hot
                grad_logits = soft.scatter_add_(1, classes.unsqueeze(1), -torch.ones_like(per).unsqueeze(1))
            else:  # softmax * Σ probs - probs
                grad_logits = soft.mul_(probs.sum(1, keepdim=True)).sub_(probs)
            grad_logits.mul_(rows.unsqueeze(1))
        if ctx.needs_input_grad[2]:
            grad_probs = -lsm * rows.unsqueeze(1)
        if ctx.needs_input_grad[3]:  # d/dm of w Σ per·m / max(Σ m, 1)
            total = (per * mask).sum()
            grad_mask = coef * (per - (total / denom) * (mask.sum() >= 1).to(per.dtype))
        return grad_logits, None, grad_probs, grad_mask, None
