"""Optimizers for a graph: the graph's own (fused Adam by default) for most weights, and
whatever a node asks for its own weights (e.g. plain SGD for the TM's Hebbian-like distal
synapses, where Adam's per-weight normalization would turn tiny gradients into full steps)."""
from __future__ import annotations

import torch

from .optim import LazyAdam, LazyAdamW


def _build(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    # Fused Adam is several times faster than the default on the CPU for small models; the
    # Lazy variants are the same for dense gradients and update only the rows of a sparse one.
    if name == "adam":
        return LazyAdam(groups, fused=True)
    if name == "adamw":
        return LazyAdamW(groups, fused=True)
    return torch.optim.SGD(groups)


def make_optimizer(name: str, groups, lr: float, device: torch.device | None = None):
    """groups: parameters, or param-group dicts that may name their own "optimizer".
    Returns one optimizer, a MultiOptimizer when nodes ask for different kinds, or None."""
    by_kind: dict[str, list[dict]] = {}
    for g in groups:
        g = dict(g) if isinstance(g, dict) else {"params": [g]}
        kind = g.pop("optimizer", None) or name
        g.setdefault("lr", lr)
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if g["params"]:
            by_kind.setdefault(kind, []).append(g)
    optimizers = [_build(kind, gs) for kind, gs in by_kind.items()]
    if not optimizers:
        return None
    return optimizers[0] if len(optimizers) == 1 else MultiOptimizer(optimizers)


class MultiOptimizer:
    """Several optimizers stepped together, with one state dict in torch's format (param
    indices run on across the optimizers), so checkpoints treat it like any optimizer."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for i, o in enumerate(self.optimizers):
            sd = o.state_dict()
            for idx, s in sd["state"].items():
                state[idx + offset] = s
            for g in sd["param_groups"]:
                groups.append(dict(g, params=[p + offset for p in g["params"]], optimizer_index=i))
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        offset = 0
        for i, o in enumerate(self.optimizers):
            groups = [g for g in sd["param_groups"] if g.get("optimizer_index") == i]
            n = sum(len(g["params"]) for g in groups)
            state = {idx - offset: s for idx, s in sd["state"].items() if offset <= int(idx) < offset + n}
            o.load_state_dict({"state": state, "param_groups": [
                {k: v for k, v in dict(g, params=[p - offset for p in g["params"]]).items() if k != "optimizer_index"}
                for g in groups]})
            offset += n
