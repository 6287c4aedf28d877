"""A training step without autograd: the kernels' hand-derived backward passes, called in
reverse order by the engine itself.

Each kernel here is a torch.autograd.Function whose forward and backward are plain static
methods of a `ctx`. Through Function.apply, autograd wraps every call in a graph node, checks
its saved tensors, and runs the backward from its engine's queue: tens of µs per kernel at
batch 1, about what the kernel's own work costs. When every node of a graph runs its
differentiable work through these kernels (Node.hand_backward()), the trainer runs the
forward under no_grad inside `recording()`: `apply` then calls each kernel's forward with a
plain ctx and notes the call, and Tape.backward calls the backward passes in reverse order,
routing each input gradient to the kernel that produced that input or to the weight.

The numbers are the kernels' own, so a step gives what autograd gives with the same kernels
(tests/test_engine_manual.py checks trained weights against plain autograd).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

_LOCAL = threading.local()  # the tape being recorded on this thread, if any


def recording_tape() -> Tape | None:
    return getattr(_LOCAL, "tape", None)


def apply(fn: type[torch.autograd.Function], *args):
    """fn.apply(*args), or, while a tape is recording, fn's forward noted on the tape."""
    tape = getattr(_LOCAL, "tape", None)
    if tape is None:
        return fn.apply(*args)
    return tape.call(fn, args)


@contextmanager
def recording(tape: Tape):
    """Note the kernel calls of this thread on `tape`, with autograd off."""
    tape.clear()
    _LOCAL.tape = tape
    try:
        with torch.no_grad():
            yield tape
    finally:
        _LOCAL.tape = None


class Saved:
    """What a Function's forward and backward expect of their ctx, without autograd."""

    materialize_grads = True
    non_differentiable: tuple = ()

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = tensors

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value


class Tape:
    """The kernel calls of one step with a gradient path from a weight, in call order."""

    def __init__(self):
        self.entries: list[tuple] = []  # (fn, ctx, args, outputs, single output)
        self.live: set[int] = set()  # ids of recorded outputs a weight's gradient flows through
        self.views: dict[int, torch.Tensor] = {}  # id of a reshaped view of a live output -> that output
        self.ones: dict[tuple, torch.Tensor] = {}
        # The tensors behind those ids stay referenced by the entries until clear(), so an id
        # names one tensor for the whole step.

    def clear(self) -> None:
        self.entries.clear()
        self.live.clear()
        self.views.clear()

    def call(self, fn, args: tuple):
        live = self.live
        # Under no_grad only a weight (a leaf) requires grad; anything else with a gradient
        # path is a recorded kernel's output, or a reshaped view of one (e.g. x.flatten(1)).
        needs = tuple(isinstance(a, torch.Tensor) and (a.requires_grad or id(a) in live or self._view_of_live(a))
                      for a in args)
        ctx = Saved(needs)
        out = fn.forward(ctx, *args)
        if True in needs:
            single = not isinstance(out, tuple)
            outs = (out,) if single else out
            skip = {id(t) for t in ctx.non_differentiable}
            for t in outs:
                if isinstance(t, torch.Tensor) and id(t) not in skip:
                    live.add(id(t))
            self.entries.append((fn, ctx, args, outs))
        return out

    def _view_of_live(self, a: torch.Tensor) -> bool:
        base = a._base
        if base is None or id(base) not in self.live:
            return False
        if a.numel() != base.numel():
            # A slice has no gradient route here; a node that slices a gradient-carrying input
            # must not claim hand_backward().
            raise RuntimeError("a recorded kernel reads a slice of another kernel's output")
        self.views[id(a)] = base
        return True

    def backward(self, seeds, params) -> None:
        """Set .grad of each of `params` to the gradient of the sum of `seeds` (recorded
        outputs, e.g. the loss terms), None where none reaches it: what the autograd engine
        gives for the same kernels."""
        grads: dict[int, torch.Tensor] = {}
        for s in seeds:
            _add(grads, id(s), self._one(s) if s.dim() == 0 else torch.ones_like(s))
        weights: dict[int, torch.Tensor] = {}
        for fn, ctx, args, outs in reversed(self.entries):
            gs = [grads.pop(id(t), None) if isinstance(t, torch.Tensor) else None for t in outs]
            if not any(g is not None for g in gs):
                continue  # nothing downstream of this call reached a loss
            if ctx.materialize_grads:
                gs = [torch.zeros_like(t) if g is None and isinstance(t, torch.Tensor) else g
                      for g, t in zip(gs, outs)]
            in_grads = fn.backward(ctx, *gs)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for a, g, need in zip(args, in_grads, ctx.needs_input_grad):
                if g is None or not need:
                    continue
                if g.shape != a.shape:  # as autograd: a broadcast input gets the summed gradient
                    g = g.sum_to_size(a.shape)
                base = self.views.get(id(a))
                if base is not None:
                    a, g = base, g.reshape(base.shape)
                _add(weights if a.requires_grad else grads, id(a), g)
        for p in params:
            g = weights.get(id(p))
            if g is not None or p.grad is not None:  # setting .grad validates it: skip a None on a None
                p.grad = g
        self.clear()

    def _one(self, like: torch.Tensor) -> torch.Tensor:
        """A kept scalar 1 to seed a scalar loss with (the backward passes only read it)."""
        key = (like.dtype, like.device)
        one = self.ones.get(key)
        if one is None:
            one = self.ones[key] = torch.ones((), dtype=like.dtype, device=like.device)
        return one


def _add(into: dict, key: int, g: torch.Tensor) -> None:
    old = into.get(key)
    if old is None:
        into[key] = g
    elif old.is_sparse and not g.is_sparse:
        into[key] = g + old
    else:
        into[key] = old + g
