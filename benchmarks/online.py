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

--split prints instead where one engine step's CPU time goes (its forward node by node, the
backward, the optimizer step, the trainer's bookkeeping), beside ManualRunner's whole step
measured in the same rounds.
"""
import argparse
import contextlib
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
from deephtm.graph.training import lr_factor  # noqa: E402
from deephtm.kernels.tape import Tape, recording  # noqa: E402
from deephtm.node import Context  # noqa: E402
from deephtm.train.optim import engine_grads, update_now  # noqa: E402
from deephtm.train.trainer import Trainer  # noqa: E402
from reference_sine import ManualRunner, Runner  # noqa: E402

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


class SplitEngine:
    """The Trainer's online step (Trainer.train_until's path for sine.json: without autograd,
    or with it), written out with a CPU timer around each part; the parts sum to the step."""

    def __init__(self, autograd: bool = False, trainer: Trainer | None = None):
        self.t = t = trainer or make_trainer()
        assert autograd or t.uses_tape(), "a step without autograd needs every node's hand-derived backward"
        self.autograd = autograd
        self.ctx = Context(step=0, batch=1, device=t.device, generator=t.generator)
        self.params = list(t.model.parameters())
        self.tape = Tape()
        self.cpu: dict[str, float] = {}
        self.steps = 0

    def add(self, part: str, since: float) -> float:
        now = time.process_time()
        self.cpu[part] = self.cpu.get(part, 0.0) + now - since
        return now

    def run(self, steps):
        t, model, ctx, tape = self.t, self.t.model, self.ctx, self.tape
        for _ in range(steps):
            a = time.process_time()
            ctx.step = t.step
            values = {}
            with recording(tape) if not self.autograd else contextlib.nullcontext():
                for nid, node, feeds in model.plan:
                    kw = {port: (model.delayed[key] if d else values[key]) for port, key, d in feeds}
                    for port, v in node.forward(ctx, **kw).items():
                        values[(nid, port)] = v
                    a = self.add(f"forward {nid}", a)
                terms = model.loss_terms(values)
                loss = model.loss(values)
            if not torch.isfinite(loss):
                raise RuntimeError("diverged")
            t._loss_sum += loss.detach()
            t._loss_n += 1
            a = self.add("trainer bookkeeping", a)
            if self.autograd:
                wanted = [p for p in self.params if p.requires_grad]
                for p, g in zip(wanted, engine_grads(loss, wanted)):
                    p.grad = g
                a = self.add("backward (autograd)", a)
            else:
                tape.backward(terms, self.params)
                a = self.add("backward (hand-derived, in reverse order)", a)
            factor = lr_factor(t.config, t.step)
            for group, base in zip(t.optimizer.param_groups, t.base_lrs):
                group["lr"] = base * factor
            update_now(t.optimizer)
            a = self.add("optimizer step", a)
            model.carry(values, detach=True)
            t.step += 1
            self.add("trainer bookkeeping", a)
        self.steps += steps


def split(rounds: int, steps: int) -> dict:
    engines = {"engine": SplitEngine(), "engine_autograd": SplitEngine(autograd=True)}
    res = interleaved({**engines, "manual": ManualRunner(sparse=False)}, rounds, steps)
    out = {"benchmark": "online_split", "graph": "graphs/sine.json", "batch": 1, "rounds": rounds,
           "steps_per_round": steps, "unit": "CPU µs per step, over every step timed (warm-up included)"}
    for name, e in engines.items():
        us = {k: round(1e6 * v / e.steps, 1) for k, v in sorted(e.cpu.items(), key=lambda kv: -kv[1])}
        out[name] = {"step_us": round(sum(us.values()), 1),
                     "forward_us": round(sum(v for k, v in us.items() if k.startswith("forward")), 1),
                     "parts_us": us}
    out["rates_steps_per_cpu_s"] = {k: v["steps_per_cpu_s"] for k, v in res.items()}
    out["manual_step_us"] = round(1e6 / res["manual"]["steps_per_cpu_s"], 1)
    out["torch"] = torch.__version__
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="steps per contender per round")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (batch 1: 1 is fastest)")
    ap.add_argument("--split", action="store_true", help="where one engine step's time goes (see above)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.split:
        print(json.dumps(split(args.rounds, args.steps), indent=2))
        return
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
