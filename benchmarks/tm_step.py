"""htm.tm's fused step against the same step recorded op by op by autograd
(TemporalMemory.fused = False), interleaved in one process so that load hits both alike.

Prints one JSON object:
- `engine`: graphs/sine.json trained by the Trainer at --batch, steps (and samples) per CPU
  second with each TM step;
- `tm_alone`: the htm.tm node of sine.json's size alone (256 x 5, 20 active columns per
  stream as its SP keeps, context = its previous winners, match_threshold 0.2, a readout of the winners as
  the downstream loss), CPU microseconds per forward and per backward + SGD step.

    .venv/bin/python benchmarks/tm_step.py [--batch 1] [--rounds 5] [--steps 200]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deephtm.node import Context  # noqa: E402
from deephtm.nodes.htm_tm import TemporalMemory  # noqa: E402
from online import make_trainer  # noqa: E402

C, K, ACTIVE = 256, 5, 20  # graphs/sine.json: 256 columns, 5 cells each, 20 winners


def engine(batch: int, rounds: int, steps: int) -> dict:
    trainers = {}
    for fused in (True, False):
        t = make_trainer(batch)
        t.model.nodes["tm"].fused = fused
        t.train_until(max(steps // 4, 10))  # warm-up
        trainers["fused" if fused else "autograd"] = t
    rates = {k: [] for k in trainers}
    for _ in range(rounds):
        for name, t in trainers.items():
            c0 = time.process_time()
            t.train_until(t.step + steps)
            rates[name].append(steps / max(time.process_time() - c0, 1e-9))
    out = {k: {"steps_per_cpu_s": round(statistics.median(v), 1),
               "samples_per_cpu_s": round(statistics.median(v) * batch, 1)} for k, v in rates.items()}
    out["fused_over_autograd"] = round(out["fused"]["steps_per_cpu_s"] / out["autograd"]["steps_per_cpu_s"], 3)
    return out


def tm_alone(batch: int, rounds: int, steps: int) -> dict:
    g = torch.Generator().manual_seed(0)
    seq = torch.zeros(50, batch, C)
    for s in seq:
        for b in range(batch):
            s[b, torch.randperm(C, generator=g)[:ACTIVE]] = 1.0
    readout = torch.randn(C * K, generator=g)
    ctx = Context(step=0, batch=batch, device=torch.device("cpu"), generator=g)
    runs = {}
    for fused in (True, False):
        torch.manual_seed(0)
        p = {prm.name: prm.default for prm in TemporalMemory.params}
        p.update(cells_per_column=K, match_threshold=0.2, distal_lr=0.05)
        tm = TemporalMemory(p, {"columns": (C,), "context": (C * K,), "winner_context": None, "apical": None})
        tm.used_outputs, tm.fused = {"winners", "loss", "anomaly"}, fused
        tm.setup(batch, torch.Generator().manual_seed(0))
        runs["fused" if fused else "autograd"] = {"tm": tm, "prev": torch.zeros(batch, C * K), "fwd": 0.0, "bwd": 0.0, "n": 0}

    def step(r, i):
        tm = r["tm"]
        cols = seq[i % len(seq)].clone().requires_grad_(True)
        c0 = time.process_time()
        out = tm(ctx, columns=cols, context=r["prev"])
        loss = out["loss"] + 1e-3 * (out["winners"] @ readout).sum()
        c1 = time.process_time()
        grad, _ = torch.autograd.grad(loss, [tm.distal, cols])
        with torch.no_grad():
            tm.distal.add_(grad, alpha=-tm.p["distal_lr"])
        r["fwd"] += c1 - c0
        r["bwd"] += time.process_time() - c1
        r["n"] += 1
        r["prev"] = out["winners"].detach()

    for r in runs.values():  # warm-up
        for i in range(10):
            step(r, i)
        r.update(fwd=0.0, bwd=0.0, n=0)
    for _ in range(rounds):
        for r in runs.values():
            for i in range(steps):
                step(r, i)
    return {k: {"forward_us": round(1e6 * r["fwd"] / r["n"]), "backward_sgd_us": round(1e6 * r["bwd"] / r["n"])}
            for k, r in runs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="steps per contender per round (batch 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = max(args.steps // args.batch, 10)  # bigger batches: fewer steps per round
    print(json.dumps({"benchmark": "tm_step", "graph": "graphs/sine.json", "batch": args.batch, "device": "cpu",
                      "threads": 1, "rounds": args.rounds, "steps_per_round": steps,
                      "rate_unit": "per CPU second of this process (median of rounds)",
                      "engine": engine(args.batch, args.rounds, steps),
                      "tm_alone": tm_alone(args.batch, args.rounds, steps),
                      "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
