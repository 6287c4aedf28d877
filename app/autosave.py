"""Crash recovery (no Qt): every minute the editor writes unsaved work to a recovery file;
a clean exit removes it, so a recovery file found at start-up means a crash, and is offered
back. Files are per process, so two editors open at once never offer each other's work."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from deephtm.atomic import atomic_write_bytes, process_alive
from deephtm.graph.graphfile import Graph, dumps

AUTOSAVE_INTERVAL_MS = 60_000


@dataclass
class Recovery:
    graph_file: Path
    meta_file: Path
    original: str | None  # the file the work belonged to (None: never saved)
    saved_at: float


def default_dir() -> Path:
    env = os.environ.get("DEEPHTM_RECOVERY_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "deephtm" / "recovery"


class RecoveryStore:
    def __init__(self, folder: Path | None = None, pid: int | None = None):
        self.folder = Path(folder) if folder else default_dir()
        self.pid = os.getpid() if pid is None else pid  # tests stand in for a crashed editor
        self.graph_file = self.folder / f"session-{self.pid}.json"
        self.meta_file = self.folder / f"session-{self.pid}.meta.json"

    def write(self, graph: Graph, original: str | None) -> None:
        atomic_write_bytes(self.graph_file, dumps(graph).encode("utf-8"))
        meta = {"original": original, "pid": self.pid, "saved_at": time.time()}
        atomic_write_bytes(self.meta_file, json.dumps(meta).encode("utf-8"))

    def clear(self) -> None:
        for f in (self.graph_file, self.meta_file):
            try:
                f.unlink()
            except FileNotFoundError:
                pass

    def orphans(self) -> list[Recovery]:
        """Recovery files left by editors that are no longer running."""
        found = []
        if not self.folder.is_dir():
            return found
        for meta_file in sorted(self.folder.glob("session-*.meta.json")):
            try:
                meta = json.loads(meta_file.read_text("utf-8"))
                pid = int(meta.get("pid", 0))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
            graph_file = meta_file.with_name(meta_file.name.replace(".meta.json", ".json"))
            if process_alive(pid) or not graph_file.exists():
                continue
            found.append(Recovery(graph_file, meta_file, meta.get("original"), float(meta.get("saved_at", 0))))
        return found

    @staticmethod
    def discard(r: Recovery) -> None:
        for f in (r.graph_file, r.meta_file):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
