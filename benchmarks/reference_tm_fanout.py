"""Proposal micro-benchmark (see /work/notes/tm-requests.md, issue 7): a 2,048 x 32 TM whose distal
synapses are presynaptic-major lists (each cell reaches FAN random postsynaptic cells) instead
of a dense n x n matrix: one step gathers the rows of the ~40 previous winners, scatters
them into the depolarization, and trains the rows with row-sparse SGD. Prints one JSON object.

    .venv/bin/python benchmarks/reference_tm_fanout.py
"""
import json, time, torch
import torch.nn.functional as F
torch.set_num_threads(1)
C, K, FAN, ACTIVE = 2048, 32, 256, 40
n = C * K
g = torch.Generator().manual_seed(0)
w = torch.nn.Parameter(torch.randn(n, FAN, generator=g) * 0.01)       # synapse weights
target = torch.randint(0, n, (n, FAN), generator=g)                   # postsynaptic cell of each synapse
opt = torch.optim.SGD([w], lr=0.02)
def step():
    cols = torch.randperm(C, generator=g)[:ACTIVE]
    active = cols * K + torch.randint(0, K, (ACTIVE,), generator=g)    # previous winners
    rows = F.embedding(active, w, sparse=True)                          # [A, FAN], row-sparse grad
    d = torch.zeros(n).index_add(0, target[active].reshape(-1), rows.reshape(-1))
    z = (d - 0.5) / 0.1
    col_active = torch.zeros(C, dtype=torch.bool); col_active[cols] = True
    zc = z.view(C, K)
    win = zc[cols].argmax(-1)
    hit = -F.logsigmoid(zc[cols].gather(1, win[:, None])).sum()
    touched = target[active].reshape(-1).unique()                       # only these cells can get a gradient
    false = (F.softplus(z[touched]) * (~col_active[touched // K])).sum()
    loss = (hit + 0.1 * false) / ACTIVE
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for _ in range(20): step()
c = time.process_time(); N = 300
for _ in range(N): step()
us = (time.process_time() - c) / N * 1e6
print(json.dumps({"cells": n, "fan_out": FAN, "active": ACTIVE, "us_per_step": round(us, 1),
                  "steps_per_s": round(1e6 / us), "weights_mb": round(n * FAN * 4 / 2**20, 1),
                  "targets_mb_int64": round(n * FAN * 8 / 2**20, 1)}))
