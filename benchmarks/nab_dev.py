"""Detect and score the NAB development set at several seeds, with ablations. Prints one JSON
object: per seed, the corpus scores of the detector, per category, and of the same raw
anomalies scored other ways, all through NAB's corpus protocol (deephtm/anomaly/nab_corpus.py):

- raw_anomaly: the TM's raw anomaly itself as the score;
- likelihood: the graph's anomaly.likelihood without the range check (no 'value' input);
- range_check: the likelihood node fed a constant raw anomaly, so only the range check ranks;
- no_repeat_window: the detector with repeat_window 0;
- no_calibration: the detector with calibration_quantile 0 (each surprise as it is, not
  measured against the series' own);
- no_alarm_surprise: the detector with alarm_surprise 0 (the row after an alarm keeps its score);
- held_out_threshold: leave one category out: the graph's settings, the threshold chosen on
  the other six categories, the seven held-out results summed (raw, null and perfect scores);
- held_out_settings: the same, with the calibration and alarm_surprise also chosen on the
  other six (calibration off, or calibration_quantile 0.995, 0.998, 0.999 with
  calibration_level 4, or 0.998 with 3 or 5; alarm_surprise off, 3, 4 or 5: 24 settings).

The scores replay the graph's anomaly.likelihood node over the raw anomalies, values and
sampling gaps of each run: nothing there feeds back into the TM, so the replay of the full
detector ('detector') reproduces the scores of a run of this graph, and the runs of an
earlier graph with the same encoders, SP and TM can be rescored without running them again.
'as_run' scores the anomaly_score column as written; 'replay_max_difference' is the largest
gap between the two. When the run used this graph it is 0 up to the rounding of the written
columns, except on a handful of rows where that rounding breaks a tie in repeat_window's
comparison and the row scores half or twice as much (5 of the 193,446 rows at seed 0; the
corpus scores are the same).

    .venv/bin/python benchmarks/nab_dev.py [--seeds 0 1 2] [--data NAB_DEV_FOLDER] [--runs runs]
        [--set NODE.PARAM=VALUE ...]

A seed's detect outputs go to RUNS/nab-dev-SEED (as `make nab-dev`); a folder that already
holds them is scored as it is, not run again. '--set sp.columns=1024 --set sp.winners=40' runs
a variant of the graph instead (VALUE read as JSON, else as text): the variant graph is written
to RUNS/nab-dev-VARIANT.json and its outputs go to RUNS/nab-dev-VARIANT-SEED, VARIANT naming the
settings, so that variants never mix with each other's or the graph's own runs.
"""
import argparse
import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deephtm.anomaly.nab_corpus import Series, load_corpus, sweep  # noqa: E402
from deephtm.anomaly.nab_score import normalize, score_detections  # noqa: E402
from deephtm.anomaly.timestamps import parse_timestamp  # noqa: E402
from deephtm.graph.graphfile import load_graph  # noqa: E402
from deephtm.graph.registry import get  # noqa: E402
from deephtm.graph.resolve import check_params  # noqa: E402
from deephtm.nodes.anomaly_likelihood import AnomalyLikelihood  # noqa: E402
from deephtm.nodes.source_csv import sampling_gaps  # noqa: E402

SHORT = {"standard": "standard", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}


def report(corpus: list[Series], categories: bool = False) -> dict:
    """Normalized scores per profile at the corpus-optimized threshold; windows detected and
    false-positive rows at the standard one; per category too if asked."""
    out: dict = {}
    for profile, name in SHORT.items():
        threshold, _ = sweep(corpus, profile)
        scored = [score_detections([v >= threshold for v in s.values], s.windows, name=s.key) for s in corpus]
        groups = {"all": list(zip(scored, corpus))}
        if categories:
            for c in sorted({s.category for s in corpus}):
                groups[c] = [(r, s) for r, s in groups["all"] if s.category == c]
        for group, rows in groups.items():
            value = normalize(sum(r.raw[profile] for r, _ in rows), sum(r.null[profile] for r, _ in rows),
                              sum(r.perfect[profile] for r, _ in rows))
            entry = out.setdefault(group, {})
            entry[name] = None if math.isnan(value) else round(value, 1)
            if profile == "standard":
                entry["detected"] = sum(r.detected for r, _ in rows)
                entry["windows"] = sum(r.windows for r, _ in rows)
                entry["false_positives"] = sum(r.false_positives for r, _ in rows)
                entry["threshold"] = None if math.isinf(threshold) else round(threshold, 4)
    return out if categories else out["all"]


CALIBRATIONS = [{"calibration_quantile": q, "calibration_level": c}
                for q, c in ((0.0, 4.0), (0.995, 4.0), (0.998, 3.0), (0.998, 4.0), (0.998, 5.0), (0.999, 4.0))]
SETTINGS = [dict(c, alarm_surprise=a) for c in CALIBRATIONS for a in (0.0, 3.0, 4.0, 5.0)]


def held_out(variants: dict[str, list[Series]]) -> dict:
    """Leave one category out: for each category, the variant and threshold with the best total
    on the other categories score that one; per profile, the held-out results summed and
    normalized, with the variant chosen for each category."""
    any_corpus = next(iter(variants.values()))
    categories = sorted({s.category for s in any_corpus})
    out: dict = {}
    for profile, name in SHORT.items():
        raw = null = perfect = 0.0
        chosen = {}
        for c in categories:
            totals = {key: sweep([s for s in corpus if s.category != c], profile) for key, corpus in variants.items()}
            key = max(totals, key=lambda k: totals[k][1])  # the first of equals: dicts keep their order
            threshold = totals[key][0]
            chosen[c] = key
            for s in variants[key]:
                if s.category == c:
                    r = score_detections([v >= threshold for v in s.values], s.windows, name=s.key)
                    raw, null, perfect = raw + r.raw[profile], null + r.null[profile], perfect + r.perfect[profile]
        out[name] = round(normalize(raw, null, perfect), 1)
        if len(variants) > 1:
            out[f"{name}_chosen"] = chosen
    return out


def node_params(graph, type_name: str) -> dict:
    """The params of the graph's first node of this type, with its type's defaults filled in."""
    node = next(n for n in graph.nodes if n.type == type_name)
    return check_params(get(type_name), node.id, dict(node.params))


def read_run(path: Path, gap_factor: float) -> dict:
    """The columns of one detect output that the likelihood saw, for the rows the model saw."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen = [i for i, r in enumerate(rows) if r["value"] != ""]
    stamps = [parse_timestamp(rows[i]["timestamp"]) for i in seen]
    return {"n": len(rows), "seen": seen, "raw": [float(rows[i]["raw_anomaly"]) for i in seen],
            "value": [float(rows[i]["value"]) for i in seen],
            "gap": sampling_gaps(stamps, len(seen), gap_factor).tolist()}


def replay(params: dict, run: dict, with_value: bool = True, raw: list | None = None) -> list[float]:
    """The likelihood node's score per row over a run's inputs (0 on rows the model skipped)."""
    inputs = {"raw": (), "gap": (1,), **({"value": (1,)} if with_value else {})}
    node = AnomalyLikelihood(check_params(AnomalyLikelihood, "likelihood", params), inputs)
    node.setup(1, torch.Generator())
    out = node.forward_steps(None, raw=torch.tensor(run["raw"] if raw is None else raw),
                             value=torch.tensor(run["value"]) if with_value else None, gap=torch.tensor(run["gap"]))
    return per_row(run, out["score"].tolist())


def per_row(run: dict, seen_values: list[float]) -> list[float]:
    """A score for every row of a run: seen_values on the rows the model saw, 0 elsewhere."""
    scores = [0.0] * run["n"]
    for i, v in zip(run["seen"], seen_values):
        scores[i] = v
    return scores


def with_params(graph: dict, sets: list[str], where: str) -> dict:
    """A copy of a graph file's JSON with each 'node.param=value' of `sets` applied."""
    graph = json.loads(json.dumps(graph))
    nodes = {n["id"]: n for n in graph["nodes"]}
    for item in sets:
        key, eq, text = item.partition("=")
        node, dot, param = key.partition(".")
        if not (eq and dot and param):
            raise SystemExit(f"nab_dev.py: --set {item!r}: expected NODE.PARAM=VALUE")
        if node not in nodes:
            raise SystemExit(f"nab_dev.py: --set {item!r}: {where} has no node {node!r} (nodes: {', '.join(nodes)})")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        nodes[node].setdefault("params", {})[param] = value
    return graph


def variant_name(sets: list[str]) -> str:
    """A folder-safe name for a list of overrides: sp.columns=1024 -> sp.columns-1024."""
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]", "-", s.replace("=", "-")) for s in sets)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "anomaly.json"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "nab" / "dev"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="run a variant of the graph with this param changed (repeatable)")
    args = ap.parse_args()

    prefix = "nab-dev"
    if args.set:
        raw = json.loads(Path(args.graph).read_text(encoding="utf-8"))
        variant = with_params(raw, args.set, args.graph)
        prefix = f"nab-dev-{variant_name(args.set)}"
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        # detect replaces the source's path, but the graph is checked first: keep it valid
        # once the copy no longer sits beside the original.
        for node in variant["nodes"]:
            path = node.get("params", {}).get("path")
            if node["type"] == "source.csv" and path:
                node["params"]["path"] = str((Path(args.graph).parent / path).resolve())
        args.graph = str(Path(args.runs) / f"{prefix}.json")
        Path(args.graph).write_text(json.dumps(variant, indent=1), encoding="utf-8")

    graph = load_graph(args.graph)
    params = node_params(graph, "anomaly.likelihood")
    gap_factor = node_params(graph, "source.csv")["gap_factor"]
    windows = Path(args.data) / "combined_windows_dev.json"
    result: dict = {"graph": args.graph, "data": args.data, "seeds": {}}
    for seed in args.seeds:
        out = Path(args.runs) / f"{prefix}-{seed}"
        if not out.is_dir():
            subprocess.run([sys.executable, "-m", "deephtm", "detect", args.graph, "--input-dir", args.data,
                            "--out-dir", str(out), "--seed", str(seed)], check=True, cwd=ROOT,
                           stdout=sys.stderr)  # detect's summary would break the JSON printed last
        corpus = load_corpus(out, windows)
        runs = [read_run(out / s.key, gap_factor) for s in corpus]

        def rescored(fn):
            return [Series(s.key, fn(r), s.windows) for s, r in zip(corpus, runs)]

        replayed = rescored(lambda r: replay(params, r))
        settings = {json.dumps(c): rescored(lambda r, c=c: replay(dict(params, **c), r)) for c in SETTINGS}
        drift = max(abs(a - b) for s, t in zip(corpus, replayed) for a, b in zip(s.values, t.values))
        result["seeds"][seed] = {
            "detector": report(replayed, categories=True),
            "as_run": report(corpus),
            "replay_max_difference": round(drift, 7),
            "raw_anomaly": report(rescored(lambda r: per_row(r, r["raw"]))),
            "likelihood": report(rescored(lambda r: replay(params, r, with_value=False))),
            "range_check": report(rescored(lambda r: replay(params, r, raw=[0.0] * len(r["raw"])))),
            "no_repeat_window": report(rescored(lambda r: replay(dict(params, repeat_window=0), r))),
            "no_calibration": report(rescored(lambda r: replay(dict(params, calibration_quantile=0.0), r))),
            "no_alarm_surprise": report(rescored(lambda r: replay(dict(params, alarm_surprise=0.0), r))),
            "no_calibration_no_alarm_surprise": report(rescored(
                lambda r: replay(dict(params, calibration_quantile=0.0, alarm_surprise=0.0), r))),
            "held_out_threshold": held_out({"graph": replayed}),
            "held_out_settings": held_out(settings),
        }
        print(json.dumps({seed: result["seeds"][seed]["detector"]["all"]}), file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
