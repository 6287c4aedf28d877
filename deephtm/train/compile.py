"""Turn a resolved graph into a torch module that runs one time step at a time."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..node import Context
from ..graph.resolve import Resolved

Key = tuple  # (node id, port name)


class GraphModule(nn.Module):
    """Runs the nodes in order each step. A delayed edge reads the value its source port
    produced on the previous step (zeros on the first step)."""

    def __init__(self, resolved: Resolved):
        super().__init__()
        self.resolved = resolved
        self.nodes = nn.ModuleDict()
        base_dir = Path(resolved.graph.path).parent if resolved.graph.path else Path.cwd()
        consumed = {(e.src, e.src_port) for e in resolved.graph.edges}
        for nid in resolved.order:
            rn = resolved.nodes[nid]
            node = rn.cls(rn.params, rn.in_shapes)
            # Relative data paths are relative to the graph file; outputs nobody reads may be
            # skipped by a node to save time.
            node.bind(nid, base_dir, {p.name for p in rn.cls.outputs if (nid, p.name) in consumed})
            self.nodes[nid] = node
        self.plan: list[tuple[str, nn.Module, list[tuple[str, Key, int]]]] = []
        self.delayed_keys: list[Key] = []
        for nid in resolved.order:
            feeds = []
            for port, e in resolved.inbound[nid].items():
                key = (e.src, e.src_port)
                feeds.append((port, key, e.delay))
                if e.delay and key not in self.delayed_keys:
                    self.delayed_keys.append(key)
            self.plan.append((nid, self.nodes[nid], feeds))
        self.loss_keys = [(nid, "loss") for nid in resolved.order if resolved.nodes[nid].cls.is_loss]
        self.metric_ids = [nid for nid in resolved.order if resolved.nodes[nid].cls.is_metric]
        self.delayed: dict[Key, torch.Tensor] = {}
        self.batch = 1

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups of all nodes, each weight in exactly one group."""
        groups, seen = [], set()
        for _, node, _ in self.plan:
            for g in node.param_groups():
                params = [p for p in g["params"] if id(p) not in seen]
                seen.update(id(p) for p in params)
                group = {"params": params, "lr": g.get("lr", lr * g.get("lr_scale", 1.0))}
                if g.get("optimizer"):
                    group["optimizer"] = g["optimizer"]
                groups.append(group)
        return groups

    def setup(self, batch: int, generator: torch.Generator) -> None:
        self.batch = batch
        for _, node, _ in self.plan:
            node.setup(batch, generator)
        self.reset_delayed()

    def reset_delayed(self) -> None:
        device = next((t.device for t in self.state_dict().values() if isinstance(t, torch.Tensor)),
                      torch.device("cpu"))  # a node's extra state is no tensor
        self.delayed = {
            key: torch.zeros((self.batch,) + tuple(self.resolved.shape_of(*key)), device=device)
            for key in self.delayed_keys
        }

    def step(self, ctx: Context) -> dict[Key, torch.Tensor]:
        return self.run_plan(self.plan, {}, ctx)

    def run_plan(self, entries, values: dict[Key, torch.Tensor], ctx: Context) -> dict[Key, torch.Tensor]:
        """Run plan entries (all of self.plan, or a part of it) in order, adding their outputs
        to `values`, which holds what they read that they do not compute themselves."""
        delayed = self.delayed
        for nid, node, feeds in entries:
            kwargs = {port: (delayed[key] if delay else values[key]) for port, key, delay in feeds}
            for port, value in node.forward(ctx, **kwargs).items():
                values[(nid, port)] = value
        return values

    def carry(self, values: dict[Key, torch.Tensor], detach: bool) -> None:
        """Make this step's values the next step's delayed inputs."""
        self.delayed = {k: (values[k].detach() if detach else values[k]) for k in self.delayed_keys}

    def detach_delayed(self) -> None:
        self.delayed = {k: v.detach() for k, v in self.delayed.items()}

    def loss_terms(self, values: dict[Key, torch.Tensor]) -> list[torch.Tensor]:
        """The loss nodes' outputs this step; the training loss is their sum."""
        return [values[k] for k in self.loss_keys if k in values]

    def hand_backward(self) -> bool:
        """Whether every node can run a step without autograd (Node.hand_backward)."""
        return all(node.hand_backward() for _, node, _ in self.plan)

    def loss(self, values: dict[Key, torch.Tensor]) -> torch.Tensor | None:
        terms = self.loss_terms(values)
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def metric_values(self) -> dict[str, float]:
        out = {}
        for nid in self.metric_ids:
            node = self.nodes[nid]
            out.update(node.values(node.p.get("name") or nid))
        return out
