"""The run directory: the one place that knows its layout.

    DIR/metrics.jsonl          one JSON line per report ({"step": N, "loss": ..., metrics})
    DIR/summary.json           the final summary (steps, wall_s, steps_per_s, device, metrics)
    DIR/checkpoint/            model.safetensors (weights and all training state) + meta.json

The CLI, the training worker, the trainer and the editor's run panel read and write a run
directory only through this module. Every write is atomic (a temp file, then a rename).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..events import TrainerListener
from .checkpoint import META_FILE, checkpoint_path

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def default_run_dir(graph_path: str | os.PathLike | None, name: str = "untitled") -> Path:
    """runs/<graph file name>, as `deephtm train` uses when no --out is given."""
    return Path("runs") / (Path(graph_path).stem if graph_path else name)


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS_FILE


def write_summary(run_dir: str | os.PathLike, summary: dict) -> None:
    atomic_write_bytes(Path(run_dir) / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())


def read_summary(run_dir: str | os.PathLike) -> dict | None:
    """The run's summary.json, or None when there is none (yet) or it cannot be read."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def read_metrics(run_dir: str | os.PathLike, upto: int | None = None, max_lines: int = 200_000) -> list[dict]:
    """The last max_lines reports of metrics.jsonl (at steps <= upto), skipping torn lines."""
    try:
        lines = metrics_path(run_dir).read_text(encoding="utf-8", errors="replace").splitlines()[-max_lines:]
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and (upto is None or rec["step"] <= upto):
            records.append(rec)
    return records


def checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The step of the run's checkpoint (from its readable metadata); None if there is none."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    try:
        return int(json.loads((path.parent / META_FILE).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def drop_log_lines_after(run_dir: str | os.PathLike, step: int) -> None:
    """Reports written after the checkpoint (by a run that was then killed) are made again
    by the resumed run: drop them, and any line a kill cut short, so each step logs once."""
    log = metrics_path(run_dir)
    if not log.exists():
        return
    kept = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            entry = json.loads(line)
            if line.endswith("\n") and isinstance(entry, dict) and entry.get("step", step + 1) <= step:
                kept.append(line)
        except ValueError:
            pass
    atomic_write_bytes(log, "".join(kept).encode("utf-8"))


class RunLogger(TrainerListener):
    """Appends one JSON line per report to DIR/metrics.jsonl."""

    def __init__(self, run_dir, append: bool = False):
        self.path = metrics_path(run_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("")
        self.file = None

    def on_start(self, info):
        self.file = open(self.path, "a", buffering=1)

    def on_log(self, step, metrics):
        if self.file is not None:
            self.file.write(json.dumps({"step": step, **metrics}) + "\n")

    def on_end(self, summary):
        if self.file is not None:
            self.file.close()
            self.file = None
