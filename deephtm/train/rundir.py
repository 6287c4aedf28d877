"""The run directory: the one place that knows its layout.

    DIR/metrics.jsonl          one JSON line per report ({"step": N, "loss": ..., metrics})
    DIR/summary.json           the final summary (steps, wall_s, steps_per_s, device, metrics)
    DIR/checkpoint/            model.safetensors (weights and all training state) + meta.json

The CLI, the training worker, the trainer and the editor's run panel read and write a run
directory only through this module. Every write is atomic (a temp file, then a rename).

A new run never replaces an earlier one: it goes to the first free sibling folder (runs/sine,
runs/sine-2, runs/sine-3, ...) unless the user asks to overwrite. While a run writes its
folder it holds a lock on DIR/.lock, so a second run into the same folder is refused.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import DeepHTMError
from ..events import TrainerListener
from .checkpoint import META_FILE, checkpoint_path

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def default_run_dir(graph_path: str | os.PathLike | None, name: str = "untitled") -> Path:
    """runs/<graph file name>, as `deephtm train` uses when no --out is given."""
    return Path("runs") / (Path(graph_path).stem if graph_path else name)


def holds_a_run(run_dir: str | os.PathLike) -> bool:
    """Whether run_dir exists with anything in it (an earlier run, or a file in the way)."""
    path = Path(run_dir)
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def fresh_run_dir(run_dir: str | os.PathLike) -> Path:
    """run_dir if it is free (missing or empty), else the first free run_dir-2, run_dir-3, ..."""
    path = Path(run_dir)
    n = 2
    while holds_a_run(path):
        path = Path(f"{run_dir}-{n}")
        n += 1
    return path


def sibling_runs(run_dir: str | os.PathLike) -> list[Path]:
    """The runs of one graph: run_dir's base (without a -N suffix) and every base-N beside it
    that holds a metrics log, oldest first."""
    path = Path(run_dir)
    stem, _, number = path.name.rpartition("-")
    base = path.with_name(stem) if stem and number.isdigit() else path
    found = []
    if base.parent.is_dir():
        for p in base.parent.iterdir():
            suffix = p.name[len(base.name) + 1:] if p.name.startswith(base.name + "-") else None
            if (p == base or (suffix is not None and suffix.isdigit())) and metrics_path(p).is_file():
                found.append((int(suffix) if suffix else 1, p))
    return [p for _, p in sorted(found)]


def describe_run(run_dir: str | os.PathLike) -> str:
    """One line for a list of runs: its name, steps and final metrics (from summary.json)."""
    summary = read_summary(run_dir) or {}
    parts = [Path(run_dir).name]
    if isinstance(summary.get("steps"), int):
        parts.append(f"{summary['steps']:,} steps" + (" (interrupted)" if summary.get("interrupted") else ""))
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    parts += [f"{k} {v:.4g}" for k, v in list(metrics.items())[:3] if isinstance(v, (int, float))]
    return " · ".join(parts) if len(parts) > 1 else f"{parts[0]} · no summary yet"


class RunLock:
    """An exclusive lock on a run directory while a run writes it (released on exit or death)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.file = None

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(self.run_dir / ".lock", "a+")
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            self.file = None
            raise DeepHTMError("another run is writing this run directory; wait for it or choose "
                               "another --out", file=str(self.run_dir)) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing releases the lock
            self.file = None


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
    """Appends one JSON line per report to DIR/metrics.jsonl. A new run (append=False)
    starts the log afresh only once training really starts: a start that fails (a bad
    device, say) leaves the old log as it was."""

    def __init__(self, run_dir, append: bool = False):
        self.path = metrics_path(run_dir)
        self.append = append
        self.file = None

    def on_start(self, info):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a" if self.append else "w", buffering=1)
        self.append = True  # a second run() of the same trainer continues the log

    def on_log(self, step, metrics):
        if self.file is not None:
            self.file.write(json.dumps({"step": step, **metrics}) + "\n")

    def on_end(self, summary):
        if self.file is not None:
            self.file.close()
            self.file = None
