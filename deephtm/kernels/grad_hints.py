"""Hints an output tensor carries about where its producer uses the gradient it gets back.

A reader that knows its gradient is dropped somewhere can skip computing it there: work over
every column or cell shrinks to the few that matter. A hint is a plain attribute, so a tensor
rebuilt on the way (a copy, a delayed edge) simply carries none, and the reader then computes
the whole gradient, as without the hint. Two hints exist (and one about the values):
- `grad_support` (flat indices into [batch, n]): the producer reads the gradient at these
  entries only (htm.tm with fan-out marks its winners so; decoder.mlp honours it);
- `grad_nonzero_only` (True): the producer reads the gradient only where the tensor is
  non-zero (htm.sp: only its winning columns pass a gradient on; htm.tm honours it);
- `nonzero_at` ((stream, unit) index tensors, as `t.nonzero(as_tuple=True)` gives them): where
  t is non-zero, known to its producer (htm.tm with fan-out marks its winners so, as it built
  them there; decoder.mlp reads them instead of scanning every cell).
"""
import torch


def mark_grad_nonzero_only(t: torch.Tensor) -> torch.Tensor:
    """Note on t that its producer ignores the gradient at t's zero entries; returns t."""
    t.grad_nonzero_only = True
    return t


def grad_nonzero_only(t: torch.Tensor) -> bool:
    """Whether t's producer ignores the gradient at t's zero entries."""
    return getattr(t, "grad_nonzero_only", False)


def mark_nonzero_at(t: torch.Tensor, b_idx: torch.Tensor, i_idx: torch.Tensor) -> torch.Tensor:
    """Note on t [B, n] that its non-zero entries are at (b_idx, i_idx), in ascending order."""
    t.nonzero_at = (b_idx, i_idx)
    return t


def nonzero_at(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """t.nonzero(as_tuple=True) for a 2-D t, from its producer's note when it left one."""
    known = getattr(t, "nonzero_at", None)
    return known if known is not None else t.detach().nonzero(as_tuple=True)
