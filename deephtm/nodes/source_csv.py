"""source.csv: one numeric column of a CSV file, normalized, one row per step, with
optional date encodings (time of day, day of week) from a timestamp column."""
import bisect
import math

import torch

from ..anomaly.csvdata import read_columns, resolve_path
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
            values, stamps = self._read(path)
        except DeepHTMError as exc:  # re-raise naming the node and param
            raise GraphError(str(exc), where=node_where(self.node_id, param="path")) from None
        if not values:
            raise GraphError(f"{path}: no usable rows", where=node_where(self.node_id, param="path"))
        if len(values) <= p["horizon"]:
            raise GraphError(f"{path}: only {len(values)} usable rows; predicting {p['horizon']} steps ahead "
                             f"needs at least {p['horizon'] + 1}", where=node_where(self.node_id, param="horizon"))
        self.raw_values = values  # as read, for reports (e.g. deephtm detect)
        self.timestamps = stamps  # datetimes, or None without a timestamp column
        self.order_notes = timestamp_order_notes(stamps, self.lines, str(path))
        x = torch.tensor(values, dtype=torch.float64)
        self.raw_mean, self.raw_std = float(x.mean()), float(x.std()) if len(values) > 1 else 0.0
        if p["normalize"] == "zscore":
            x = (x - x.mean()) / x.std().clamp_min(1e-12)
        elif p["normalize"] == "minmax":
            x = 2 * (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12) - 1
        elif p["normalize"] == "online":
            x = torch.tensor(running_zscore(values), dtype=torch.float64)
        self.register_buffer("series", x.float(), persistent=False)
        self.register_buffer("raw_series", torch.tensor(values, dtype=torch.float32), persistent=False)
        self.register_buffer("dates", date_features(stamps, len(values)), persistent=False)
        self.register_buffer("gaps", sampling_gaps(stamps, len(values), p["gap_factor"]), persistent=False)
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
        skip, named = self.p["skip_rows"], list(dict.fromkeys(c for c in columns if c))
        texts = read_columns(resolve_path(self.p["path"], self.base_dir), named, skip) if named else {}
        return 2 + skip, texts

    def _read(self, path):
        """Values and timestamps of the usable rows; bad rows raise or are skipped."""
        p = self.p
        ts_col = p["timestamp_column"]
        columns = [p["column"]] + ([ts_col] if ts_col and ts_col != p["column"] else [])
        cols = read_columns(path, columns, p["skip_rows"])
        first_line = 2 + p["skip_rows"]
        self.skipped: list[tuple[int, str]] = []  # (line, reason) of rows left out
        self.lines: list[int] = []  # the file line of each usable row
        values, stamps = [], [] if ts_col else None
        for i, text in enumerate(cols[p["column"]]):
            line = first_line + i
            try:
                v = parse_value(text, p["column"])
                if ts_col:
                    stamp = parse_timestamp(cols[ts_col][i], p["timestamp_format"], ts_col)
            except ValueError as exc:
                if p["bad_rows"] == "error":
                    raise DeepHTMError(f"line {line}: {exc}", file=str(path)) from None
                self.skipped.append((line, str(exc)))
                continue
            values.append(v)
            if ts_col:
                stamps.append(stamp)
            self.lines.append(line)
        return values, stamps

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


def running_zscore(values: list[float]) -> list[float]:
    """z-score of each value against the mean and std of the values up to it (Welford)."""
    out, mean, m2 = [], 0.0, 0.0
    for n, v in enumerate(values, start=1):
        delta = v - mean
        mean += delta / n
        m2 += delta * (v - mean)
        std = math.sqrt(m2 / n)
        z = (v - mean) / std if std > 1e-12 * (abs(mean) + 1) else 0.0
        out.append(max(-ONLINE_CLAMP, min(ONLINE_CLAMP, z)))
    return out


def sampling_gaps(stamps, n: int, factor: float) -> torch.Tensor:
    """[n]: 1 where the interval before a row exceeds factor x the median of the intervals
    before it (online: later rows never count), else 0. Irregularly sampled series (traffic
    sensors, say) go quiet at night; the row after such a gap breaks the learned sequence."""
    out = torch.zeros(n)
    if stamps is None:
        return out
    seen: list[float] = []  # the intervals so far, sorted
    for i in range(1, n):
        d = (stamps[i] - stamps[i - 1]).total_seconds()
        if seen and d > factor * seen[len(seen) // 2]:
            out[i] = 1.0
        bisect.insort(seen, d)
    return out


def date_features(stamps, n: int) -> torch.Tensor:
    """[n, 4]: sin and cos of the time of day, sin and cos of the (fractional) day of week."""
    if stamps is None:
        return torch.zeros(n, 4)
    feats = []
    for s in stamps:
        day_frac = (s.hour * 3600 + s.minute * 60 + s.second + s.microsecond * 1e-6) / SECONDS_PER_DAY
        a = 2 * math.pi * day_frac
        b = 2 * math.pi * (s.weekday() + day_frac) / 7
        feats.append((math.sin(a), math.cos(a), math.sin(b), math.cos(b)))
    return torch.tensor(feats, dtype=torch.float32)



def timestamp_order_notes(stamps, lines, path: str) -> list[str]:
    """One note each for timestamps that go back in time and for repeated ones: the rows are
    used in file order, as a stream arrives, but the user should know."""
    if not stamps:
        return []
    back = [lines[i] for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]]
    same = [lines[i] for i in range(1, len(stamps)) if stamps[i] == stamps[i - 1]]
    notes = []
    for rows, what in ((back, "a timestamp earlier than the row before"), (same, "the same timestamp as the row before")):
        if rows:
            shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
            notes.append(f"{path}: {len(rows)} row{'s' if len(rows) > 1 else ''} with {what} (line "
                         f"{shown}); rows are used in file order")
    return notes


NODE = CSVSource

