"""Training speed in the app (editor + run panel with live plots) against the headless CLI,
on the same graph, measured in the same run. Prints one JSON object.

    python benchmarks/app_vs_cli.py [--graph graphs/sine.json] [--steps 2000] [--rounds 3] [--threads N]
                                    [--workers process,thread]

Each round trains once with `deephtm train` and once per app worker with `deephtm-app
--train-steps` (offscreen, editor and live plots on; the worker is the run panel's default,
a training process, or the QThread, chosen by DEEPHTM_APP_WORKER), rotating the order per
round so that drifting machine load hits all alike. steps/s is each run's summary.json figure
(training loop time only). The load average is read before and after."""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict, out: Path) -> tuple[float, str]:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    return float(summary["steps_per_s"]), proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default="graphs/sine.json")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch intra-op threads for both (OMP_NUM_THREADS); default: torch's")
    ap.add_argument("--workers", default="process", help="app workers to measure, comma-separated: process, thread")
    args = ap.parse_args()
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    if not workers or any(w not in ("process", "thread") for w in workers):
        sys.exit("benchmark: --workers takes process and/or thread")

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    cli: list[float] = []
    app = {w: [] for w in workers}
    fps = {w: [] for w in workers}
    with tempfile.TemporaryDirectory(prefix="app-vs-cli-") as tmp:
        for r in range(args.rounds):
            cli_out = Path(tmp) / f"cli{r}"
            runs = [("cli", [sys.executable, "-m", "deephtm", "train", args.graph, "--steps", str(args.steps),
                             "--out", str(cli_out), "--quiet"], cli_out, env)]
            for w in workers:
                out = Path(tmp) / f"app-{w}{r}"
                runs.append((w, [sys.executable, "-m", "app.main", args.graph, "--train-steps", str(args.steps),
                                 "--out", str(out), "--screenshot", str(Path(tmp) / f"app-{w}{r}.png")],
                             out, dict(env, DEEPHTM_APP_WORKER=w)))
            shift = r % len(runs)
            for name, cmd, out, run_env in runs[shift:] + runs[:shift]:
                sps, stdout = run(cmd, run_env, out)
                if name == "cli":
                    cli.append(sps)
                    continue
                app[name].append(sps)
                m = re.search(r"(\d+) plot frames", stdout)
                if m and sps > 0:
                    fps[name].append(round(int(m.group(1)) / (args.steps / sps), 1))
    result = {
        "graph": args.graph,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads or "torch default",
        "cpu_count": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cli_steps_per_s": cli,
        "cli_median": statistics.median(cli),
    }
    for w in workers:
        result[f"app_{w}_steps_per_s"] = app[w]
        result[f"app_{w}_plot_frames_per_s"] = fps[w]
        result[f"app_{w}_median"] = statistics.median(app[w])
        result[f"ratio_app_{w}_over_cli"] = round(statistics.median(app[w]) / statistics.median(cli), 3)
        result[f"ratio_app_{w}_per_round"] = per_round = [round(a / c, 3) for a, c in zip(app[w], cli)]
        # Runs of one round are minutes apart at most: their ratio drifts less with the load.
        result[f"ratio_app_{w}_median_of_rounds"] = statistics.median(per_round)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
