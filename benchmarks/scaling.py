"""Time and memory per online step as the TM grows: columns 256 -> 4,096 and cells per column
5 -> 32 (htm.core's default TM is 2,048 columns x 32 cells).

Prints one JSON object with one row per size and TM kind: the dense distal matrix (fan_out 0,
cells^2 weights; skipped when it would exceed --max-distal-gb) and fan-out synapse lists
(--fan-out synapses per cell). Each row runs in its own process, so its peak memory is its own:
- `network`: graphs/sine.json with the SP and TM resized, trained online (batch 1); the SP
  keeps 2% of the columns active (at least 5; the file itself has 20 of 256, 7.8%, which
  this replaces with 5), the decoder reads the TM's winner cells;
- `tm`: the htm.tm node alone, as the network drives it (context = its winners of the previous
  step, match_threshold 0.2, straight-through gradient to the columns), fed a repeating
  sequence of --sequence random column sets of the same sparsity: forward, backward, SGD step;
- `tm_htm`: the same with HTM's wiring (context = the previous active cells, learning from the
  previous winners), which learns the sequence: bursting steps first, predicted ones later.

    .venv/bin/python benchmarks/scaling.py [--steps 60] [--fan-out 256] [--grid] [--max-distal-gb 1.1]
    .venv/bin/python benchmarks/scaling.py --split 2048 32 256 --steps 300   # one step's parts, each kernel's
                                                                             # backward, page faults per step
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

CROSS = [(c, 5) for c in (256, 512, 1024, 2048, 4096)] + [(256, k) for k in (8, 16, 32)] + \
        [(2048, k) for k in (8, 16, 32)] + [(4096, 32)]


def active_columns(columns: int) -> int:
    return max(5, round(0.02 * columns))


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def network_trainer(columns: int, cells: int, fan_out: int):
    import torch

    from deephtm.graph.graphfile import load_graph
    from deephtm.train.trainer import Trainer

    torch.set_num_threads(1)
    g = load_graph(ROOT.parent / "graphs" / "sine.json")
    g.node("sp").params.update(columns=columns, winners=active_columns(columns))
    g.node("tm").params.update(cells_per_column=cells, fan_out=fan_out)
    t = Trainer(g, device="cpu", steps=10**9)
    t.config.checkpoint_every, t.config.log_every = 0, 10**9
    return t


def network(columns: int, cells: int, fan_out: int, steps: int) -> dict:
    t0 = time.perf_counter()
    t = network_trainer(columns, cells, fan_out)
    build_s = time.perf_counter() - t0
    t.train_until(10)  # warm-up
    c0, w0 = time.process_time(), time.perf_counter()
    t.train_until(10 + steps)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    tm = t.model.nodes["tm"]
    return {"params": sum(p.numel() for p in t.model.parameters()),
            "tm_state_mb": round(sum(x.numel() * x.element_size() for x in
                                     list(tm.parameters()) + list(tm.buffers())) / 2**20, 1),
            "ms_per_step": round(1000 * cpu / steps, 2), "steps_per_s": round(steps / cpu, 1),
            "wall_ms_per_step": round(1000 * wall / steps, 2), "build_s": round(build_s, 2),
            "peak_rss_mb": peak_rss_mb()}


def network_split(columns: int, cells: int, fan_out: int, steps: int) -> dict:
    """Where one step of the resized network goes: CPU µs of each node's forward, the backward
    (autograd, or the hand-derived passes when every node has one), the optimizer step and the
    trainer's bookkeeping, over `steps` steps after 30 of warm-up; also each kernel's
    hand-derived backward (part of the backward) and the page faults per step (fresh pages:
    the allocator handing big blocks back and taking them again)."""
    sys.path.insert(0, str(ROOT))
    from online import SplitEngine

    t = network_trainer(columns, cells, fan_out)
    e = SplitEngine(autograd=not t.uses_tape(), trainer=t)
    kernels = time_kernel_backwards()
    e.run(30)
    e.cpu.clear()
    kernels.clear()
    e.steps = 0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    e.run(steps)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    us = {k: round(1e6 * v / e.steps, 1) for k, v in sorted(e.cpu.items(), key=lambda kv: -kv[1])}
    by_kernel = {k: round(1e6 * v / e.steps, 1) for k, v in sorted(kernels.items(), key=lambda kv: -kv[1])}
    return {"columns": columns, "cells_per_column": cells, "fan_out": fan_out, "steps": steps,
            "unit": "CPU µs per step", "step_us": round(sum(us.values()), 1), "parts_us": us,
            "backward_by_kernel_us": by_kernel, "page_faults_per_step": round(faults / e.steps, 1)}


def time_kernel_backwards() -> dict:
    """CPU seconds of each deephtm kernel's hand-derived backward (the tape's, or autograd's
    call of it), summed by kernel from now on: the part of the backward each node takes. The
    kernels are those the graph's nodes have imported (build the graph first)."""
    import torch

    spent: dict[str, float] = {}
    todo, kinds = list(torch.autograd.Function.__subclasses__()), []
    while todo:
        fn = todo.pop()
        todo += fn.__subclasses__()
        if fn.__module__.startswith("deephtm.kernels") and "backward" in vars(fn):
            kinds.append(fn)

    def timed(fn, backward):
        def run(ctx, *grads):
            c0 = time.process_time()
            out = backward(ctx, *grads)
            spent[fn.__name__] = spent.get(fn.__name__, 0.0) + time.process_time() - c0
            return out
        return staticmethod(run)

    for fn in kinds:
        fn.backward = timed(fn, fn.backward)
    return spent


def tm_alone(columns: int, cells: int, fan_out: int, steps: int, sequence: int, wiring: str = "sine") -> dict:
    import torch

    from deephtm.node import Context
    from deephtm.nodes.htm_tm import TemporalMemory

    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = columns * cells
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=cells, fan_out=fan_out, match_threshold=0.2, distal_lr=0.05)
    t0 = time.perf_counter()
    htm = wiring == "htm"  # context = previous active cells, learning from the previous winners
    tm = TemporalMemory(p, {"columns": (columns,), "context": (n,), "winner_context": (n,) if htm else None,
                            "apical": None})
    build_s = time.perf_counter() - t0
    tm.used_outputs = {"winners", "loss", "anomaly"} | ({"cells"} if htm else set())  # sine.json: no cells
    g = torch.Generator().manual_seed(0)
    tm.setup(1, g)
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=g)
    seq = []
    for _ in range(sequence):
        cols = torch.zeros(1, columns)
        cols[0, torch.randperm(columns, generator=g)[:active_columns(columns)]] = 1.0
        seq.append(cols)
    readout = torch.randn(n, generator=g)  # stands in for a decoder's gradient
    prev = [torch.zeros(1, n), torch.zeros(1, n)]  # winners, cells
    anomaly = []

    def step(i):
        cols = seq[i % sequence].clone().requires_grad_(True)
        if htm:
            out = tm(ctx, columns=cols, context=prev[1], winner_context=prev[0])
            prev[1] = out["cells"].detach()
        else:
            out = tm(ctx, columns=cols, context=prev[0])
        loss = out["loss"] + 1e-3 * (out["winners"] @ readout).sum()
        grad, = torch.autograd.grad(loss, tm.distal)
        with torch.no_grad():
            tm.distal.add_(grad, alpha=-p["distal_lr"])
        prev[0] = out["winners"].detach()
        anomaly.append(float(out["anomaly"]))

    for i in range(10):
        step(i)
    c0 = time.process_time()
    for i in range(10, 10 + steps):
        step(i)
    cpu = time.process_time() - c0
    return {"wiring": wiring, "ms_per_step": round(1000 * cpu / steps, 3), "steps_per_s": round(steps / cpu, 1),
            "build_s": round(build_s, 2), "anomaly_first_pass": round(sum(anomaly[:sequence]) / sequence, 3),
            "anomaly_last_pass": round(sum(anomaly[-sequence:]) / sequence, 3),
            "tm_state_mb": round(sum(x.numel() * x.element_size() for x in
                                     list(tm.parameters()) + list(tm.buffers())) / 2**20, 1),
            "peak_rss_mb": peak_rss_mb()}


def run_one(kind: str, c: int, k: int, fan_out: int, args) -> dict:
    res = subprocess.run([sys.executable, __file__, "--one", kind, str(c), str(k), str(fan_out),
                          "--steps", str(args.steps), "--sequence", str(args.sequence)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--tm-steps", type=int, default=300, help="steps of the TM-alone measurement")
    ap.add_argument("--sequence", type=int, default=100, help="column sets the TM-alone run cycles through")
    ap.add_argument("--fan-out", type=int, default=256, help="synapses per cell of the fan-out rows (0: none)")
    ap.add_argument("--grid", action="store_true", help="every columns x cells pair, not the cross")
    ap.add_argument("--max-distal-gb", type=float, default=1.1)
    ap.add_argument("--only", nargs=2, type=int, metavar=("COLUMNS", "CELLS"), help="one size only")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--split", nargs=3, type=int, metavar=("COLUMNS", "CELLS", "FAN_OUT"),
                    help="where one network step's time goes at this size (--steps steps)")
    args = ap.parse_args()
    if args.split:
        print(json.dumps(network_split(*args.split, args.steps), indent=2))
        return
    if args.one:
        kind, c, k, f = args.one[0], *map(int, args.one[1:])
        if kind == "network":
            row = network(c, k, f, args.steps)
        else:
            row = tm_alone(c, k, f, args.steps, args.sequence, "htm" if kind == "tm_htm" else "sine")
        print(json.dumps(row))
        return
    sizes = [(c, k) for c in (256, 512, 1024, 2048, 4096) for k in (5, 8, 16, 32)] if args.grid else CROSS
    if args.only:
        sizes = [tuple(args.only)]
    rows = []
    for c, k in sizes:
        for fan_out in ([0, args.fan_out] if args.fan_out else [0]):
            row = {"columns": c, "cells_per_column": k, "cells": c * k, "fan_out": fan_out}
            distal_gb = (c * k) ** 2 * 4 / 1e9
            if not fan_out and distal_gb > args.max_distal_gb:
                row["skipped"] = f"dense distal matrix {c * k}^2 = {(c * k) ** 2:.3g} weights = {distal_gb:.3g} GB"
                rows.append(row)
                continue
            row["network"] = run_one("network", c, k, fan_out, args)
            tm_args = argparse.Namespace(steps=args.tm_steps, sequence=args.sequence)
            row["tm"] = run_one("tm", c, k, fan_out, tm_args)
            row["tm_htm"] = run_one("tm_htm", c, k, fan_out, tm_args)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)  # progress
    print(json.dumps({"benchmark": "scaling", "graph": "graphs/sine.json (SP 2% active, TM sizes varied)",
                      "device": "cpu", "threads": 1, "rate_unit": "per CPU second of the process",
                      "target": "2048 x 32 TM at >= 500 steps/s", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
