"""Rows per second of `deephtm detect` with graphs/anomaly.json on a NAB series.

Prints one JSON object. Wall-clock rates depend on what else the machine runs, so the CPU
time of this process is reported too (rows / CPU second: the rate of an idle core), next
to references measured in the same run on the same rows: the same graph on the plain
per-row path (Detector(fast=False): every row through GraphModule.step and the full
optimizer, what detect did before the fast path), and the sine-sized detector (SP 256
columns, TM 5 cells per column, the seed network's sizes) on the fast path.

    .venv/bin/python benchmarks/detect_speed.py [--input data/nab/art_daily_jumpsup.csv] [--rows N]

--split prints instead where a row's CPU time goes on the fast path (this thread's CPU time,
rows after the first 256): the TM's forward, its learning step (backward and SGD), the
frozen prefix run once per 256-row block, the tail (the likelihood, once per chunk), and the
rest (the loop, the loss sum, carrying the context to the next row, collecting the scores).
"""
import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deephtm.anomaly.detect import Detector  # noqa: E402
from deephtm.anomaly.fast_path import OnlineFastPath  # noqa: E402
from deephtm.graph.graphfile import load_graph  # noqa: E402


def measure(graph, path: str, rows: int | None, fast: bool = True) -> dict:
    det = Detector(graph, path, fast=fast)
    if rows:
        det.source.lines = det.source.lines[:rows]
        det.source.skipped = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = det.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return {"rows": res.rows, "wall_s": round(wall, 3), "rows_per_s": round(res.rows / wall, 1),
            "cpu_s": round(cpu, 3), "rows_per_cpu_s": round(res.rows / cpu, 1), "flagged": sum(res.flagged),
            "flagged_rows": [i for i, f in enumerate(res.flagged) if f],
            "params": sum(p.numel() for p in det.trainer.model.parameters())}


def split(graph, path: str, rows: int | None) -> dict:
    det = Detector(graph, path)
    n = min(rows or len(det.source.lines), len(det.source.lines))
    parts: collections.Counter = collections.Counter()

    def timed(owner, name: str, label: str):
        inner = getattr(owner, name)

        def wrapper(*args, **kw):
            c = time.thread_time()
            try:
                return inner(*args, **kw)
            finally:
                parts[label] += time.thread_time() - c
        return wrapper

    tm = det.trainer.model.nodes["tm"]
    tm.forward = timed(tm, "forward", "tm_forward")
    saved = {name: getattr(OnlineFastPath, name) for name in ("learn", "_fill", "flush")}
    for name, label in (("learn", "tm_learning_step"), ("_fill", "frozen_prefix_blocks"), ("flush", "tail")):
        setattr(OnlineFastPath, name, timed(OnlineFastPath, name, label))
    try:
        steps = det._steps(n, 256)
        next(steps)  # the first 256 rows: the first one runs the whole graph and builds the fast path
        parts.clear()
        c, done = time.thread_time(), 0
        for chunk in steps:
            done += chunk.shape[0]
        total = time.thread_time() - c
    finally:
        for name, fn in saved.items():
            setattr(OnlineFastPath, name, fn)
    us = {k: round(1e6 * v / done, 1) for k, v in parts.most_common()}
    us["rest"] = round(1e6 * (total - sum(parts.values())) / done, 1)
    return {"rows": done, "us_per_row": round(1e6 * total / done, 1), "parts_us_per_row": us}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--input", default=str(ROOT / "data" / "nab" / "art_daily_jumpsup.csv"))
    ap.add_argument("--rows", type=int, help="only the first N rows")
    ap.add_argument("--split", action="store_true", help="where a row's time goes (see above)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    graph = load_graph(args.graph)
    if args.split:
        print(json.dumps({"benchmark": "detect_speed_split", "graph": args.graph, "input": args.input,
                          "unit": "CPU µs per row (this thread)", **split(graph, args.input, args.rows),
                          "load_avg_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__}, indent=2))
        return
    reference = graph.copy()
    reference.node("sp").params.update(columns=256, winners=5)
    reference.node("tm").params.update(cells_per_column=5)
    ours = measure(graph, args.input, args.rows)
    per_row = measure(graph, args.input, args.rows, fast=False)
    ref = measure(reference, args.input, args.rows)
    ref.pop("flagged_rows")
    print(json.dumps({
        "benchmark": "detect_speed", "graph": args.graph, "input": args.input,
        "detect": ours, "reference_per_row_path": per_row, "reference_sine_sizes": ref,
        "speedup_cpu_vs_per_row_path": round(ours["rows_per_cpu_s"] / per_row["rows_per_cpu_s"], 2),
        "speedup_cpu_vs_sine_sizes": round(ours["rows_per_cpu_s"] / ref["rows_per_cpu_s"], 2),
        "same_flags_as_per_row_path": ours.pop("flagged_rows") == per_row.pop("flagged_rows"),
        "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
