"""`python -m app.run GRAPH --train-steps N --out DIR --screenshot OUT.png` (same as deephtm-app's)."""
import argparse
import sys

from .headless import run_headless_training


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.run", description="Train a graph with the live run panel, headless.")
    ap.add_argument("graph")
    ap.add_argument("--train-steps", type=int, required=True, metavar="N")
    ap.add_argument("--out", metavar="DIR", help="run directory (default: runs/<graph name>)")
    ap.add_argument("--screenshot", metavar="OUT.png")
    ap.add_argument("--panel-only", action="store_true", help="the run panel alone, without the editor")
    args = ap.parse_args(argv)
    return run_headless_training(args.graph, args.train_steps, args.out, args.screenshot, editor=not args.panel_only)


if __name__ == "__main__":
    sys.exit(main())
