"""Row-sparse optimizer steps: only the rows of a weight that got a gradient move.

An HTM step touches a few rows of its large matrices (the active cells' synapses), so a
gradient from an embedding bag with sparse=True is row-sparse. LazyAdam applies fused
Adam to dense gradients and the lazy Adam update (as torch.optim.SparseAdam) to sparse
ones, with torch's Adam state layout so checkpoints stay interchangeable.
(Re-written by the lead after clobbering the perf helper's uncommitted original.)
"""
from __future__ import annotations

import math

import torch


class LazyAdam(torch.optim.Adam):
    decoupled_decay = False

    @torch.no_grad()
    def step(self, closure=None):
        sparse = [(g, p) for g in self.param_groups for p in g["params"]
                  if p.grad is not None and p.grad.is_sparse]
        held = {}
        for _, p in sparse:  # hide sparse gradients from the dense (fused) update
            held[p], p.grad = p.grad, None
        loss = super().step(closure)
        for group, p in sparse:
            p.grad = held[p]
            self._lazy_update(group, p, p.grad.coalesce())
        return loss

    def _lazy_update(self, group, p, grad):
        if group.get("amsgrad") or group.get("maximize"):
            raise ValueError("LazyAdam: amsgrad and maximize need dense gradients")
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        rows, values = grad.indices()[0], grad.values()
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        lr = float(lr)
        if wd:
            if self.decoupled_decay:
                p.index_copy_(0, rows, p.index_select(0, rows) * (1 - lr * wd))
            else:
                values = values + wd * p.index_select(0, rows)
        state["step"] += 1
        t = float(state["step"])
        m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
        p.index_add_(0, rows, m / denom, alpha=-lr / (1 - beta1 ** t))


class LazyAdamW(LazyAdam):
    decoupled_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kw):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=True, **kw)


def clip_grad_norm_(params, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ that also takes row-sparse gradients."""
    grads = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad.values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef)
    return total
