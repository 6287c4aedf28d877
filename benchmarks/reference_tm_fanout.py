"""A 2,048 x 32 TM with fan-out synapse lists (each cell reaches FAN cells; no dense n x n
matrix), timed two ways in the same run, in interleaved rounds:
- `reference`: a hand-written minimal step: gather the rows of the ~40 previous winners,
  scatter them into the depolarization, hinge-free logsigmoid losses on the touched cells,
  row-sparse SGD (the proposal's micro-benchmark);
- `node`: the htm.tm node with fan_out=FAN as graphs/sine.json drives it (context = its
  previous winners, match_threshold 0.2, straight-through gradient to the columns, synapse
  growth for new winners), forward + backward + SGD on the distal weights.
Both see a new random set of ACTIVE columns every step (nothing is ever predicted: the node
grows synapses every step, its most expensive case). Prints one JSON object.

    .venv/bin/python benchmarks/reference_tm_fanout.py [--rounds 5] [--steps 200]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deephtm.node import Context  # noqa: E402
from deephtm.nodes.htm_tm import TemporalMemory  # noqa: E402

C, K, FAN, ACTIVE = 2048, 32, 256, 40
N = C * K


class Reference:
    def __init__(self, g):
        self.g = g
        self.w = torch.nn.Parameter(torch.randn(N, FAN, generator=g) * 0.01)  # synapse weights
        self.target = torch.randint(0, N, (N, FAN), generator=g)  # postsynaptic cell of each synapse
        self.opt = torch.optim.SGD([self.w], lr=0.02)

    def step(self, cols):
        active = cols * K + torch.randint(0, K, (ACTIVE,), generator=self.g)  # previous winners
        rows = F.embedding(active, self.w, sparse=True)  # [A, FAN], row-sparse grad
        d = torch.zeros(N).index_add(0, self.target[active].reshape(-1), rows.reshape(-1))
        z = (d - 0.5) / 0.1
        col_active = torch.zeros(C, dtype=torch.bool)
        col_active[cols] = True
        zc = z.view(C, K)
        win = zc[cols].argmax(-1)
        hit = -F.logsigmoid(zc[cols].gather(1, win[:, None])).sum()
        touched = self.target[active].reshape(-1).unique()  # only these cells can get a gradient
        false = (F.softplus(z[touched]) * (~col_active[touched // K])).sum()
        loss = (hit + 0.1 * false) / ACTIVE
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


class NodeStep:
    def __init__(self, g):
        p = {prm.name: prm.default for prm in TemporalMemory.params}
        p.update(cells_per_column=K, fan_out=FAN, match_threshold=0.2, distal_lr=0.05)
        self.lr = p["distal_lr"]
        self.tm = TemporalMemory(p, {"columns": (C,), "context": (N,), "winner_context": None, "apical": None})
        self.tm.used_outputs = {"winners", "loss", "anomaly"}  # what sine.json reads
        self.tm.setup(1, g)
        self.ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=g)
        self.prev = torch.zeros(1, N)

    def step(self, cols):
        columns = torch.zeros(1, C)
        columns[0, cols] = 1.0
        columns.requires_grad_(True)  # as behind a learning SP
        out = self.tm(self.ctx, columns=columns, context=self.prev)
        grad, = torch.autograd.grad(out["loss"], self.tm.distal)
        with torch.no_grad():
            self.tm.distal.add_(grad, alpha=-self.lr)
        self.prev = out["winners"].detach()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    contenders = {"reference": Reference(g), "node": NodeStep(g)}
    for c in contenders.values():
        for _ in range(20):
            c.step(torch.randperm(C, generator=g)[:ACTIVE])
    rates = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, c in contenders.items():
            cols = [torch.randperm(C, generator=g)[:ACTIVE] for _ in range(args.steps)]
            t0 = time.process_time()
            for col in cols:
                c.step(col)
            rates[name].append(args.steps / (time.process_time() - t0))
    med = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}
    tm = contenders["node"].tm
    print(json.dumps({
        "benchmark": "reference_tm_fanout", "cells": N, "columns": C, "cells_per_column": K,
        "fan_out": FAN, "active_columns": ACTIVE, "threads": 1,
        "rate_unit": "steps per CPU second of this process (median of rounds)",
        "reference_steps_per_s": round(med["reference"], 1), "node_steps_per_s": round(med["node"], 1),
        "node_us_per_step": round(1e6 / med["node"], 1),
        "rounds": {name: [round(x) for x in r] for name, r in rates.items()},
        "node_state_mb": round(sum(t.numel() * t.element_size() for t in
                                   list(tm.parameters()) + list(tm.buffers())) / 2**20, 1),
        "dense_distal_would_be_gb": round(N * N * 4 / 1e9, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
