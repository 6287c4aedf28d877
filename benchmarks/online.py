"""Online training speed of graphs/sine.json: batch 1, one optimizer step per time step.

Prints one JSON object. Four contenders run in the same process, interleaved in rounds
(A B C D A B C D ...) so that load from other processes hits them alike:
- engine: the graph file compiled by the engine and trained by deephtm.train.trainer.Trainer;
- direct_nodes: the engine's own node modules and optimizer, wired by hand in a plain loop
  (engine_overhead_pct = what GraphModule.step and the Trainer loop add on top of that);
- handwritten_sparse / reference (dense): benchmarks/reference_sine.py, the same math
  written by hand, sparse (embedding bag, row-sparse SGD) and dense (matmul, dense grads).
Rates are steps per CPU second of this process (time.process_time: on a shared machine wall
time mostly measures the other processes); wall-clock rates are reported too.

    .venv/bin/python benchmarks/online.py [--rounds 5] [--steps 200] [--threads 1]
"""
import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deephtm.graph.graphfile import load_graph  # noqa: E402
from deephtm.node import Context  # noqa: E402
from deephtm.train.trainer import Trainer  # noqa: E402
from reference_sine import Runner  # noqa: E402

GRAPH = ROOT.parent / "graphs" / "sine.json"


def make_trainer(batch: int = 1, device: str = "cpu") -> Trainer:
    graph = load_graph(GRAPH)
    t = Trainer(graph, device=device, batch_size=batch, steps=10**9)
    t.config.checkpoint_every = 0
    t.config.log_every = 10**9  # no reports inside the timed rounds
    return t


class Engine:
    def __init__(self, batch=1):
        self.trainer = make_trainer(batch)

    def run(self, steps):
        self.trainer.train_until(self.trainer.step + steps)

    def weight_bytes(self):
        return state_bytes(self.trainer.model, self.trainer.optimizer)


class DirectNodes:
    """The engine's nodes of sine.json called in a hand-written loop: no GraphModule, no Trainer."""

    def __init__(self, batch=1):
        t = make_trainer(batch)
        self.model, self.opt = t.model, t.optimizer
        self.n = {k: v for k, v in t.model.nodes.items()}
        self.ctx = Context(step=0, batch=batch, device=t.device, generator=t.generator)
        tm = self.n["tm"]
        self.context = torch.zeros(batch, tm.C * tm.K)

    def run(self, steps):
        n, ctx, opt = self.n, self.ctx, self.opt
        for _ in range(steps):
            s = n["sine"].forward(ctx)
            y = n["encoder"].forward(ctx, x=n["bits"].forward(ctx, x=s["value"])["code"])["y"]
            cols = n["sp"].forward(ctx, x=y)["columns"]
            tm = n["tm"].forward(ctx, columns=cols, context=self.context)
            pred = n["decoder"].forward(ctx, x=tm["winners"])["y"]
            loss = n["loss"].forward(ctx, pred=pred, target=s["target"])["loss"] + \
                n["tm_loss"].forward(ctx, value=tm["loss"])["loss"]
            n["nrmse"].forward(ctx, pred=pred, target=s["target"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.context = tm["winners"].detach()
            ctx.step += 1

    def weight_bytes(self):
        return state_bytes(self.model, self.opt)


def state_bytes(model, opt) -> int:
    """Weights and buffers plus optimizer state."""
    n = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    sd = opt.state_dict() if opt is not None else {"state": {}}
    for s in sd["state"].values():
        n += sum(v.numel() * v.element_size() for v in s.values() if torch.is_tensor(v))
    return n


def interleaved(contenders: dict, rounds: int, steps: int) -> dict:
    cpu = {k: [] for k in contenders}
    wall = {k: [] for k in contenders}
    for c in contenders.values():
        c.run(max(steps // 4, 20))  # warm-up: first-call allocations, optimizer state
    for _ in range(rounds):
        for name, c in contenders.items():
            c0, w0 = time.process_time(), time.perf_counter()
            c.run(steps)
            cpu[name].append(steps / max(time.process_time() - c0, 1e-9))
            wall[name].append(steps / max(time.perf_counter() - w0, 1e-9))
    return {k: {"steps_per_cpu_s": round(statistics.median(cpu[k]), 1),
                "steps_per_wall_s": round(statistics.median(wall[k]), 1),
                "cpu_rounds": [round(r) for r in cpu[k]]} for k in contenders}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="steps per contender per round")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (batch 1: 1 is fastest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    contenders = {"engine": Engine(), "direct_nodes": DirectNodes(),
                  "handwritten_sparse": Runner(1, sparse=True), "reference": Runner(1, sparse=False)}
    res = interleaved(contenders, args.rounds, args.steps)
    e, ref = res["engine"]["steps_per_cpu_s"], res["reference"]["steps_per_cpu_s"]
    direct, hand = res["direct_nodes"]["steps_per_cpu_s"], res["handwritten_sparse"]["steps_per_cpu_s"]
    out = {
        "benchmark": "online", "graph": "graphs/sine.json", "batch": 1, "device": "cpu",
        "threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps,
        "engine_steps_per_s": e,
        "reference_steps_per_s": ref,
        "engine_over_reference": round(e / ref, 2),
        "handwritten_sparse_steps_per_s": hand,
        "direct_nodes_steps_per_s": direct,
        "engine_overhead_pct": round(100 * (direct / e - 1), 1),
        "engine_vs_handwritten_sparse_pct": round(100 * (hand / e - 1), 1),
        "rate_unit": "steps per CPU second of this process (median of rounds)",
        "targets": {"engine_steps_per_s": 1500, "engine_over_reference": 4, "engine_overhead_pct": 5},
        "contenders": res,
        "state_bytes": {k: c.weight_bytes() for k, c in contenders.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
