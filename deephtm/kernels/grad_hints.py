"""Hints an output tensor carries about where its producer uses the gradient it gets back.

A reader that knows its gradient is dropped somewhere can skip computing it there: work over
every column or cell shrinks to the few that matter. A hint is a plain attribute, so a tensor
rebuilt on the way (a copy, a delayed edge) simply carries none, and the reader then computes
the whole gradient, as without the hint. Two hints exist:
- `grad_support` (flat indices into [batch, n]): the producer reads the gradient at these
  entries only (htm.tm with fan-out marks its winners so; decoder.mlp honours it);
- `grad_nonzero_only` (True): the producer reads the gradient only where the tensor is
  non-zero (htm.sp: only its winning columns pass a gradient on; htm.tm honours it).
"""
import torch


def mark_grad_nonzero_only(t: torch.Tensor) -> torch.Tensor:
    """Note on t that its producer ignores the gradient at t's zero entries; returns t."""
    t.grad_nonzero_only = True
    return t


def grad_nonzero_only(t: torch.Tensor) -> bool:
    """Whether t's producer ignores the gradient at t's zero entries."""
    return getattr(t, "grad_nonzero_only", False)
