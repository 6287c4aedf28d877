"""Other raw anomalies read from the same TM, scored on the NAB development set. Prints one JSON
object: per definition, the corpus scores of the detector (the graph's likelihood replayed on
that raw anomaly), of the raw anomaly alone, and the held-out figure (the threshold chosen on
the other six categories), as benchmarks/nab_dev.py reports them.

One detect run per seed serves every definition: each row, before htm.tm's own forward, the
run notes the TM's prediction of that row (the distal input of every column's most
depolarized cell from the previous cells, minus the threshold: its margin) on the active
columns, and how many columns were predicted. Reading the raw anomaly differently changes
nothing the TM learns, so each definition is scored on the same run:

- margin_D: 1 - |active columns whose margin exceeds D| / |active|; margin_0 is the graph's
  raw anomaly (htm.tm's 'binary'), D < 0 counts a nearly predicted column, D > 0 asks more;
- graded: each active column counts by the sigmoid of its margin / temperature (htm.tm's 'graded');
- dice: 1 - 2 |predicted & active| / (|predicted| + |active|): columns predicted that stay
  inactive count too, not only active ones that were not predicted;
- false_share: the share of predicted columns that stay inactive.

    .venv/bin/python benchmarks/nab_readouts.py [--seeds 0] [--data NAB_DEV_FOLDER] [--runs runs]

The detect outputs go to RUNS/nab-readouts-SEED (each series' readouts beside its scores, in
FILE.readouts.json); a folder that already holds them is scored as it is. Needs a graph whose
raw anomaly is a dense htm.tm's 'anomaly' (graphs/anomaly.json).
"""
import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import deephtm.anomaly.detect as detect_module  # noqa: E402
from deephtm.anomaly.nab_corpus import Series, load_corpus  # noqa: E402
from deephtm.graph.graphfile import load_graph  # noqa: E402
from nab_dev import held_out, node_params, per_row, read_run, replay, report  # noqa: E402

MARGINS = (-0.2, -0.1, 0.0, 0.1, 0.2, 0.5)


def noting_readouts(tm, notes: list) -> None:
    """Wrap the TM's forward so that each row's margins on the active columns and the number
    of predicted columns are noted before the row runs (and is learned)."""
    forward = tm.forward

    def noted(ctx, columns, context=None, winner_context=None, apical=None):
        with torch.no_grad():
            active = columns.reshape(-1) > 0
            if context is None or not bool(context.any()):
                notes.append({"margins": [], "predicted": 0, "active": int(active.sum())})
            else:
                margin = tm.gather(context, tm.distal).reshape(-1, tm.C, tm.K)[0].max(-1).values - tm.p["threshold"]
                notes.append({"margins": [round(v, 6) for v in margin[active].tolist()],
                              "predicted": int((margin > 0).sum()), "active": int(active.sum())})
        return forward(ctx, columns, context, winner_context, apical)

    tm.forward = noted


def run_seed(graph: str, data: Path, out: Path, seed: int) -> None:
    """detect every series of `data` into `out`, one at a time, with the readouts beside each."""
    graph_obj = load_graph(graph)
    likelihood = next(n.id for n in graph_obj.nodes if n.type == "anomaly.likelihood")
    tm_id = next(e.src for e in graph_obj.edges if e.dst == likelihood and e.dst_port == "raw")
    if next(n for n in graph_obj.nodes if n.id == tm_id).type != "htm.tm":
        raise SystemExit(f"nab_readouts.py: {graph}: the likelihood's raw input must come from an htm.tm node")
    notes: list = []
    init = detect_module.Detector.__init__

    def noting_init(self, *a, **k):
        init(self, *a, **k)
        noting_readouts(self.trainer.model.nodes[tm_id], notes)

    detect_module.Detector.__init__ = noting_init
    try:
        for path in sorted(data.rglob("*.csv")):
            dst = out / path.relative_to(data)
            dst.parent.mkdir(parents=True, exist_ok=True)
            notes.clear()
            detect_module.detect(graph, str(path), str(dst), seed=seed)
            dst.with_suffix(".readouts.json").write_text(json.dumps(notes), encoding="utf-8")
            print(path.relative_to(data), file=sys.stderr)
    finally:
        detect_module.Detector.__init__ = init


def definitions(temperature: float) -> dict:
    """name -> function of one row's readout giving its raw anomaly (1 before any context)."""
    def margin(d):
        return lambda r: 1 - sum(m > d for m in r["margins"]) / r["active"]

    defs = {f"margin_{d:g}": margin(d) for d in MARGINS}
    defs["graded"] = lambda r: 1 - sum(1 / (1 + math.exp(-m / temperature)) for m in r["margins"]) / r["active"]
    defs["dice"] = lambda r: 1 - 2 * sum(m > 0 for m in r["margins"]) / (r["predicted"] + r["active"])
    defs["false_share"] = lambda r: ((r["predicted"] - sum(m > 0 for m in r["margins"])) / r["predicted"]
                                     if r["predicted"] else 0.0)
    return {k: (lambda f: lambda r: f(r) if r["margins"] else 1.0)(f) for k, f in defs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "nab" / "dev"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()

    graph = load_graph(args.graph)
    params = node_params(graph, "anomaly.likelihood")
    temperature = node_params(graph, "htm.tm")["temperature"]
    gap_factor = node_params(graph, "source.csv")["gap_factor"]
    windows = Path(args.data) / "combined_windows_dev.json"
    result: dict = {"graph": args.graph, "data": args.data, "seeds": {}}
    for seed in args.seeds:
        out = Path(args.runs) / f"nab-readouts-{seed}"
        if not out.is_dir():
            run_seed(args.graph, Path(args.data), out, seed)
        corpus = load_corpus(out, windows)
        runs = [read_run(out / s.key, gap_factor) for s in corpus]
        readouts = [json.loads((out / s.key).with_suffix(".readouts.json").read_text(encoding="utf-8"))
                    for s in corpus]
        seed_result = {}
        for name, fn in definitions(temperature).items():
            raws = [[fn(r) for r in notes] for notes in readouts]
            detector = [Series(s.key, replay(params, r, raw=raw), s.windows) for s, r, raw in zip(corpus, runs, raws)]
            seed_result[name] = {
                "detector": report(detector),
                "raw_anomaly": report([Series(s.key, per_row(r, raw), s.windows) for s, r, raw in zip(corpus, runs, raws)]),
                "held_out_threshold": held_out({"graph": detector}),
            }
            print(json.dumps({seed: {name: seed_result[name]["detector"]}}), file=sys.stderr)
        result["seeds"][seed] = seed_result
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
