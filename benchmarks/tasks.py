"""Run the published-task graphs (Cui, Ahmad & Hawkins 2016) in full and print one JSON object
with their measured metrics, the published figures beside them, and each run's wall time.

    .venv/bin/python benchmarks/tasks.py [--only high_order|nyc_taxi] [--threads 1] [--seed 0]
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

from deephtm.graph.graphfile import load_graph  # noqa: E402
from deephtm.train.trainer import Trainer  # noqa: E402

PUBLISHED = {
    "high_order": {
        "HTM": {"accuracy": 1.00, "learn_steps": 7010, "relearn_steps": 2935},
        "TDNN": {"accuracy": 1.00, "learn_steps": 2766, "relearn_steps": 3917},
        "LSTM-3000": {"accuracy": 0.917, "learn_steps": 2906, "relearn_steps": 4059},
        "target": {"accuracy": 1.00, "learn_steps": "< 2000", "relearn_steps": "< 1000"},
    },
    "nyc_taxi": {
        "HTM": {"nrmse": 0.287, "mape": 0.081}, "LSTM-6000": {"nrmse": 0.274, "mape": 0.082},
        "ESN": {"nrmse": 0.286, "mape": 0.096}, "TDNN": {"nrmse": 0.327, "mape": 0.104},
        "kNN": {"nrmse": 0.259, "mape": 0.071}, "shift": {"nrmse": 0.926, "mape": 0.322},
        "target": {"nrmse": "<= 0.25", "mape": "<= 0.070"},
    },
}
KEYS = {
    "high_order": ("accuracy_before_swap", "accuracy_after_swap", "learn_steps", "relearn_steps", "anomaly",
                   "sp_entropy"),
    "nyc_taxi": ("mape", "nrmse", "no_htm_mape", "no_htm_nrmse", "htm_mape", "htm_nrmse",
                 "shift_mape", "shift_nrmse", "weekly_mape", "weekly_nrmse", "four_week_mape",
                 "four_week_nrmse", "anomaly", "sp_entropy"),
}


def run(name: str, seed: int | None) -> dict:
    graph = load_graph(ROOT / "graphs" / f"{name}.json")
    trainer = Trainer(graph, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = trainer.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = summary["metrics"]
    return {"measured": {k: m[k] for k in KEYS[name] if k in m}, "published": PUBLISHED[name],
            "steps": summary["steps"], "wall_s": round(wall, 2),
            # CPU time of this process: close to the wall time on an idle machine, and what
            # to compare when other jobs share the cores (see load_avg).
            "cpu_s": round(cpu, 2), "train_wall_s": summary["wall_s"],
            "steps_per_s": summary["steps_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(PUBLISHED))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small steps: 1 is fastest)")
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = {"torch": torch.__version__, "threads": args.threads, "cpus": os.cpu_count(),
              "load_avg_start": os.getloadavg()[0], "tasks": {}}
    for name in ([args.only] if args.only else ["nyc_taxi", "high_order"]):
        report["tasks"][name] = run(name, args.seed)
    report["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
