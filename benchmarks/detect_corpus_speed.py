"""Rows per CPU second of `deephtm detect` over a corpus, start-up included, and its memory.

Corpus mode first: `detect --input-dir DIR --out-dir OUT --workers 1`, one process for every
series, the way a corpus is meant to be run: the interpreter and torch start once, and each
series pays only for building its model and reading its file. Its CPU time (user + system of
the process and its worker, from the kernel's accounting) and peak resident memory are taken
when it exits; the rate counts everything: start-up, reading, scoring and writing.

Measured in the same run as references: the start-up alone (a process that builds the model on
a one-row file), so what the rows themselves cost is visible; each series in its own
`python -m deephtm detect` process, as a user would run one file, whose peak memory against
its rows gives the slope of memory in the length of the input (flat: near 0 bytes per row);
and, with --reference CHECKOUT, corpus mode of another checkout of the project (say, the code
before a change) on the same series.

Prints one JSON object.

    .venv/bin/python benchmarks/detect_corpus_speed.py [--data NAB_DEV_FOLDER] [--limit N] [--reference DIR]
    # default data: the data folder beside the project
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


def run_child(args: list[str], root: Path = ROOT) -> tuple[float, float, int]:
    """(cpu seconds, peak RSS in MB, exit code) of one child process running the code of root."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=root)  # python -m looks in the working folder first
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(proc.stderr.read().decode(errors="replace"), file=sys.stderr)
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def corpus_mode(graph: str, corpus: Path, out: Path, root: Path, rows: int) -> dict:
    cpu, rss, code = run_child(["-m", "deephtm", "detect", graph, "--input-dir", str(corpus),
                                "--out-dir", str(out), "--workers", "1"], root)
    return {"cpu_s": round(cpu, 1), "rows_per_cpu_s": round(rows / cpu, 1), "peak_rss_mb": round(rss, 1), "exit": code}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "nab" / "dev"))
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N series (0: all)")
    ap.add_argument("--reference", help="another checkout of the project: its corpus mode runs on the same series")
    ap.add_argument("--no-per-process", action="store_true", help="skip the one-process-per-series runs")
    args = ap.parse_args()
    args.graph = str(Path(args.graph).resolve())
    series = sorted(Path(args.data).rglob("*.csv"))[: args.limit or None]
    rows = {path: sum(1 for _ in open(path, "rb")) - 1 for path in series}
    total_rows = sum(rows.values())
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        for path in series:  # the chosen series in their category folders
            link = corpus / path.relative_to(args.data)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
        ours = corpus_mode(args.graph, corpus, Path(tmp) / "corpus_out", ROOT, total_rows)
        one_row = Path(tmp) / "one.csv"
        one_row.write_text("\n".join(series[0].read_text().splitlines()[:2]) + "\n")
        startup_cpu, startup_rss, _ = run_child(["-m", "deephtm", "detect", args.graph, "--input", str(one_row),
                                                 "--out", str(Path(tmp) / "one_out.csv")])
        reference = None
        if args.reference:
            reference = corpus_mode(args.graph, corpus, Path(tmp) / "reference_out", Path(args.reference), total_rows)
            reference["checkout"] = args.reference
            reference["same_scores"] = all(
                (Path(tmp) / "corpus_out" / rel).read_bytes() == (Path(tmp) / "reference_out" / rel).read_bytes()
                for rel in (path.relative_to(args.data) for path in series))
        per_series = []
        for i, path in enumerate([] if args.no_per_process else series):
            cpu, rss, code = run_child(["-m", "deephtm", "detect", args.graph, "--input", str(path),
                                        "--out", str(Path(tmp) / f"s{i}.csv")])
            per_series.append({"series": str(path.relative_to(args.data)), "rows": rows[path], "cpu_s": round(cpu, 2),
                               "rows_per_cpu_s": round(rows[path] / cpu, 1), "peak_rss_mb": round(rss, 1),
                               "exit": code})
    out = {
        "benchmark": "detect_corpus_speed", "graph": args.graph, "series": len(series), "rows": total_rows,
        "target_rows_per_cpu_s": TARGET_ROWS_PER_CPU_S,
        "corpus_mode": dict(ours, rows_per_cpu_s_without_startup=round(total_rows / max(ours["cpu_s"] - startup_cpu, 1e-9), 1)),
        "reference_startup": {"cpu_s": round(startup_cpu, 2), "peak_rss_mb": round(startup_rss, 1)},
    }
    if reference is not None:
        out["reference_corpus_mode"] = reference
    if per_series:
        cpu = sum(r["cpu_s"] for r in per_series)
        out["one_process_per_series"] = {
            "cpu_s": round(cpu, 1), "rows_per_cpu_s": round(total_rows / cpu, 1),
            "rows_per_cpu_s_without_startup": round(total_rows / max(cpu - len(series) * startup_cpu, 1e-9), 1),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in per_series),
            "peak_rss_bytes_per_row": round(slope([r["rows"] for r in per_series],
                                                  [r["peak_rss_mb"] for r in per_series]) * 1024 * 1024, 1),
            "per_series": per_series}
    out.update(rate_unit="rows per CPU second of the detect process(es), start-up included",
               cpu_count=os.cpu_count(), load_avg_1min=[round(load0, 2), round(os.getloadavg()[0], 2)])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
