"""Training and detection speed in one run: prints ONE JSON object with every figure beside
the references measured in the same run.

- online: graphs/sine.json at batch 1 through the Trainer (`engine`: its steps without
  autograd, as every node of the graph has a hand-derived backward; `engine_autograd`: the
  same Trainer made to use autograd), interleaved in rounds with the dense torch version of
  the same math (`reference`, benchmarks/reference_sine.py) and the same math with a
  hand-derived backward and no autograd (`manual`, ManualRunner);
- batched: samples/s at batch 1, 32 and 256 on one and two threads, engine and dense
  reference, one process per row (benchmarks/batched.py);
- tm_2048x32: htm.core's TM size (2,048 columns x 32 cells, fan-out 256), the whole sine
  network and the TM alone, one process each (benchmarks/scaling.py);
- detect: rows per CPU second of `deephtm detect` (graphs/anomaly.json) on NAB series from
  the repository's data/nab.

Rates are per CPU second of the measuring process (time.process_time), one torch thread
unless a row says otherwise; on a shared machine compare the ratios, which come from one run.

    .venv/bin/python benchmarks/speed.py [--quick] [--rounds 5] [--steps 200]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from online import Engine, interleaved  # noqa: E402
from reference_sine import ManualRunner, Runner  # noqa: E402

TARGETS = {"online_steps_per_s": 1500, "online_over_reference": 4.0, "batched_256_two_threads_samples_per_s": 50_000,
           "tm_2048x32_network_steps_per_s": 500}
NAB = ("art_daily_jumpsup.csv", "machine_temperature_system_failure.csv", "nyc_taxi.csv", "speed_7578.csv")


def online(rounds: int, steps: int) -> dict:
    torch.set_num_threads(1)
    engine_autograd = Engine(1)
    engine_autograd.trainer.hand_backward = False  # the same nodes and optimizer, backward by autograd
    contenders = {"engine": Engine(1), "engine_autograd": engine_autograd, "reference": Runner(1, sparse=False),
                  "manual": ManualRunner(sparse=False)}
    res = interleaved(contenders, rounds, steps)
    rate = {k: v["steps_per_cpu_s"] for k, v in res.items()}
    return {"engine_steps_per_s": rate["engine"], "reference_steps_per_s": rate["reference"],
            "manual_steps_per_s": rate["manual"], "engine_autograd_steps_per_s": rate["engine_autograd"],
            "engine_without_autograd": contenders["engine"].trainer.uses_tape(),
            "engine_over_reference": round(rate["engine"] / rate["reference"], 2),
            "manual_over_reference": round(rate["manual"] / rate["reference"], 2),
            "engine_over_manual": round(rate["engine"] / rate["manual"], 2),
            "engine_over_engine_autograd": round(rate["engine"] / rate["engine_autograd"], 2), "contenders": res}


def run_json(args: list[str], timeout: float) -> dict:
    """Run a benchmark script's one-row mode in its own process; its last line is JSON."""
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result in {timeout:.0f} s"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def batched(batches: list[int], threads: list[int], rounds: int, timeout: float) -> list[dict]:
    rows = []
    for t in threads:
        for b in batches:
            row = run_json([str(ROOT / "batched.py"), "--one", str(b), "--rounds", str(rounds), "--threads", str(t)],
                           timeout=timeout)
            rows.append({"threads": t, **row})
    return rows


def tm_2048x32(steps: int, tm_steps: int) -> dict:
    out = {}
    for kind, n in (("network", steps), ("tm", tm_steps)):
        out[kind] = run_json([str(ROOT / "scaling.py"), "--one", kind, "2048", "32", "256", "--steps", str(n),
                              "--sequence", "100"], timeout=600)
    return out


def detect(rows: int, series) -> dict:
    from detect_speed import measure

    from deephtm.graph.graphfile import load_graph

    graph = load_graph(ROOT.parent / "graphs" / "anomaly.json")
    per, total_rows, total_cpu = {}, 0, 0.0
    for name in series:
        m = measure(graph, str(ROOT.parent / "data" / "nab" / name), rows)
        m.pop("flagged_rows")
        per[name] = m
        total_rows += m["rows"]
        total_cpu += m["cpu_s"]
    return {"rows_per_cpu_s": round(total_rows / max(total_cpu, 1e-9), 1), "rows": total_rows, "series": per}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke test: few steps, no subprocess rows")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="online steps per contender per round")
    ap.add_argument("--detect-rows", type=int, default=1500, help="rows of each NAB series")
    ap.add_argument("--threads", default="1,2", help="torch threads of the batched rows (two threads "
                    "spin-wait for each other: on a loaded machine their rows take very long)")
    ap.add_argument("--row-timeout", type=float, default=600, help="seconds each process row may take")
    ap.add_argument("--sections", default="online,batched,tm,detect", help="which parts to run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = {"benchmark": "speed", "device": "cpu", "quick": args.quick,
           "rate_unit": "per CPU second of the measuring process (median of rounds)", "targets": TARGETS}
    if args.quick:
        out["online"] = online(rounds=2, steps=20)
        out["detect"] = detect(rows=150, series=NAB[:1])
    else:
        sections = set(args.sections.split(","))
        met = out["met"] = {}
        if "online" in sections:
            out["online"] = on = online(args.rounds, args.steps)
            met["online_steps_per_s"] = on["engine_steps_per_s"] >= TARGETS["online_steps_per_s"]
            met["online_over_reference"] = on["engine_over_reference"] >= TARGETS["online_over_reference"]
        if "batched" in sections:
            out["batched"] = batched([1, 32, 256], [int(t) for t in args.threads.split(",")], 3, args.row_timeout)
            b256 = [r for r in out["batched"] if r.get("batch") == 256 and r["threads"] == 2]  # wall rate, 2 threads
            if b256:
                met["batched_256_two_threads_samples_per_s"] = \
                    b256[0].get("samples_per_wall_s", 0) >= TARGETS["batched_256_two_threads_samples_per_s"]
        if "tm" in sections:
            out["tm_2048x32"] = tm_2048x32(steps=60, tm_steps=300)
            met["tm_2048x32_network_steps_per_s"] = \
                out["tm_2048x32"]["network"].get("steps_per_s", 0) >= TARGETS["tm_2048x32_network_steps_per_s"]
        if "detect" in sections:
            out["detect"] = detect(args.detect_rows, NAB)
    out.update({"wall_s": round(time.perf_counter() - t0, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "torch": torch.__version__})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
