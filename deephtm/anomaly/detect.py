"""`deephtm detect`: run an anomaly graph over a CSV stream online, one row at a time.

The graph learns as it goes and never sees a later row: each row is one time step of the
same GraphModule the trainer runs, followed by one optimizer step on that row's loss. The
CSV file is read by the graph's one node with stream_role "source" (source.csv); the raw
anomaly is whatever feeds the 'raw' input of its one node with stream_role "likelihood"
(anomaly.likelihood), whose 'score' is the final anomaly score and whose 'flag' marks the
flagged rows.

Bad rows (a missing or non-numeric value, an unparsable timestamp) are skipped with a
warning naming their line: the model never sees them, and the scores file still gets one
row for them (value and raw scores empty, anomaly_score 0) so that it lines up with the input.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import DeepHTMError, GraphError, TrainingError
from ..atomic import AtomicFile, atomic_write_bytes
from ..graph import registry
from ..graph.graphfile import Graph, load_graph
from ..node import Context
from ..train.optim import optimizer_step
from .fast_path import OnlineFastPath
from ..train.trainer import Trainer

SCORE_COLUMNS = ("timestamp", "value", "raw_anomaly", "anomaly_likelihood", "anomaly_score", "flagged")


@dataclass
class Detection:
    """Per input row (skipped rows included, with None scores)."""

    timestamps: list[str] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    value_texts: list[str] = field(default_factory=list)  # the value cell as read ("" for a skipped row)
    raw: list[float | None] = field(default_factory=list)
    likelihood: list[float | None] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of each row
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    wall_s: float = 0.0
    threshold: float = 0.5

    @property
    def rows(self) -> int:
        return len(self.score)

    def summary(self, input_path: str = "", graph_path: str = "") -> dict:
        flagged = [{"line": self.lines[i], "timestamp": self.timestamps[i], "anomaly_score": round(self.score[i], 6)}
                   for i, f in enumerate(self.flagged) if f]
        return summarize(self, self.rows, flagged, input_path, graph_path)


def summarize(result: Detection, rows: int, flagged_points: list[dict], input_path: str, graph_path: str) -> dict:
    """The summary JSON of a detection of `rows` rows."""
    scored = rows - len(result.skipped)
    return {
        "input": input_path,
        "graph": graph_path,
        "rows": rows,
        "scored_rows": scored,
        "skipped_rows": [{"line": line, "reason": why} for line, why in result.skipped],
        "wall_s": round(result.wall_s, 3),
        "rows_per_s": round(scored / result.wall_s, 1) if result.wall_s > 0 else 0.0,
        "threshold": result.threshold,
        "flagged": len(flagged_points),
        "flagged_points": flagged_points,
    }


class Detector:
    """Prepares the graph for one CSV file; run() streams through it."""

    def __init__(self, graph: Graph | str, input_path: str, *, value_column: str = "value",
                 timestamp_column: str = "timestamp", timestamp_format: str | None = None,
                 threshold: float | None = None, seed: int | None = None, fast: bool = True):
        self.fast = fast  # False: every row through model.step and the optimizer (a reference)
        graph = load_graph(graph) if isinstance(graph, (str, Path)) else graph.copy()
        self.graph_path = graph.path or ""
        self.input_path = str(input_path)
        source = _single(graph, "source")
        lik = _single(graph, "likelihood")
        source.params.update(registry.get(source.type).stream_params(
            str(Path(input_path).resolve()), value_column, timestamp_column, timestamp_format))
        if threshold is not None:
            lik.params["threshold"] = threshold
        # One stream, one optimizer step per row: the online setting, whatever the file says.
        graph.training.mode = "online"
        self.trainer = Trainer(graph, seed=seed, batch_size=1, device="cpu")
        model = self.trainer.model
        self.source = model.nodes[source.id]
        self.threshold = model.nodes[lik.id].p["threshold"]
        feed = model.resolved.inbound[lik.id]["raw"]
        self.keys = [(feed.src, feed.src_port)] + [(lik.id, port) for port in ("likelihood", "score", "flag")]
        # Each row's timestamp and value as written are read again row by row as the scores
        # come (run()), so no column of the file is held in memory.
        self.text_columns = [c for c in (timestamp_column, value_column) if c]

    @property
    def rows(self) -> int:
        return len(self.source.lines) + len(self.source.skipped)

    def run(self, chunk: int = 256, on_chunk: Callable[[Detection, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Detection:
        """Stream every usable row through the graph. on_chunk(result, rows_done) is called
        every `chunk` rows with the growing result (e.g. to draw it live)."""
        src = self.source
        result = Detection(threshold=self.threshold, skipped=list(src.skipped))
        # Every input row in file order: a usable one waits for its scores, a skipped one
        # (its line in self._skipped) is added as it comes.
        self._skipped = dict(src.skipped)
        self.first_line, self._texts = src.column_texts(self.text_columns)
        self._pending = None  # the next row's texts, read but not yet added
        self._index = 0  # rows added so far
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one tiny step at a time: more threads only add overhead
        t0 = time.perf_counter()
        try:
            for rows in self._steps(len(src.lines), chunk):
                self._append(result, rows.tolist())
                if on_chunk is not None:
                    on_chunk(result, len(result.score))
                if should_stop is not None and should_stop():
                    break
            else:
                self._append(result, [])  # skipped lines after the last usable row
                if self._index != self.rows:  # the texts were read again for the scores
                    raise DeepHTMError(f"the file changed while it was scored ({self.rows} rows when it "
                                       f"was read, {self._index} now)", file=self.input_path)
        finally:
            torch.set_num_threads(threads)
            self._texts.close()
        result.wall_s = time.perf_counter() - t0
        return result

    def _steps(self, n: int, chunk: int):
        """Yields [rows, 4] tensors of raw anomaly, likelihood, score and flag, `chunk` rows at a time."""
        tr = self.trainer
        model, opt, clip = tr.model, tr.optimizer, tr.config.grad_clip
        ctx = Context(step=0, batch=1, device=tr.device, generator=tr.generator)
        keys = self.keys
        out: list[list[torch.Tensor]] = [[] for _ in keys]
        losses: list[torch.Tensor] = []
        fast: OnlineFastPath | None = None
        frozen = False
        params = list(model.parameters())
        rows = 0  # rows stepped since the last chunk
        for step in range(n):
            ctx.step = step
            values = model.step(ctx) if fast is None else fast.step(ctx)
            loss = model.loss(values)
            learns = loss is not None and opt is not None and (loss.requires_grad or fast is not None and fast.recorded())
            if fast is not None:
                if learns:
                    fast.learn(loss, clip)
            else:
                if learns:
                    optimizer_step(opt, loss, params, clip)
                if not frozen and (learns or loss is None or opt is None):
                    # Weights the first row's loss did not reach (in graphs/anomaly.json: the
                    # encoders and SP, upstream of the TM's loss only through its targets) never
                    # learn; not recording their graph each row saves time and changes nothing.
                    for p in model.parameters():
                        if p.grad is None:
                            p.requires_grad_(False)
                    frozen = True
                    if self.fast:
                        fast = OnlineFastPath(model, opt, self.source, start=step + 1, extra_keys=keys)
            if learns:
                losses.append(loss.detach())
            model.carry(values, detach=True)
            rows += 1
            for acc, k in zip(out, keys):
                v = values.get(k)  # None: a tail node's output, given by fast.flush()
                if v is not None:
                    acc.append(v)
            if rows == chunk or step == n - 1:
                if losses and not math.isfinite(torch.stack(losses).sum().item()):
                    raise TrainingError(f"the loss became NaN or infinite near row {step + 1}")
                tail = fast.flush(ctx) if fast is not None else {}
                for acc, k in zip(out, keys):
                    if k in tail:
                        acc.append(tail[k])
                yield torch.stack([torch.cat(acc).detach().float() for acc in out], dim=1)
                out, losses, rows = [[] for _ in keys], [], 0

    def _append(self, result: Detection, rows: list[list[float]]) -> None:
        """Add scored rows to the result in file order, with skipped lines in between."""
        timestamped = len(self.text_columns) == 2
        k = 0
        while True:
            if self._pending is None:
                self._pending = next(self._texts, None)
                if self._pending is None:
                    return  # the end of the file
            line = self.first_line + self._index
            why = self._skipped.get(line)
            if why is None and k == len(rows):
                return  # the next usable row comes with the next chunk
            texts, self._pending = self._pending, None
            result.lines.append(line)
            result.timestamps.append(texts[0] if timestamped else str(self._index))
            self._index += 1
            if why is not None:
                result.value_texts.append("")
                result.values.append(None)
                result.raw.append(None)
                result.likelihood.append(None)
                result.score.append(0.0)
                result.flagged.append(0)
                continue
            try:
                value = float(texts[-1])  # as the source parsed it
            except ValueError:
                raise DeepHTMError(f"line {line}: the file changed while it was scored", file=self.input_path) from None
            raw, lik, score, flag = rows[k]
            k += 1
            result.value_texts.append(texts[-1])
            result.values.append(value)
            result.raw.append(raw)
            result.likelihood.append(lik)
            result.score.append(min(max(score, 0.0), 1.0))
            result.flagged.append(int(flag > 0.5))


def _single(graph: Graph, role: str):
    """The graph's one node with this stream_role."""
    types = registry.types()
    found = [n for n in graph.nodes if n.type in types and types[n.type].stream_role == role]
    if len(found) != 1:
        kinds = " or ".join(sorted(t for t, cls in types.items() if cls.stream_role == role))
        raise GraphError(f"deephtm detect needs exactly one '{kinds}' node, found {len(found)}",
                         file=graph.path)
    return found[0]


class ScoreWriter:
    """Writes a detection's rows as they are scored and then forgets them, so memory stays
    flat however long the input; the rows go to a temp file beside `path` that replaces it
    only when every row is written (never a partial file at the final path)."""

    def __init__(self, path: str | Path):
        self.out = AtomicFile(path)
        self.csv = csv.writer(self.out.file, lineterminator="\n")
        self.csv.writerow(SCORE_COLUMNS)
        self.rows = 0
        self.flagged_points: list[dict] = []

    def drain(self, result: Detection) -> None:
        """Write the rows result holds, then drop them from it."""
        for i in range(result.rows):
            self.csv.writerow([result.timestamps[i], result.value_texts[i], _num(result.raw[i]),
                               _num(result.likelihood[i]), f"{result.score[i]:.6f}", result.flagged[i]])
            if result.flagged[i]:
                self.flagged_points.append({"line": result.lines[i], "timestamp": result.timestamps[i],
                                            "anomaly_score": round(result.score[i], 6)})
        self.rows += result.rows
        for rows in (result.timestamps, result.values, result.value_texts, result.raw, result.likelihood,
                     result.score, result.flagged, result.lines):
            rows.clear()
        self.out.file.flush()

    def summary(self, result: Detection, input_path: str, graph_path: str) -> dict:
        return summarize(result, self.rows, self.flagged_points, input_path, graph_path)


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def detect(graph: str | Graph, input_path: str, out: str, *, summary_path: str | None = None, progress: bool = False,
           **kw) -> dict:
    """Score input_path row by row into `out` (written as it goes, in place at the end);
    progress: a bar over rows on stderr."""
    from tqdm import tqdm

    det = Detector(graph, input_path, **kw)
    if not det.source.lines:
        raise DeepHTMError("no usable rows", file=input_path)
    writer = ScoreWriter(out)
    bar = tqdm(total=det.rows, unit="row", disable=not progress, dynamic_ncols=True)

    def written(result: Detection, _done: int) -> None:
        bar.update(result.rows)
        writer.drain(result)

    try:
        with writer.out:  # in place when every row is written; removed on any failure
            result = det.run(on_chunk=written)
            written(result, 0)  # skipped lines after the last chunk
    finally:
        bar.close()
    summary = writer.summary(result, input_path, det.graph_path)
    summary["warnings"] = [w for node in det.trainer.model.nodes.values() for w in node.data_warnings()]
    summary["scores"] = str(out)
    summary_path = summary_path or str(Path(out).with_suffix(".summary.json"))
    atomic_write_bytes(Path(summary_path), (json.dumps(summary, indent=2) + "\n").encode())
    summary["summary"] = summary_path
    return summary
