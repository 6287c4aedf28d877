"""Run `deephtm detect` on the four labelled NAB series in data/nab/ and score them the NAB
way. Prints one JSON object: per series detections, false positives, profile scores and
rows/s, plus the combined profile scores.

    .venv/bin/python benchmarks/nab_four.py [--graph graphs/anomaly.json] [--set node.param=value] [--jobs 2]

--jobs N runs N series at a time in separate processes (each single-threaded, as detect is):
the wall-clock rate of a corpus run on N cores. The scores do not depend on it.
"""
import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deephtm.anomaly.detect import Detector, write_scores  # noqa: E402
from deephtm.graph.graphfile import Graph, load_graph  # noqa: E402
from deephtm.anomaly.nab_score import combined, load_windows, score_detections, window_rows  # noqa: E402
from deephtm.anomaly.timestamps import parse_timestamp  # noqa: E402

SERIES = ("art_daily_jumpsup", "nyc_taxi", "machine_temperature_system_failure", "speed_7578")


def run_one(graph_dict: dict, graph_path: str, csv_path: str, seed, scores_path: str):
    """Detect on one series (in a worker process with --jobs; plain data in and out, as in
    deephtm/worker_process.py): flags, timestamps, rows, wall_s."""
    graph = Graph.from_dict(graph_dict)
    graph.path = graph_path
    res = Detector(graph, csv_path, seed=seed).run()
    write_scores(scores_path, res)
    return [bool(f) for f in res.flagged], res.timestamps, res.rows, res.wall_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--data", default=str(ROOT / "data" / "nab"))
    ap.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="override a node param (JSON value), e.g. likelihood.threshold=0.4")
    ap.add_argument("--series", nargs="*", default=list(SERIES))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", help="folder for the scores CSVs (default: a temporary one)")
    ap.add_argument("--jobs", type=int, default=1, help="series run at a time, one process each")
    args = ap.parse_args()

    graph = load_graph(args.graph)
    for item in args.set:
        ref, value = item.split("=", 1)
        node_id, param = ref.split(".", 1)
        graph.node(node_id).params[param] = json.loads(value)
    windows = load_windows(Path(args.data) / "combined_windows_subset.json")
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="nab_four_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report, results = {"graph": args.graph, "overrides": args.set, "series": []}, []
    jobs = [(graph.to_dict(), graph.path, str(Path(args.data) / f"{name}.csv"), args.seed, str(out_dir / f"{name}.csv"))
            for name in args.series]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(run_one, *zip(*jobs)))
    else:
        runs = [run_one(*job) for job in jobs]
    wall = time.perf_counter() - t0
    total_rows, total_s = 0, 0.0
    for name, (flags, timestamps, rows, wall_s) in zip(args.series, runs):
        key = next(k for k in windows if Path(k).stem == name)
        stamps = [parse_timestamp(t) for t in timestamps]
        score = score_detections(flags, window_rows(stamps, windows[key]), name=key)
        results.append(score)
        d = score.to_dict()
        d["rows_per_s"] = round(rows / wall_s, 1)
        d["detection_rows"] = score.detection_rows
        d["false_positive_rows"] = score.false_positive_rows
        report["series"].append(d)
        total_rows += rows
        total_s += wall_s
        print(f"{name}: {d['detected']}/{d['windows']} windows, {d['false_positives']} FP, "
              f"{d['scores']}, {d['rows_per_s']} rows/s", file=sys.stderr)
    report["total"] = {k: round(v, 2) for k, v in combined(results).items()}
    report["rows"] = total_rows
    report["rows_per_s"] = round(total_rows / total_s, 1)  # per process: rows over detect's own time
    report["jobs"] = args.jobs
    report["wall_s"] = round(wall, 2)
    report["rows_per_wall_s"] = round(total_rows / wall, 1)  # the whole run, processes together
    report["all_windows_detected"] = all(s["missed"] == 0 for s in report["series"])
    report["max_false_positives"] = max(s["false_positives"] for s in report["series"])
    report["scores_dir"] = str(out_dir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
