"""Rows per second of `deephtm detect` with graphs/anomaly.json on a NAB series.

Prints one JSON object. Wall-clock rates depend on what else the machine runs, so the CPU
time of this process is reported too (rows / CPU second: the rate of an idle core), next
to references measured in the same run on the same rows: the same graph on the plain
per-row path (Detector(fast=False): every row through GraphModule.step and the full
optimizer, what detect did before the fast path), and the sine-sized detector (SP 256
columns, TM 5 cells per column, the seed network's sizes) on the fast path.

    .venv/bin/python benchmarks/detect_speed.py [--input data/nab/art_daily_jumpsup.csv] [--rows N]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deephtm.anomaly.detect import Detector  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--input", default=str(ROOT / "data" / "nab" / "art_daily_jumpsup.csv"))
    ap.add_argument("--rows", type=int, help="only the first N rows")
    args = ap.parse_args()
    graph = load_graph(args.graph)
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
