"""Training speed in the app (editor + run panel with live plots) against the headless CLI,
on the same graph, measured in the same run. Prints one JSON object.

    python benchmarks/app_vs_cli.py [--graph graphs/sine.json] [--steps 2000] [--rounds 3] [--threads N]

Each round trains once with `deephtm train` and once with `deephtm-app --train-steps`
(offscreen, live plots on), alternating which goes first so that drifting machine load
hits both alike. steps/s is each run's summary.json figure (training loop time only)."""
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
    args = ap.parse_args()

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cli, app, fps = [], [], []
    with tempfile.TemporaryDirectory(prefix="app-vs-cli-") as tmp:
        for r in range(args.rounds):
            cli_out, app_out = Path(tmp) / f"cli{r}", Path(tmp) / f"app{r}"
            cli_cmd = [sys.executable, "-m", "deephtm", "train", args.graph, "--steps", str(args.steps),
                       "--out", str(cli_out), "--quiet"]
            app_cmd = [sys.executable, "-m", "app.main", args.graph, "--train-steps", str(args.steps),
                       "--out", str(app_out), "--screenshot", str(Path(tmp) / f"app{r}.png")]
            order = [("cli", cli_cmd, cli_out), ("app", app_cmd, app_out)]
            for name, cmd, out in (order if r % 2 == 0 else order[::-1]):
                sps, stdout = run(cmd, env, out)
                if name == "cli":
                    cli.append(sps)
                else:
                    app.append(sps)
                    m = re.search(r"(\d+) plot frames", stdout)
                    if m and sps > 0:
                        fps.append(round(int(m.group(1)) / (args.steps / sps), 1))
    result = {
        "graph": args.graph,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads or "torch default",
        "cpu_count": os.cpu_count(),
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cli_steps_per_s": cli,
        "app_steps_per_s": app,
        "app_plot_frames_per_s": fps,
        "cli_median": statistics.median(cli),
        "app_median": statistics.median(app),
        "ratio_app_over_cli": round(statistics.median(app) / statistics.median(cli), 3),
        "ratio_per_round": [round(a / c, 3) for a, c in zip(app, cli)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
