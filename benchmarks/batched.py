"""Batched training speed of graphs/sine.json: samples (stream steps) per second at batch
sizes 1, 32 and 256, one optimizer step per time step.

Prints one JSON object. Each batch size runs in its own process (so its peak memory is its
own); inside it, the engine and the hand-written dense reference (benchmarks/reference_sine.py)
alternate in rounds. Rates are per CPU second of the process (see online.py), wall rates too.

    .venv/bin/python benchmarks/batched.py [--batches 1,32,256] [--rounds 3] [--threads 1]

--split B prints instead where one engine step's CPU time goes at batch B: each node's
forward, the backward (and within it each kernel's backward), the optimizer step and the
trainer's bookkeeping (online.py's SplitEngine at that batch size).
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
sys.path.insert(0, str(ROOT))


def one(batch: int, rounds: int, threads: int) -> dict:
    import torch

    from online import Engine, interleaved, state_bytes
    from reference_sine import Runner

    torch.set_num_threads(threads)
    steps = max(10, min(200, 6000 // batch))
    contenders = {"engine": Engine(batch), "reference": Runner(batch, sparse=False)}
    res = interleaved(contenders, rounds, steps)
    eng = contenders["engine"].trainer
    return {
        "batch": batch,
        "samples_per_s": round(res["engine"]["steps_per_cpu_s"] * batch, 1),
        "steps_per_s": res["engine"]["steps_per_cpu_s"],
        "samples_per_wall_s": round(res["engine"]["steps_per_wall_s"] * batch, 1),
        "reference_samples_per_s": round(res["reference"]["steps_per_cpu_s"] * batch, 1),
        "engine_over_reference": round(res["engine"]["steps_per_cpu_s"] / res["reference"]["steps_per_cpu_s"], 2),
        "state_bytes": state_bytes(eng.model, eng.optimizer),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def split(batch: int, steps: int, threads: int) -> dict:
    import torch

    from online import SplitEngine, make_trainer
    from deephtm.kernels.tape import Tape
    from deephtm.node import Context

    class BatchSplit(SplitEngine):
        def __init__(self):  # SplitEngine's fields, at this batch size
            self.t = t = make_trainer(batch)
            torch.set_num_threads(threads)
            assert t.uses_tape(), "the batched step runs without autograd"
            self.autograd, self.params, self.tape = False, list(t.model.parameters()), Tape()
            self.ctx = Context(step=0, batch=batch, device=t.device, generator=t.generator)
            self.cpu, self.steps = {}, 0

    engine = BatchSplit()
    kernels: dict[str, float] = {}
    record = engine.tape.call

    def timed(fn, args):  # time each kernel's backward inside the tape's
        if not getattr(fn.backward, "timed", False):
            inner = fn.backward

            def backward(ctx, *grads, _inner=inner, _name=fn.__name__):
                t0 = time.process_time()
                out = _inner(ctx, *grads)
                kernels[_name] = kernels.get(_name, 0.0) + time.process_time() - t0
                return out
            backward.timed = True
            fn.backward = staticmethod(backward)
        return record(fn, args)

    engine.tape.call = timed
    engine.run(max(steps // 4, 5))  # warm-up
    engine.cpu.clear()
    kernels.clear()
    engine.steps = 0
    engine.run(steps)
    ms = {k: round(1e3 * v / steps, 2) for k, v in sorted(engine.cpu.items(), key=lambda kv: -kv[1])}
    step_ms = sum(ms.values())
    return {"benchmark": "batched_split", "graph": "graphs/sine.json", "batch": batch, "threads": threads,
            "steps": steps, "unit": "CPU ms per step", "step_ms": round(step_ms, 2),
            "samples_per_cpu_s": round(batch * 1e3 / step_ms, 1), "parts_ms": ms,
            "backward_by_kernel_ms": {k: round(1e3 * v / steps, 2)
                                      for k, v in sorted(kernels.items(), key=lambda kv: -kv[1])},
            "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="1: CPU-time rates are per core")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one batch size, print its JSON
    ap.add_argument("--split", type=int, metavar="B", help="where one step's time goes at batch B (see above)")
    ap.add_argument("--steps", type=int, default=40, help="--split: steps timed")
    args = ap.parse_args()
    if args.split:
        print(json.dumps(split(args.split, args.steps, args.threads), indent=2))
        return
    if args.one:
        print(json.dumps(one(args.one, args.rounds, args.threads)))
        return
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, __file__, "--one", str(b), "--rounds", str(args.rounds),
                              "--threads", str(args.threads)], capture_output=True, text=True)
        if res.returncode != 0:
            rows.append({"batch": b, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    import torch

    best = max((r.get("samples_per_s", 0) for r in rows), default=0)
    print(json.dumps({"benchmark": "batched", "graph": "graphs/sine.json", "device": "cpu",
                      "threads": args.threads, "rate_unit": "samples per CPU second of the process",
                      "target_samples_per_s": 50000, "best_samples_per_s": best, "rows": rows,
                      "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
