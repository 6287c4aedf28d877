"""`deephtm detect --input-dir DIR --out-dir OUT`: every CSV under DIR, several at once.

Each series is detected exactly as in single-file mode (its own model, learning online from
its first row) and written to OUT/<same sub-folders>/<file>.csv with its summary beside it,
so NAB's data/ folder maps onto the results folder `deephtm score OUT --windows ...` reads.
Series run in a pool of processes, one per core by default; a progress bar counts rows.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ..errors import DeepHTMError


def find_series(input_dir: Path) -> list[Path]:
    """The CSV files under input_dir (any depth), as paths relative to it, sorted."""
    found = sorted(p.relative_to(input_dir) for p in input_dir.rglob("*.csv") if p.is_file())
    if not found:
        raise DeepHTMError("no .csv files in this folder or below", file=str(input_dir))
    return found


def check_folders(input_dir: Path, out_dir: Path) -> None:
    """Refuse anything that could write over an input or an earlier run's results."""
    if not input_dir.is_dir():
        raise DeepHTMError("not a folder", file=str(input_dir))
    src, dst = input_dir.resolve(), out_dir.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise DeepHTMError("the output folder must lie outside the input folder (and not hold it)",
                           file=str(out_dir))
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DeepHTMError("exists and is not an empty folder: results are never written over an "
                           "earlier run; choose a new folder", file=str(out_dir))


def count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


_graphs: dict = {}  # graph file -> Graph, read once per worker process (each series gets a copy)


def _detect_one(graph: str, src: str, out: str, kw: dict) -> tuple[str, dict | None, str | None]:
    """Runs in a worker process: one series, as single-file mode runs it."""
    import torch

    from ..graph.graphfile import load_graph
    from .detect import detect

    torch.set_num_threads(1)
    try:
        if graph not in _graphs:
            _graphs[graph] = load_graph(graph)
        return src, detect(_graphs[graph], src, out, **kw), None
    except DeepHTMError as exc:
        return src, None, str(exc)


def detect_corpus(graph: str, input_dir: str, out_dir: str, *, workers: int | None = None,
                  progress: bool = True, **kw) -> dict:
    """Detect every series under input_dir; returns {"series": [summaries], "failed": [...]}."""
    from tqdm import tqdm

    from . import detect  # noqa: F401  imported once here, not in each forked worker

    input_dir, out_dir = Path(input_dir), Path(out_dir)
    check_folders(input_dir, out_dir)
    series = find_series(input_dir)
    rows = {rel: count_rows(input_dir / rel) for rel in series}
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(series)))
    done, failed = [], []
    bar = tqdm(total=sum(rows.values()), unit="row", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = {pool.submit(_detect_one, graph, str(input_dir / rel), str(out_dir / rel), kw): rel
                    for rel in sorted(series, key=lambda r: -rows[r])}  # longest first: less idle at the end
            for job in as_completed(jobs):
                rel = jobs[job]
                _, summary, error = job.result()
                bar.update(rows[rel])
                if error is not None:
                    failed.append({"series": str(rel), "error": error})
                else:
                    done.append(dict(summary, series=str(rel)))
    finally:
        bar.close()
    done.sort(key=lambda s: s["series"])
    return {"input_dir": str(input_dir), "out_dir": str(out_dir), "series": done, "failed": failed,
            "rows": sum(s["rows"] for s in done), "workers": workers}
