"""NAB's corpus protocol: one threshold per profile, optimized over every series at once.

A detector writes a continuous anomaly_score per row. For each profile (standard, low FP,
low FN) the threshold that maximizes the profile's score summed over the whole corpus is
found by a sweep: rows sorted by score, highest first; lowering the threshold past a score
turns its rows into detections, and the corpus total is updated incrementally (a window's
true positive is its earliest detection, so only an earlier row changes it). The score at
the best threshold is normalized with the null detector (no detections: 0) and the perfect
one (a detection on the first row of every window: 100), raw, null and perfect summed over
the series first. Categories are scored at the corpus threshold, normalized the same way.

The results folder mirrors NAB's data folder: RESULTS_DIR/<category>/<file>.csv for each key
'<category>/<file>.csv' of the windows file.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepHTMError
from .nab_score import PROFILES, check_windows, load_windows, normalize, probation_rows, read_score_values, \
    row_weights, score_detections, window_rows


@dataclass
class Series:
    key: str  # '<category>/<file>.csv', as in the windows file
    values: list[float]  # anomaly_score per row
    windows: list[tuple[int, int]]  # (first row, last row), inclusive

    @functools.cached_property
    def weights(self) -> tuple[list[int], list[float]]:
        """What a detection on each row would be worth (nab_score.row_weights), once per series."""
        return row_weights(len(self.values), self.windows, probation_rows(len(self.values)))

    @property
    def category(self) -> str:
        return self.key.split("/")[0] if "/" in self.key else ""


def load_corpus(results_dir: str | Path, windows_path: str | Path) -> list[Series]:
    """Every series of the windows file, read from RESULTS_DIR/<key>."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DeepHTMError("not a folder of detect outputs", file=str(results_dir))
    corpus = []
    for key, stamped in load_windows(windows_path).items():
        path = results_dir / key
        if Path(key).is_absolute() or ".." in Path(key).parts:
            raise DeepHTMError("a series key must be a relative path such as 'category/file.csv'",
                               file=str(windows_path), where=f"series '{key}'")
        if not path.is_file():
            raise DeepHTMError(f"no scores for series '{key}' (expected {path})", file=str(results_dir))
        stamps, values, _ = read_score_values(path)
        corpus.append(Series(key, values, check_windows(window_rows(stamps, stamped), key)))
    if not corpus:
        raise DeepHTMError("the windows file names no series", file=str(windows_path))
    return corpus


def sweep(corpus: list[Series], profile: str) -> tuple[float, float]:
    """(threshold, raw score) that maximizes the profile's corpus total; threshold is
    math.inf (no detections) when nothing beats the null detector."""
    prof = PROFILES[profile]
    events = []  # (score, series index, row, window or -1, weight)
    windows_total = 0
    for s_i, s in enumerate(corpus):
        window_of, weight = s.weights
        windows_total += len(s.windows)
        for row, (w, wt) in enumerate(zip(window_of, weight)):
            if w != -2:
                events.append((s.values[row], s_i, row, w, wt))
    events.sort(key=lambda e: -e[0])
    earliest: dict[tuple[int, int], tuple[int, float]] = {}  # (series, window) -> (row, weight)
    total = best = prof.fn * windows_total  # the null detector
    best_threshold = math.inf
    i = 0
    while i < len(events):
        score = events[i][0]
        while i < len(events) and events[i][0] == score:  # every row at this score detects at once
            _, s_i, row, w, wt = events[i]
            if w < 0:
                total += prof.fp * wt
            else:
                old = earliest.get((s_i, w))
                if old is None:
                    total += prof.tp * wt - prof.fn
                    earliest[(s_i, w)] = (row, wt)
                elif row < old[0]:
                    total += prof.tp * (wt - old[1])
                    earliest[(s_i, w)] = (row, wt)
            i += 1
        if total > best + 1e-12:
            best, best_threshold = total, score
    return best_threshold, best


def score_corpus(results_dir: str | Path, windows_path: str | Path) -> dict:
    """The corpus report: per profile the optimized threshold and the normalized score,
    overall and per category, with windows hit and false-positive rows at that threshold."""
    corpus = load_corpus(results_dir, windows_path)
    categories = sorted({s.category for s in corpus})
    report: dict = {"series": len(corpus), "windows": sum(len(s.windows) for s in corpus),
                    "rows": sum(len(s.values) for s in corpus), "profiles": {}, "categories": {}}
    for profile in PROFILES:
        threshold, _ = sweep(corpus, profile)
        scored = [score_detections([v >= threshold for v in s.values], s.windows, name=s.key) for s in corpus]
        groups = {"all": scored, **{c: [r for r, s in zip(scored, corpus) if s.category == c] for c in categories}}
        for name, rows in groups.items():
            raw = sum(r.raw[profile] for r in rows)
            null = sum(r.null[profile] for r in rows)
            perfect = sum(r.perfect[profile] for r in rows)
            value = normalize(raw, null, perfect)
            entry = {"score": None if math.isnan(value) else round(value, 2),
                     "windows": sum(r.windows for r in rows), "detected": sum(r.detected for r in rows),
                     "false_positives": sum(r.false_positives for r in rows)}
            if name == "all":
                entry["threshold"] = None if math.isinf(threshold) else threshold
                report["profiles"][profile] = entry
            else:
                report["categories"].setdefault(name, {})[profile] = entry
    short = {"standard": "standard", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}
    for profile, name in short.items():
        report[name] = report["profiles"][profile]["score"]
    return report


def format_table(report: dict) -> str:
    """The report as a text table: one row per category and one for the corpus."""
    profiles = list(PROFILES)
    head = f"{'category':<24}{'standard':>10}{'low FP':>10}{'low FN':>10}   windows hit (std)   FP rows (std)"
    lines = [head, "-" * len(head)]
    rows = [(c, report["categories"][c]) for c in sorted(report["categories"])]
    rows.append(("all", report["profiles"]))
    for name, entry in rows:
        scores = "".join(f"{_show(entry[p]['score']):>10}" for p in profiles)
        std = entry["standard"]
        lines.append(f"{name:<24}{scores}   {std['detected']:>4} / {std['windows']:<4}        {std['false_positives']:>6}")
    thresholds = ", ".join(f"{p} {_show(report['profiles'][p]['threshold'], 4)}" for p in profiles)
    lines.append(f"thresholds: {thresholds}")
    return "\n".join(lines)


def _show(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
