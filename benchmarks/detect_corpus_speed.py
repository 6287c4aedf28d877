"""Rows per CPU second of `deephtm detect` over a corpus, start-up included, and its memory.

Each series runs as a user would run it: one `python -m deephtm detect` process with one
torch thread, its CPU time (user + system, from the kernel's accounting of the child) and
peak resident memory taken when it exits. The rate counts everything: interpreter and torch
start-up, building the model, reading the CSV, scoring and writing. Measured in the same run
as a reference: the start-up alone (a process that imports detect and builds the model on a
one-row file), so what the rows themselves cost is visible. Then the same series through
corpus mode (`detect --input-dir`, one worker process), where the interpreter and torch start
once for every series and each series pays only for building its model.

Prints one JSON object: per series rows, cpu_s, rows_per_cpu_s, peak_rss_mb; the corpus
totals; the slope of peak memory against rows (flat memory: near 0 bytes per row).

    .venv/bin/python benchmarks/detect_corpus_speed.py [--data NAB_DEV_FOLDER] [--limit N]   # default: the data folder beside the project
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_ROWS_PER_CPU_S = 2000


def run_child(args: list[str]) -> tuple[float, float, int]:
    """(cpu seconds, peak RSS in MB, exit code) of one child process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(proc.stderr.read().decode(errors="replace"), file=sys.stderr)
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "nab" / "dev"))
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N series (0: all)")
    args = ap.parse_args()
    series = sorted(Path(args.data).rglob("*.csv"))[: args.limit or None]
    with tempfile.TemporaryDirectory() as tmp:
        one_row = Path(tmp) / "one.csv"
        first = series[0].read_text().splitlines()[:2]
        one_row.write_text("\n".join(first) + "\n")
        startup_cpu, startup_rss, _ = run_child(["-m", "deephtm", "detect", args.graph, "--input", str(one_row),
                                                 "--out", str(Path(tmp) / "one_out.csv")])
        rows_out = []
        for i, path in enumerate(series):
            rows = sum(1 for _ in open(path, "rb")) - 1
            cpu, rss, code = run_child(["-m", "deephtm", "detect", args.graph, "--input", str(path),
                                        "--out", str(Path(tmp) / f"s{i}.csv")])
            rows_out.append({"series": str(path.relative_to(args.data)), "rows": rows, "cpu_s": round(cpu, 2),
                             "rows_per_cpu_s": round(rows / cpu, 1), "peak_rss_mb": round(rss, 1), "exit": code})
        corpus = Path(tmp) / "corpus"
        for path in series:  # the chosen series in their category folders
            link = corpus / path.relative_to(args.data)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
        corpus_cpu, corpus_rss, _ = run_child(["-m", "deephtm", "detect", args.graph, "--input-dir", str(corpus),
                                               "--out-dir", str(Path(tmp) / "corpus_out"), "--workers", "1"])
    total_rows = sum(r["rows"] for r in rows_out)
    total_cpu = sum(r["cpu_s"] for r in rows_out)
    n = len(rows_out)
    mean_rows = total_rows / n
    mean_rss = sum(r["peak_rss_mb"] for r in rows_out) / n
    var = sum((r["rows"] - mean_rows) ** 2 for r in rows_out)
    slope = sum((r["rows"] - mean_rows) * (r["peak_rss_mb"] - mean_rss) for r in rows_out) / var if var else 0.0
    print(json.dumps({
        "benchmark": "detect_corpus_speed", "graph": args.graph, "series": n, "rows": total_rows,
        "cpu_s": round(total_cpu, 1), "rows_per_cpu_s": round(total_rows / total_cpu, 1),
        "target_rows_per_cpu_s": TARGET_ROWS_PER_CPU_S,
        "reference_startup": {"cpu_s": round(startup_cpu, 2), "peak_rss_mb": round(startup_rss, 1)},
        "rows_per_cpu_s_without_startup": round(total_rows / max(total_cpu - n * startup_cpu, 1e-9), 1),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rows_out),
        "peak_rss_bytes_per_row": round(slope * 1024 * 1024, 1),
        "corpus_mode": {"cpu_s": round(corpus_cpu, 1), "rows_per_cpu_s": round(total_rows / corpus_cpu, 1),
                        "peak_rss_mb": round(corpus_rss, 1)},
        "per_series": rows_out,
        "rate_unit": "rows per CPU second of the detect process, start-up included",
    }, indent=2))


if __name__ == "__main__":
    main()
