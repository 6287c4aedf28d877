"""The `deephtm` command: train, validate and list node types, headless."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import DeepHTMError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class OneLineErrors(argparse.ArgumentParser):
    """Command-line mistakes get one line, like every other error (argparse prints the usage too)."""

    def error(self, message: str):
        command = self.prog.removeprefix("deephtm").strip()
        self.exit(EXIT_USER_ERROR, f"deephtm: error: {command + ': ' if command else ''}{message} "
                                   f"(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineErrors(prog="deephtm", description="Design and train differentiable HTM graphs.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=OneLineErrors)

    t = sub.add_parser("train", help="train a graph file headless")
    t.add_argument("graph", help="graph file (.json)")
    t.add_argument("--steps", type=int, help="train until this many steps in total")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"))
    t.add_argument("--seed", type=int)
    t.add_argument("--lr", type=float, help="override the learning rate")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--out", help="run directory (default: runs/<graph name>)")
    t.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    t.add_argument("--overwrite", action="store_true",
                   help="train into --out even if it holds an earlier run (by default a new run goes to "
                        "the first free OUT-2, OUT-3, ...)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes torchrun starts (gloo on CPUs, nccl on GPUs); "
                        "batch_size is split over them; rank 0 writes the run")

    v = sub.add_parser("validate", help="check graph files without training")
    v.add_argument("graphs", nargs="+")

    n = sub.add_parser("nodes", help="list node types with their ports and params")
    n.add_argument("--json", action="store_true")

    sub.add_parser("schema", help="print the JSON Schema of graph files")

    d = sub.add_parser("detect", help="score every row of a CSV stream for anomalies, learning online")
    d.add_argument("graph", help="anomaly graph file, e.g. graphs/anomaly.json")
    d.add_argument("--input", help="CSV file to score")
    d.add_argument("--input-dir", help="score every CSV under this folder (e.g. NAB's data/), several at once")
    d.add_argument("--timestamp-column", default="timestamp", help="'' for none (default: timestamp)")
    d.add_argument("--timestamp-format", help="strptime format (default: the graph's, else ISO 8601)")
    d.add_argument("--value-column", default="value")
    d.add_argument("--threshold", type=float, help="flag rows whose anomaly_score reaches this")
    d.add_argument("--seed", type=int)
    d.add_argument("--out", help="scores CSV to write")
    d.add_argument("--summary", help="summary JSON to write (default: OUT with .summary.json)")
    d.add_argument("--out-dir", help="with --input-dir: a new folder for the scores, mirroring the input's sub-folders")
    d.add_argument("--workers", type=int, help="with --input-dir: series run at once (default: one per core)")

    s = sub.add_parser("score", help="NAB profile scores of detect outputs against labelled windows")
    s.add_argument("scores", nargs="+", help="scores CSV files (named after their series), or one folder of detect outputs laid out as NAB's data folder (<category>/<file>.csv): the whole corpus, scored with NAB's threshold optimization")
    s.add_argument("--windows", required=True, help="NAB windows JSON")
    s.add_argument("--threshold", type=float, help="detections: anomaly_score >= this (default: 'flagged')")
    s.add_argument("--quiet", type=int, default=0,
                   help="with --threshold: a detection also needs this many rows below it just before "
                        "(one per excursion, as anomaly.likelihood's 'quiet'; graphs/anomaly.json uses 20)")
    s.add_argument("--json", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a command-line mistake (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    try:
        return COMMANDS[args.command](args)
    except DeepHTMError as exc:
        print(f"deephtm: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # e.g. --out names a file, or the disk is full: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"deephtm: error: {DeepHTMError(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("deephtm: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_train(args) -> int:
    from .graph.graphfile import load_graph
    from .graph.resolve import resolve
    from .graph.training import TRAINING_PARAMS

    graph = load_graph(args.graph)
    checks = {p.name: p for p in TRAINING_PARAMS}
    overrides = {}
    for name, value in (("steps", args.steps), ("seed", args.seed), ("lr", args.lr), ("batch_size", args.batch_size)):
        if value is not None:
            overrides[name] = checks[name].check(value, where=f"--{name.replace('_', '-')}")
    resolve(graph, training=graph.training.override(**overrides))  # a bad graph fails before anything else loads

    from .train.checkpoint import CHECKPOINT_FILE, checkpoint_path, has_checkpoint
    from .train.ctrl_c import StopOnCtrlC
    from .train.progress import ProgressListener
    from .train.rundir import RunLock, RunLogger, checkpoint_step, default_run_dir, drop_log_lines_after, \
        fresh_run_dir
    from .train.trainer import Trainer

    if args.resume and args.out:
        raise DeepHTMError("--resume continues in the run directory it names; drop --out", where="--out")
    if args.resume:
        out = args.resume
        if not Path(out).is_dir():
            raise DeepHTMError("no such run directory to resume", file=out)
        resume = has_checkpoint(out)
        if not resume and checkpoint_path(out).parent.exists():
            raise DeepHTMError(f"the checkpoint folder has no {CHECKPOINT_FILE}: it was removed or the run "
                               "directory is damaged", file=str(checkpoint_path(out).parent))
        if not resume:  # a run killed before its first checkpoint starts again
            print(f"deephtm: {out} has no checkpoint yet (killed before its first); starting from step 0",
                  file=sys.stderr)
    else:
        wanted = args.out or str(default_run_dir(args.graph))
        out = wanted if args.overwrite else str(fresh_run_dir(wanted))
        if out != wanted:
            print(f"deephtm: {wanted} holds an earlier run, kept; this run goes to {out}", file=sys.stderr)
        elif Path(out).exists() and not Path(out).is_dir():
            raise DeepHTMError("is a file, not a run directory", file=out)
        resume = False
    if args.distributed:
        return _train_distributed(args, graph, out, overrides)
    with RunLock(out):
        listeners = [RunLogger(out, append=resume)]
        if not args.quiet:
            listeners.append(ProgressListener())
        trainer = Trainer(graph, out=out, device=args.device, resume=resume, listeners=listeners, **overrides)
        for node in trainer.model.nodes.values():
            for note in node.data_warnings():
                print(f"deephtm: warning: {note}", file=sys.stderr)
        if resume:
            drop_log_lines_after(out, trainer.step)
        stop = StopOnCtrlC(trainer)
        try:
            with stop:
                summary = trainer.run()
            interrupted = stop.pressed and summary["interrupted"]
        except KeyboardInterrupt:  # a second Ctrl-C, mid-step (perhaps mid-save)
            interrupted = True
    if interrupted:
        saved = checkpoint_step(out)
        if saved == trainer.step:
            told = f"checkpoint saved in {Path(out) / 'checkpoint'}"
        elif saved is not None:
            told = f"no checkpoint saved for it; the last checkpoint, step {saved}, is kept in {Path(out) / 'checkpoint'}"
        else:
            told = "no checkpoint was saved"
        print(f"deephtm: interrupted at step {trainer.step}; {told}", file=sys.stderr)
        return stop.exit_code
    if not args.quiet:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in summary["metrics"].items() if isinstance(v, (int, float)))
        print(f"trained {summary['steps']} steps in {summary['wall_s']:.1f} s "
              f"({summary['steps_per_s']:.0f} steps/s on {summary['device']}); {metrics}; run in {out}")
    return 0


def _train_distributed(args, graph, out: str, overrides: dict) -> int:
    from .train.distributed import DataParallel
    from .train.progress import ProgressListener
    from .train.rundir import RunLogger
    from .train.trainer import Trainer

    if args.resume:
        # Rank 0's checkpoint holds only rank 0's streams (their phases, delayed values).
        raise DeepHTMError("--resume is not supported with --distributed", where="--resume")
    dp = DataParallel()
    finished = False
    try:
        listeners = [RunLogger(out)] + ([] if args.quiet else [ProgressListener()]) if dp.is_main else []
        trainer = Trainer(graph, out=out if dp.is_main else None, device=args.device, listeners=listeners,
                          distributed=dp, **overrides)
        summary = trainer.run()
        if dp.is_main and not args.quiet:
            print(f"trained {summary['steps']} steps on {dp.world} processes in {summary['wall_s']:.1f} s "
                  f"({summary['steps_per_s']:.0f} steps/s, batch {trainer.config.batch_size} in all); run in {out}")
        finished = True
    finally:
        dp.close(finished)
    # A finished rank skips the interpreter's teardown: even after destroy_process_group, a
    # rank sometimes aborted there ("terminate called without an active exception", about 1
    # run in 25), as gloo's threads were destroyed during finalization. The run directory is
    # written and closed by now; only the standard streams need flushing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_validate(args) -> int:
    from .graph.graphfile import load_graph
    from .graph.resolve import analyse, resolve

    failed = 0
    for path in args.graphs:
        try:
            graph = load_graph(path)
            r = resolve(graph)  # a bad file: its first error, one line, as fast as ever
            for w in analyse(graph).warnings:  # the graph trains, but probably not as meant
                print(f"deephtm: warning: {w}", file=sys.stderr)
            print(f"{path}: ok ({len(r.nodes)} nodes, {r.total_values:,} values)")
        except DeepHTMError as exc:
            print(f"deephtm: error: {exc}", file=sys.stderr)
            failed += 1
    return EXIT_USER_ERROR if failed else 0


def cmd_nodes(args) -> int:
    from .graph import registry

    described = registry.describe_all()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for d in described:
        print(f"{d['type']}  [{d['category']}]  {d['doc']}")
        for direction in ("inputs", "outputs"):
            for p in d[direction]:
                opt = ", optional" if p.get("optional") else ""
                print(f"    {direction[:-1]:6} {p['name']:<12} {p['kind']}{opt}: {p['doc']}")
        for p in d["params"]:
            rng = ""
            if "choices" in p:
                rng = " one of " + "|".join(p["choices"])
            elif "min" in p or "max" in p:
                rng = f" in [{p.get('min', '')}, {p.get('max', '')}]"
            print(f"    param  {p['name']:<12} {p['type']} = {p['default']!r}{rng}: {p['doc']}")
        print()
    return 0


def cmd_schema(args) -> int:
    from .graph.schema import graph_schema

    print(json.dumps(graph_schema(), indent=2))
    return 0


def cmd_detect(args) -> int:
    from .anomaly.detect import detect

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise DeepHTMError(f"{args.threshold!r} is not in [0, 1]", where="--threshold")
    if (args.input is None) == (args.input_dir is None):
        raise DeepHTMError("give one of --input FILE.csv or --input-dir DIR", where="detect")
    if args.input_dir is not None:
        return _detect_corpus(args)
    if args.out is None or args.out_dir is not None:
        raise DeepHTMError("--input writes one scores file: give --out FILE.csv", where="--out")
    _check_detect_outputs(args)
    summary = detect(args.graph, args.input, args.out, summary_path=args.summary, progress=sys.stderr.isatty(),
                     value_column=args.value_column, timestamp_column=args.timestamp_column,
                     timestamp_format=args.timestamp_format, threshold=args.threshold, seed=args.seed)
    for s in summary["skipped_rows"][:20]:
        print(f"deephtm: warning: {args.input}: line {s['line']}: {s['reason']}; row skipped", file=sys.stderr)
    if len(summary["skipped_rows"]) > 20:
        print(f"deephtm: warning: {len(summary['skipped_rows']) - 20} more rows skipped", file=sys.stderr)
    for note in summary["warnings"]:
        print(f"deephtm: warning: {note}", file=sys.stderr)
    shown = dict(summary, skipped_rows=len(summary["skipped_rows"]))
    print(json.dumps(shown, indent=2))
    return 0


def _check_detect_outputs(args) -> None:
    """Before any work: the scores and the summary must go to two new places, neither the
    input nor the graph, and both must be writable."""
    from .atomic import check_can_write

    summary = args.summary or str(Path(args.out).with_suffix(".summary.json"))
    inputs = {"--input": args.input, "the graph file": args.graph}
    outputs = {"--out": args.out, "--summary": summary}
    for out_name, out_path in outputs.items():
        for in_name, in_path in inputs.items():
            if Path(in_path).exists() and Path(out_path).exists() and Path(out_path).samefile(in_path):
                raise DeepHTMError(f"{out_path} is {in_name}: results never replace an input", where=out_name)
        check_can_write(out_path, out_name)
    if Path(args.out).resolve() == Path(summary).resolve():
        raise DeepHTMError("--out and --summary name the same file", where="--summary")


def _detect_corpus(args) -> int:
    from .anomaly.corpus import detect_corpus
    from .graph.graphfile import load_graph

    if args.out_dir is None or args.out is not None or args.summary is not None:
        raise DeepHTMError("--input-dir writes a folder of scores: give --out-dir DIR", where="--out-dir")
    if args.workers is not None and not 1 <= args.workers <= 256:
        raise DeepHTMError(f"{args.workers} is not in [1, 256]", where="--workers")
    load_graph(args.graph)  # a bad graph fails once, here, not in every worker
    report = detect_corpus(args.graph, args.input_dir, args.out_dir, workers=args.workers,
                           progress=sys.stderr.isatty(), value_column=args.value_column,
                           timestamp_column=args.timestamp_column, timestamp_format=args.timestamp_format,
                           threshold=args.threshold, seed=args.seed)
    for f in report["failed"]:
        print(f"deephtm: error: {f['error']}", file=sys.stderr)
    print(json.dumps({"input_dir": report["input_dir"], "out_dir": report["out_dir"],
                      "series": len(report["series"]), "failed": len(report["failed"]),
                      "rows": report["rows"], "workers": report["workers"]}, indent=2))
    return EXIT_USER_ERROR if report["failed"] else 0


def cmd_score(args) -> int:
    from .anomaly.nab_score import score_files

    if args.quiet < 0:
        raise DeepHTMError(f"{args.quiet} is negative", where="--quiet")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:  # also refuses nan
        raise DeepHTMError(f"{args.threshold!r} is not in [0, 1]", where="--threshold")
    if len(args.scores) == 1 and Path(args.scores[0]).is_dir():
        return _score_corpus(args)
    if args.quiet and args.threshold is None:
        raise DeepHTMError("needs --threshold (the 'flagged' column already applies the graph's rule)",
                           where="--quiet")
    report = score_files(args.scores, args.windows, args.threshold, args.quiet)
    report.pop("_results")
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
        return 0
    for s in report["series"] + [{"series": "all", **{"scores": report["total"]}}]:
        counts = "" if "detected" not in s else \
            f"  windows {s['detected']}/{s['windows']} detected, {s['false_positives']} false positives"
        scores = "  ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in s["scores"].items())
        print(f"{s['series']}:{counts}\n    {scores}")
    return 0


def _score_corpus(args) -> int:
    """NAB's protocol over a folder of detect outputs: thresholds optimized per profile."""
    from .anomaly.nab_corpus import format_table, score_corpus

    if args.threshold is not None or args.quiet:
        raise DeepHTMError("a results folder is scored with one threshold per profile optimized over the "
                           "corpus (NAB's protocol); score single files to fix a threshold", where="--threshold")
    report = score_corpus(args.scores[0], args.windows)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print(format_table(report))
    return 0


COMMANDS = {"train": cmd_train, "validate": cmd_validate, "nodes": cmd_nodes, "schema": cmd_schema,
            "detect": cmd_detect, "score": cmd_score}
