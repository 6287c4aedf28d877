"""NAB-style scoring of anomaly detections, written from Lavin & Ahmad (2015),
"Evaluating Real-time Anomaly Detection Algorithms - the Numenta Anomaly Benchmark".

- Each labelled anomaly has a window of rows. Only the first detection inside a window
  counts; it earns A_TP times a scaled sigmoid of its position, so an early detection is
  worth more: sigma(y) = 2 / (1 + exp(5 y)) - 1, with y = -1 at the window's first row and
  y -> 0 at its last row; sigma is divided by sigma(-1) so that a detection on the first
  row earns exactly A_TP. Later detections in the same window are ignored.
- A detection outside every window is a false positive costing |A_FP| times
  -sigma(y), where y is its distance after the preceding window's end in units of that
  window's length: a detection just after a window costs little, one far after it costs
  almost |A_FP|. With no window before it, it costs the full |A_FP|.
- A window with no detection costs A_FN.
- Detections in the probationary period (the first 15% of the rows, at most 750) are
  not scored: the detector is still learning there.
- Scores are normalized so that the null detector (no detections) scores 0 and the
  perfect detector (one detection on the first row of every window) scores 100. Over
  several series, raw, null and perfect scores are summed before normalizing.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import DeepHTMError
from .csvdata import bounded_lines, check_regular_file
from .timestamps import parse_timestamp


@dataclass(frozen=True)
class Profile:
    tp: float
    fp: float  # negative: a cost
    fn: float  # negative: a cost


PROFILES = {
    "standard": Profile(tp=1.0, fp=-0.11, fn=-1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=-0.22, fn=-1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=-0.11, fn=-2.0),
}
PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750


def scaled_sigmoid(y: float) -> float:
    """2 / (1 + e^(5y)) - 1: about +1 well before a window's end, 0 at it, -> -1 after it."""
    if y > 100:  # exp would overflow; the limit is -1
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_rows(n: int) -> int:
    return min(int(math.floor(PROBATION_FRACTION * n)), PROBATION_MAX_ROWS)


@dataclass
class SeriesScore:
    name: str
    rows: int
    windows: int
    detected: int = 0
    false_positives: int = 0
    detection_rows: list[int] = field(default_factory=list)  # first detection of each detected window
    false_positive_rows: list[int] = field(default_factory=list)
    raw: dict[str, float] = field(default_factory=dict)
    null: dict[str, float] = field(default_factory=dict)
    perfect: dict[str, float] = field(default_factory=dict)

    def normalized(self) -> dict[str, float]:
        return {k: normalize(self.raw[k], self.null[k], self.perfect[k]) for k in self.raw}

    def to_dict(self) -> dict:
        return {"series": self.name, "rows": self.rows, "windows": self.windows, "detected": self.detected,
                "missed": self.windows - self.detected, "false_positives": self.false_positives,
                "scores": {k: _rounded(v) for k, v in self.normalized().items()}}


def _rounded(v: float) -> float | None:
    """A score for reports: None where it is undefined (a series with no windows)."""
    return None if math.isnan(v) else round(v, 2)


def normalize(raw: float, null: float, perfect: float) -> float:
    if perfect == null:  # no windows: the scale is undefined
        return math.nan
    return 100.0 * (raw - null) / (perfect - null)


def row_weights(n: int, windows: list[tuple[int, int]], probation: int) -> tuple[list[int], list[float]]:
    """What a detection on each row would be worth: (window, weight) per row. Rows in a
    window: its index and the sigmoid weight of a first detection there (1 on the window's
    first row). Rows outside every window: -1 and the false-positive cost weight in [0, 1].
    Rows in the probationary period: -2 and 0 (never scored)."""
    window_of, weight = [-2] * n, [0.0] * n
    w = 0  # index of the first window not entirely before row i
    for i in range(probation, n):
        while w < len(windows) and windows[w][1] < i:
            w += 1
        if w < len(windows) and windows[w][0] <= i:
            start, end = windows[w]
            y = (i - end - 1) / (end - start + 1)  # -1 at the first row, just below 0 at the last
            window_of[i], weight[i] = w, scaled_sigmoid(y) / scaled_sigmoid(-1.0)
        elif w == 0:
            window_of[i], weight[i] = -1, 1.0  # no window before it: the full cost
        else:
            start, end = windows[w - 1]
            window_of[i], weight[i] = -1, -scaled_sigmoid((i - end) / (end - start + 1))
    return window_of, weight


def check_windows(windows: list[tuple[int, int]], name: str = "") -> list[tuple[int, int]]:
    windows = sorted(windows)
    for (a, b), nxt in zip(windows, windows[1:] + [None]):
        if a > b:
            raise DeepHTMError(f"window [{a}, {b}] ends before it starts", where=f"series '{name}'")
        if nxt is not None and nxt[0] <= b:
            raise DeepHTMError(f"windows [{a}, {b}] and [{nxt[0]}, {nxt[1]}] overlap", where=f"series '{name}'")
    return windows


def score_detections(detections: list[bool], windows: list[tuple[int, int]], name: str = "",
                     probation: int | None = None) -> SeriesScore:
    """detections: one bool per row. windows: (first row, last row) pairs, inclusive."""
    n = len(detections)
    probation = probation_rows(n) if probation is None else probation
    windows = check_windows(windows, name)
    result = SeriesScore(name=name, rows=n, windows=len(windows))
    window_of, weight = row_weights(n, windows, probation)
    tp_score: list[float] = []  # sigmoid weight of each detected window's first detection
    fp_weight: list[float] = []  # cost weight in [0, 1] of each false positive
    first_hit: dict[int, int] = {}
    for i, hit in enumerate(detections):
        w = window_of[i]
        if not hit or w == -2:
            continue
        if w >= 0:
            if w not in first_hit:
                first_hit[w] = i
                tp_score.append(weight[i])
            continue
        result.false_positive_rows.append(i)
        fp_weight.append(weight[i])
    result.detected = len(first_hit)
    result.detection_rows = [first_hit[k] for k in sorted(first_hit)]
    result.false_positives = len(result.false_positive_rows)
    missed = len(windows) - len(first_hit)
    for pname, prof in PROFILES.items():
        result.raw[pname] = prof.tp * sum(tp_score) + prof.fp * sum(fp_weight) + prof.fn * missed
        result.null[pname] = prof.fn * len(windows)
        result.perfect[pname] = prof.tp * len(windows)
    return result


def combined(scores: list[SeriesScore]) -> dict[str, float]:
    """Normalized profile scores over several series (raw, null, perfect summed first)."""
    return {p: normalize(sum(s.raw[p] for s in scores), sum(s.null[p] for s in scores),
                         sum(s.perfect[p] for s in scores)) for p in PROFILES}


# ---- files -------------------------------------------------------------------------

def window_rows(stamps: list[datetime], windows: list[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """Row ranges (inclusive) of the rows whose timestamps fall in each window."""
    out = []
    for start, end in windows:
        rows = [i for i, t in enumerate(stamps) if start <= t <= end]
        if rows:
            out.append((rows[0], rows[-1]))
    return out


def load_windows(path: str | Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """NAB's windows file: {"dir/series.csv": [[start, end], ...], ...}."""
    path = str(path)
    check_regular_file(path, max_bytes=64 * 1024 * 1024)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeepHTMError(exc.strerror or str(exc), file=path) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeepHTMError(f"not valid JSON: {exc}", file=path) from None
    except RecursionError:
        raise DeepHTMError("not a windows file: JSON nested too deeply", file=path) from None
    if not isinstance(data, dict):
        raise DeepHTMError('expected an object {"series.csv": [[start, end], ...]}', file=path)
    out = {}
    for key, pairs in data.items():
        if not isinstance(pairs, list) or any(not isinstance(p, list) or len(p) != 2 for p in pairs):
            raise DeepHTMError("each window must be a [start, end] pair", file=path, where=f"series '{key}'")
        try:
            out[key] = [(parse_timestamp(str(a)), parse_timestamp(str(b))) for a, b in pairs]
        except ValueError as exc:
            raise DeepHTMError(str(exc), file=path, where=f"series '{key}'") from None
        for a, b in out[key]:
            if a > b:
                raise DeepHTMError(f"window [{a}, {b}] ends before it starts", file=path, where=f"series '{key}'")
    return out


def match_series(scores_path: str | Path, keys: list[str]) -> str:
    """The windows key for a scores file: its name is the series' name, optionally followed
    by '.', '_' or '-' and more (nyc_taxi.csv, nyc_taxi.scores.csv, nyc_taxi_scores.csv)."""
    stem = Path(scores_path).name
    stem = stem[:-4] if stem.lower().endswith(".csv") else stem
    best = None
    for key in keys:
        k = Path(key).name
        k = k[:-4] if k.lower().endswith(".csv") else k
        if stem == k or (stem.startswith(k) and stem[len(k)] in "._-"):
            if best is None or len(k) > len(Path(best).name):
                best = key
    if best is None:
        raise DeepHTMError(f"no series in the windows file matches this file's name "
                           f"(series: {', '.join(keys)})", file=str(scores_path))
    return best


def read_score_values(path: str | Path, columns: tuple[str, ...] = ("anomaly_score",)
                      ) -> tuple[list[datetime], list[float], str]:
    """Timestamps and one numeric column of a `deephtm detect` output (or any CSV with a
    timestamp column): the first of `columns` the file has (the last one is required), and
    its name. Rows without a valid timestamp (rows detect skipped) are left out: they cannot
    be placed in time. An empty, non-numeric or NaN cell is an error."""
    path = str(path)
    check_regular_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(bounded_lines(f, path)))
    except OSError as exc:
        raise DeepHTMError(exc.strerror or str(exc), file=path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DeepHTMError(f"not a CSV text file ({exc})", file=path) from None
    if not rows:
        raise DeepHTMError("empty file", file=path)
    header = [h.strip() for h in rows[0]]
    column = next((c for c in columns if c in header), columns[-1])
    for col in ("timestamp", column):
        if col not in header:
            raise DeepHTMError(f"no column '{col}' (columns: {', '.join(header)})", file=path)
    ts_i, v_i = header.index("timestamp"), header.index(column)
    stamps, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            stamp = parse_timestamp(row[ts_i] if ts_i < len(row) else "")
        except ValueError:
            continue
        cell = row[v_i] if v_i < len(row) else ""
        try:
            v = float(cell)
        except ValueError:
            raise DeepHTMError(f"line {line}: non-numeric {column} {cell!r:.30}", file=path) from None
        if not math.isfinite(v):
            raise DeepHTMError(f"line {line}: {column} {cell!r:.30} is not a finite number", file=path)
        stamps.append(stamp)
        values.append(v)
    return stamps, values, column


def read_scores(path: str | Path, threshold: float | None = None,
                quiet: int = 0) -> tuple[list[datetime], list[bool]]:
    """Timestamps and detections of a `deephtm detect` output. Detections: the 'flagged'
    column when present and no threshold is given, else anomaly_score >= threshold (default
    0.5), and with `quiet` only where that many rows in a row below it come just before (one
    detection per excursion, as anomaly.likelihood's 'quiet' param)."""
    wanted = ("flagged", "anomaly_score") if threshold is None else ("anomaly_score",)
    stamps, values, column = read_score_values(path, wanted)
    flagged = column == "flagged"
    cut = 0.5 if threshold is None else threshold
    hits = [v > 0.5 if flagged else v >= cut for v in values]
    if quiet and not flagged:
        hits = first_of_each_excursion(hits, quiet)
    return stamps, hits


def first_of_each_excursion(high: list[bool], quiet: int) -> list[bool]:
    """Keep a high row only when the `quiet` rows just before it were all low."""
    kept, below = [], quiet  # the stream starts quiet, as the detector's does
    for h in high:
        kept.append(h and below >= quiet)
        below = 0 if h else below + 1
    return kept


def score_files(paths: list[str], windows_path: str, threshold: float | None = None, quiet: int = 0) -> dict:
    windows = load_windows(windows_path)
    results = []
    for path in paths:
        key = match_series(path, list(windows))
        stamps, hits = read_scores(path, threshold, quiet)
        results.append(score_detections(hits, window_rows(stamps, windows[key]), name=key))
    return {"series": [r.to_dict() for r in results],
            "total": {k: _rounded(v) for k, v in combined(results).items()},
            "_results": results}
