"""source.csv: one numeric column of a CSV file, normalized, one row per step, with
optional date encodings (time of day, day of week) from a timestamp column."""
import bisect
import math
from array import array

import torch

from ..anomaly.csvdata import iter_rows, resolve_path
from ..errors import DeepHTMError, GraphError, node_where
from ..node import Node
from ..graph.spec import Param, Port
from ..anomaly.timestamps import parse_timestamp

SECONDS_PER_DAY = 86400.0
ONLINE_CLAMP = 10.0  # online z-scores are clipped: the first rows have a tiny std


class CSVSource(Node):
    type_name = "source.csv"
    category = "source"
    stream_role = "source"
    has_rows = True
    doc = ("One numeric column of a CSV file, one row per step (looping at the end). The path is "
           "relative to the graph file. 'target' is the value 'horizon' rows ahead. With a "
           "timestamp column it also gives the time of day and day of week as (sin, cos) pairs.")
    inputs = ()
    outputs = (Port("value", "tensor", "the current normalized value, shape [1]"),
               Port("target", "tensor", "the normalized value horizon rows ahead, shape [1]"),
               Port("time_of_day", "tensor", "time of day on the unit circle (sin, cos), shape [2]; "
                                             "zeros without a timestamp column"),
               Port("day_of_week", "tensor", "day of the week (Monday 0) on the unit circle (sin, cos), "
                                             "shape [2]; zeros without a timestamp column"),
               Port("raw", "tensor", "the current value as read, not normalized, shape [1] "
                                     "(e.g. for anomaly.likelihood's range check)"),
               Port("gap", "tensor", "1 where this row follows a gap in the sampling (an interval over "
                                     "gap_factor x the median interval so far), else 0; shape [1]; "
                                     "zeros without a timestamp column"))
    params = (
        Param("path", "str", "data.csv", "CSV file, relative to the graph file"),
        Param("column", "str", "value", "column to read"),
        Param("skip_rows", "int", 0, "rows after the header to skip (NuPIC files have 2)", min=0, max=1000),
        Param("horizon", "int", 1, "how many rows ahead 'target' is", min=0, max=100000),
        Param("normalize", "str", "zscore",
              "zscore or minmax (to [-1, 1]) over the file, online (running z-score of the rows so far, "
              "never later ones), or none", choices=("zscore", "minmax", "online", "none")),
        Param("timestamp_column", "str", "", "column with the row's date and time (empty: none)"),
        Param("timestamp_format", "str", "",
              "strptime format of the timestamps, e.g. %Y-%m-%d %H:%M:%S (empty: ISO 8601)"),
        Param("bad_rows", "str", "error",
              "a row with a missing or bad value or timestamp: error (stop, naming the line) or skip "
              "(drop it; the skipped lines are kept in the node's 'skipped' list)", choices=("error", "skip")),
        Param("gap_factor", "float", 3.0, "with a timestamp column: an interval longer than this many times "
              "the median of the intervals so far is a gap in the sampling ('gap' output)", min=1.0, max=1e6),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"value": (1,), "target": (1,), "time_of_day": (2,), "day_of_week": (2,), "raw": (1,), "gap": (1,)}

    def setup(self, batch, generator):
        p = self.p
        path = resolve_path(p["path"], self.base_dir)
        try:
            values, dates, gaps, notes = self._read(path)
        except DeepHTMError as exc:  # re-raise naming the node and param
            raise GraphError(str(exc), where=node_where(self.node_id, param="path")) from None
        if not values:
            raise GraphError(f"{path}: no usable rows", where=node_where(self.node_id, param="path"))
        if len(values) <= p["horizon"]:
            raise GraphError(f"{path}: only {len(values)} usable rows; predicting {p['horizon']} steps ahead "
                             f"needs at least {p['horizon'] + 1}", where=node_where(self.node_id, param="horizon"))
        self.order_notes = notes.notes(str(path))
        n = len(values)
        x = torch.frombuffer(values, dtype=torch.float64)
        self.raw_mean, self.raw_std = float(x.mean()), float(x.std()) if n > 1 else 0.0
        if p["normalize"] == "zscore":
            x = (x - x.mean()) / x.std().clamp_min(1e-12)
        elif p["normalize"] == "minmax":
            x = 2 * (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12) - 1
        elif p["normalize"] == "online":
            z = RunningZscore()
            x = torch.frombuffer(array("f", (z(v) for v in values)), dtype=torch.float32)
        # float32 copies: the arrays read from the file are dropped when setup returns.
        self.register_buffer("series", x.to(torch.float32, copy=True), persistent=False)
        self.register_buffer("raw_series", torch.frombuffer(values, dtype=torch.float64).float(), persistent=False)
        self.register_buffer("dates", torch.frombuffer(dates, dtype=torch.float32).view(n, 4).clone()
                             if dates is not None else torch.zeros(n, 4), persistent=False)
        self.register_buffer("gaps", torch.frombuffer(gaps, dtype=torch.float32).clone()
                             if gaps is not None else torch.zeros(n), persistent=False)
        # Streams of a batch start at evenly spaced offsets of the series.
        self.register_buffer("offsets", (torch.arange(batch) * len(x)) // batch, persistent=False)

    @classmethod
    def stream_params(cls, path, column, timestamp_column, timestamp_format):
        # Each row once (no look-ahead target), bad rows left out rather than fatal.
        p = {"path": path, "column": column, "timestamp_column": timestamp_column, "horizon": 0,
             "bad_rows": "skip"}
        if timestamp_format is not None:
            p["timestamp_format"] = timestamp_format
        return p

    def data_warnings(self):
        return list(self.order_notes)

    def column_texts(self, columns):
        """The first row's file line, and an iterator over every non-empty row's texts of
        these columns (a tuple per row, in file order): read as they are needed."""
        skip, named = self.p["skip_rows"], [c for c in columns if c]
        rows = iter_rows(resolve_path(self.p["path"], self.base_dir), named, skip) if named else None
        return 2 + skip, rows

    def _read(self, path):
        """The usable rows in one pass over the file, kept as compact arrays (no Python object
        per row): values, date features [4 per row] and gap flags (None without a timestamp
        column), and the timestamp order notes. Bad rows raise or are skipped."""
        p = self.p
        ts_col = p["timestamp_column"]
        columns = [p["column"]] + ([ts_col] if ts_col and ts_col != p["column"] else [])
        at = columns.index(ts_col) if ts_col else None
        first_line = 2 + p["skip_rows"]
        self.skipped: list[tuple[int, str]] = []  # (line, reason) of rows left out
        self.lines = array("I")  # the file line of each usable row (a file has far fewer than 2**32)
        values = array("d")
        dates, gaps = (array("f"), array("f")) if ts_col else (None, None)
        gap_of, notes = SamplingGaps(p["gap_factor"]), OrderNotes()
        for i, row in enumerate(iter_rows(path, columns, p["skip_rows"])):
            line = first_line + i
            try:
                v = parse_value(row[0], p["column"])
                if ts_col:
                    stamp = parse_timestamp(row[at], p["timestamp_format"], ts_col)
            except ValueError as exc:
                if p["bad_rows"] == "error":
                    raise DeepHTMError(f"line {line}: {exc}", file=str(path)) from None
                self.skipped.append((line, str(exc)))
                continue
            values.append(v)
            if ts_col:
                dates.extend(date_row(stamp))
                gaps.append(gap_of(stamp))
                notes.add(stamp, line)
            self.lines.append(line)
        return values, dates, gaps, notes

    def forward(self, ctx):
        n = self.series.shape[0] - self.p["horizon"]
        if ctx.batch == 1:  # one stream: slices are views, much cheaper than gathers
            j = ctx.step % n
            h = j + self.p["horizon"]
            out = {"value": self.series[j:j + 1].view(1, 1), "target": self.series[h:h + 1].view(1, 1)}
            if "time_of_day" in self.used_outputs or "day_of_week" in self.used_outputs:
                out["time_of_day"], out["day_of_week"] = self.dates[j:j + 1, :2], self.dates[j:j + 1, 2:]
            if "raw" in self.used_outputs:
                out["raw"] = self.raw_series[j:j + 1].view(1, 1)
            if "gap" in self.used_outputs:
                out["gap"] = self.gaps[j:j + 1].view(1, 1)
            return out
        return self.outputs_at((self.offsets + ctx.step) % n, self.used_outputs)

    def rows(self, start: int, count: int) -> dict:
        """What forward gives at steps start .. start + count - 1 of a one-stream run, as
        [count, ...] tensors in one go (deephtm detect batches its frozen encoders with it)."""
        n = self.series.shape[0] - self.p["horizon"]
        i = torch.arange(start, start + count, device=self.series.device) % n
        return self.outputs_at(i, {port.name for port in self.outputs})

    def outputs_at(self, i: torch.Tensor, wanted: set) -> dict:
        """The outputs at series positions i, as [len(i), ...] tensors; of the optional
        ones (dates, raw, gap) only those in `wanted`."""
        out = {"value": self.series[i].unsqueeze(1), "target": self.series[i + self.p["horizon"]].unsqueeze(1)}
        if "time_of_day" in wanted or "day_of_week" in wanted:
            d = self.dates[i]
            out["time_of_day"], out["day_of_week"] = d[:, :2], d[:, 2:]
        if "raw" in wanted:
            out["raw"] = self.raw_series[i].unsqueeze(1)
        if "gap" in wanted:
            out["gap"] = self.gaps[i].unsqueeze(1)
        return out


def parse_value(text: str, column: str) -> float:
    if text == "":
        raise ValueError(f"missing value in column '{column}'")
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise ValueError(f"non-numeric value {text!r:.30} in column '{column}'")
    return v


class RunningZscore:
    """z-score of each value against the mean and std of the values up to it (Welford), one
    value per call."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, v: float) -> float:
        self.n += 1
        delta = v - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (v - self.mean)
        std = math.sqrt(self.m2 / self.n)
        z = (v - self.mean) / std if std > 1e-12 * (abs(self.mean) + 1) else 0.0
        return max(-ONLINE_CLAMP, min(ONLINE_CLAMP, z))


def running_zscore(values: list[float]) -> list[float]:
    z = RunningZscore()
    return [z(v) for v in values]


class SamplingGaps:
    """1.0 where the interval before a row exceeds factor x the median of the intervals
    before it (online: later rows never count), else 0.0; one timestamp per call. Irregularly
    sampled series (traffic sensors, say) go quiet at night; the row after such a gap breaks
    the learned sequence."""

    def __init__(self, factor: float):
        self.factor, self.prev = factor, None
        self.seen = array("d")  # the intervals so far, sorted (8 bytes each)

    def __call__(self, stamp) -> float:
        prev, self.prev = self.prev, stamp
        if prev is None:
            return 0.0
        d = (stamp - prev).total_seconds()
        seen = self.seen
        gap = 1.0 if seen and d > self.factor * seen[len(seen) // 2] else 0.0
        bisect.insort(seen, d)
        return gap


def sampling_gaps(stamps, n: int, factor: float) -> torch.Tensor:
    """[n]: SamplingGaps over the first n timestamps (zeros without timestamps)."""
    out = torch.zeros(n)
    if stamps is None:
        return out
    gap_of = SamplingGaps(factor)
    for i in range(n):
        if gap_of(stamps[i]):
            out[i] = 1.0
    return out


def date_row(s) -> tuple[float, float, float, float]:
    """sin and cos of the time of day, sin and cos of the (fractional) day of week."""
    day_frac = (s.hour * 3600 + s.minute * 60 + s.second + s.microsecond * 1e-6) / SECONDS_PER_DAY
    a = 2 * math.pi * day_frac
    b = 2 * math.pi * (s.weekday() + day_frac) / 7
    return math.sin(a), math.cos(a), math.sin(b), math.cos(b)


def date_features(stamps, n: int) -> torch.Tensor:
    """[n, 4]: date_row of each timestamp (zeros without timestamps)."""
    if stamps is None:
        return torch.zeros(n, 4)
    return torch.tensor([date_row(s) for s in stamps], dtype=torch.float32)


class OrderNotes:
    """Counts timestamps that go back in time and repeated ones, keeping the first few lines
    of each: the rows are used in file order, as a stream arrives, but the user should know."""

    SHOWN = 5

    def __init__(self):
        self.prev = None
        self.back, self.same = [0, []], [0, []]  # [count, first lines]

    def add(self, stamp, line: int) -> None:
        prev, self.prev = self.prev, stamp
        if prev is None:
            return
        for kind, hit in ((self.back, stamp < prev), (self.same, stamp == prev)):
            if hit:
                kind[0] += 1
                if len(kind[1]) < self.SHOWN:
                    kind[1].append(line)

    def notes(self, path: str) -> list[str]:
        out = []
        for (count, lines), what in ((self.back, "a timestamp earlier than the row before"),
                                     (self.same, "the same timestamp as the row before")):
            if count:
                shown = ", ".join(map(str, lines[:self.SHOWN])) + (", ..." if count > self.SHOWN else "")
                out.append(f"{path}: {count} row{'s' if count > 1 else ''} with {what} (line "
                           f"{shown}); rows are used in file order")
        return out


def timestamp_order_notes(stamps, lines, path: str) -> list[str]:
    """OrderNotes over a list of timestamps and their file lines."""
    notes = OrderNotes()
    for stamp, line in zip(stamps or [], lines):
        notes.add(stamp, line)
    return notes.notes(path)


NODE = CSVSource

