"""Hand-written torch versions of graphs/sine.json, for benchmarks/online.py and batched.py.

The network (the seed's): sine value -> MLP encoder (2 x 256 ReLU) -> SP (256 columns, the
5 best win, magnitude output) -> TM (5 cells per column, context = the previous step's
winner cells) -> MLP decoder (256 ReLU, 1) -> MSE on the next value, plus the TM's
self-supervised loss. The TM math follows deephtm/nodes/htm_tm.py as of 07:20 UTC
(threshold 0.5, temperature 0.1, argmax winners with a softmax straight-through, hit +
0.1 * false-prediction loss; distal synapses by plain SGD, lr 0.02).

- DenseSine: what a plain torch user writes: the distal input is a dense matmul of the
  context with the n x n distal matrix, every weight gets a dense gradient, fused Adam.
- SparseSine: the same math written by hand the sparse way: the distal input gathers the
  rows of the active context cells (embedding bag, sparse gradient), SGD touches only those
  rows, fused Adam for the rest. It is what the engine should cost without its own overhead.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

C, K, HIDDEN, WINNERS = 256, 5, 256, 5
THRESHOLD, TEMPERATURE, FALSE_WEIGHT, TM_WEIGHT = 0.5, 0.1, 0.1, 1.0
STEP_SIZE, LR, DISTAL_LR = 0.25, 1e-3, 0.02


class SineNet(nn.Module):
    def __init__(self, batch: int, sparse: bool, columns: int = C, cells: int = K, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.C, self.K, self.sparse = columns, cells, sparse
        n = columns * cells
        self.encoder = nn.Sequential(nn.Linear(1, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.sp = nn.Linear(HIDDEN, columns)
        self.distal = nn.Parameter(torch.randn(n, n, generator=g) * 0.01)
        self.decoder = nn.Sequential(nn.Linear(n, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
        self.register_buffer("phase", torch.rand(batch, 1, generator=g) * 2 * math.pi)
        self.register_buffer("context", torch.zeros(batch, n))
        self.t = 0

    def optimizers(self) -> list[torch.optim.Optimizer]:
        rest = [p for name, p in self.named_parameters() if name != "distal"]
        return [torch.optim.Adam(rest, lr=LR, fused=True), torch.optim.SGD([self.distal], lr=DISTAL_LR)]

    def distal_input(self, context: torch.Tensor) -> torch.Tensor:
        if not self.sparse:
            return context @ self.distal
        b_idx, cell_idx = context.nonzero(as_tuple=True)
        offsets = torch.searchsorted(b_idx, torch.arange(context.shape[0], device=context.device))
        return F.embedding_bag(cell_idx, self.distal, offsets, mode="sum", sparse=True)

    def step_loss(self) -> torch.Tensor:
        B, Cn, Kn = self.context.shape[0], self.C, self.K
        t = self.phase + self.t * STEP_SIZE
        x, target = torch.sin(t), torch.sin(t + STEP_SIZE)
        overlap = self.sp(self.encoder(x))
        mask = torch.zeros_like(overlap).scatter_(1, overlap.detach().topk(WINNERS, dim=1).indices, 1.0)
        columns = torch.where(overlap == 0, overlap + 1e-6, overlap) * mask
        col_active = mask.bool()
        context = self.context.clone()  # the buffer is overwritten in place below
        z = (self.distal_input(context).view(B, Cn, Kn) - THRESHOLD) / TEMPERATURE
        winner = z.argmax(-1)
        w_soft = torch.softmax(z, -1)
        # one-hot by scatter: F.one_hot checks its input on the host, which CUDA graphs forbid
        w = torch.zeros_like(z).scatter_(-1, winner.unsqueeze(-1), 1.0) + (w_soft - w_soft.detach())
        winners = (columns.unsqueeze(-1) * w).reshape(B, Cn * Kn)
        n_active = col_active.sum(1).clamp_min(1)
        z_win = z.gather(-1, winner.unsqueeze(-1)).squeeze(-1)
        hit = -(F.logsigmoid(z_win) * col_active).sum(1)
        false = (F.softplus(z) * (~col_active).unsqueeze(-1)).sum((1, 2))
        tm_loss = ((hit + FALSE_WEIGHT * false) / n_active).mean()
        pred = self.decoder(winners)
        self.context.copy_(winners.detach())  # in place: a CUDA graph replay sees it (gpu.py)
        self.t += 1
        return (pred - target).pow(2).mean() + TM_WEIGHT * tm_loss


class Runner:
    """One optimizer step per time step, as the engine's online mode does."""

    def __init__(self, batch: int, sparse: bool, device="cpu", **sizes):
        torch.manual_seed(0)
        self.net = SineNet(batch, sparse, **sizes).to(device)
        self.opts = self.net.optimizers()

    def run(self, steps: int) -> None:
        net, opts = self.net, self.opts
        for _ in range(steps):
            loss = net.step_loss()
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()

    def weight_bytes(self) -> int:
        """Weights plus optimizer state."""
        n = sum(p.numel() * p.element_size() for p in self.net.parameters())
        for o in self.opts:
            for s in o.state.values():
                n += sum(v.numel() * v.element_size() for v in s.values() if torch.is_tensor(v))
        return n
