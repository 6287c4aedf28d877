"""Time and memory per online step of the sine network as the TM grows: columns 256 -> 4,096
and cells per column 5 -> 32 (htm.core's default TM is 2,048 columns x 32 cells).

Prints one JSON object with one row per size. Each size runs in its own process (its peak
memory is its own); the SP keeps 2% of the columns active (at least 5), the decoder reads
the TM's winner cells. Sizes whose dense distal matrix (cells^2 weights) would exceed
--max-distal-gb are not run: the row says how big it would be.

    .venv/bin/python benchmarks/scaling.py [--steps 60] [--grid] [--max-distal-gb 1.1]
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


def one(columns: int, cells: int, steps: int) -> dict:
    import torch

    from deephtm.graphfile import load_graph
    from deephtm.trainer import Trainer

    torch.set_num_threads(1)
    g = load_graph(ROOT.parent / "graphs" / "sine.json")
    g.node("sp").params.update(columns=columns, winners=max(5, round(0.02 * columns)))
    g.node("tm").params.update(cells_per_column=cells)
    t0 = time.perf_counter()
    t = Trainer(g, device="cpu", steps=10**9)
    t.config.checkpoint_every, t.config.log_every = 0, 10**9
    build_s = time.perf_counter() - t0
    t.train_until(10)  # warm-up
    c0, w0 = time.process_time(), time.perf_counter()
    t.train_until(10 + steps)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"columns": columns, "cells_per_column": cells, "cells": columns * cells,
            "params": sum(p.numel() for p in t.model.parameters()),
            "ms_per_step": round(1000 * cpu / steps, 2), "steps_per_s": round(steps / cpu, 1),
            "wall_ms_per_step": round(1000 * wall / steps, 2), "build_s": round(build_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--grid", action="store_true", help="every columns x cells pair, not the cross")
    ap.add_argument("--max-distal-gb", type=float, default=1.1)
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps)))
        return
    sizes = [(c, k) for c in (256, 512, 1024, 2048, 4096) for k in (5, 8, 16, 32)] if args.grid else CROSS
    rows = []
    for c, k in sizes:
        distal_gb = (c * k) ** 2 * 4 / 1e9
        if distal_gb > args.max_distal_gb:
            rows.append({"columns": c, "cells_per_column": k, "cells": c * k,
                         "skipped": f"dense distal matrix {c * k}^2 = {(c * k) ** 2:.3g} weights = {distal_gb:.3g} GB"})
            continue
        res = subprocess.run([sys.executable, __file__, "--one", str(c), str(k), "--steps", str(args.steps)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            rows.append({"columns": c, "cells_per_column": k,
                         "error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]})
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "scaling", "graph": "graphs/sine.json (SP 2% active, TM sizes varied)",
                      "device": "cpu", "threads": 1, "rate_unit": "per CPU second of the process",
                      "target": "2048 x 32 at >= 500 steps/s", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
