"""`deephtm detect` streams: what it holds does not grow with the rows, corpus mode writes
exactly what single-file mode writes (bad rows included), and a file that changes while its
texts are read again for the scores is an error, not a short scores file."""
import csv
import gc
import math
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from deephtm.anomaly import detect as detect_module
from deephtm.cli import main
from deephtm.errors import DeepHTMError

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "graphs" / "anomaly.json"


def write_series(path: Path, n: int, bad: dict | None = None) -> Path:
    """n rows every 5 minutes of a daily-looking wave; bad maps a row to replacement cells."""
    start = datetime(2024, 1, 1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i in range(n):
            row = [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"),
                   f"{10 + 3 * math.sin(2 * math.pi * i / 288) + 0.1 * math.sin(i):.4f}"]
            w.writerow((bad or {}).get(i, row))
    return path


def held_while_streaming(tmp_path: Path, n: int, monkeypatch) -> int:
    """The most Python memory (bytes, over what was held before) that detect holds while it
    writes the scores of an n-row series, sampled each time it writes a chunk."""
    path = write_series(tmp_path / f"s{n}.csv", n)
    held = []
    drain = detect_module.ScoreWriter.drain

    def sampled(self, result):
        drain(self, result)
        gc.collect()  # what is held, not garbage waiting for the collector
        held.append(tracemalloc.get_traced_memory()[0])

    monkeypatch.setattr(detect_module.ScoreWriter, "drain", sampled)
    gc.collect()  # the previous run's model, not this one's
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        detect_module.detect(str(GRAPH), str(path), str(tmp_path / f"o{n}.csv"))
    finally:
        tracemalloc.stop()
    assert len(held) >= n // 256  # sampled at every chunk
    return max(held) - before


def test_memory_held_while_streaming_does_not_grow_with_the_rows(tmp_path, monkeypatch):
    detect_module.detect(str(GRAPH), str(write_series(tmp_path / "warm.csv", 200)), str(tmp_path / "w.csv"))
    short = held_while_streaming(tmp_path, 1000, monkeypatch)
    long = held_while_streaming(tmp_path, 3000, monkeypatch)
    # Rows are written as they are scored; what grows is the source's file line of each row
    # (4 bytes) and, up to its bounded history (8,640 rows), the likelihood's window of
    # averages (a float each): about 40 bytes a row. Lists of every row's texts and values cost 220.
    assert (long - short) / 2000 < 100, (short, long)


def test_corpus_mode_writes_what_single_file_mode_writes(tmp_path, capsys):
    src = tmp_path / "data"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    bad = {10: ("2024-01-01 00:50:00", "n/a"), 300: ("yesterday", "1.0")}
    write_series(src / "a" / "with_bad_rows.csv", 420, bad=bad)
    write_series(src / "b" / "clean.csv", 300)
    out = tmp_path / "results"
    assert main(["detect", str(GRAPH), "--input-dir", str(src), "--out-dir", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    for rel in ("a/with_bad_rows.csv", "b/clean.csv"):
        single = tmp_path / rel.replace("/", "_")
        assert main(["detect", str(GRAPH), "--input", str(src / rel), "--out", str(single)]) == 0
        capsys.readouterr()
        assert (out / rel).read_bytes() == single.read_bytes(), rel
    rows = list(csv.DictReader(open(out / "a" / "with_bad_rows.csv")))
    assert len(rows) == 420 and rows[10]["value"] == "" and rows[300]["timestamp"] == "yesterday"
    assert rows[11]["value"] != "" and float(rows[11]["raw_anomaly"]) >= 0.0


def test_a_file_that_changes_while_it_is_scored_is_an_error(tmp_path, capsys):
    path = write_series(tmp_path / "s.csv", 300)
    det = detect_module.Detector(str(GRAPH), str(path))
    write_series(path, 200)  # the timestamps and values written beside the scores are read again
    with pytest.raises(DeepHTMError, match="changed while it was scored"):
        det.run()
    det = detect_module.Detector(str(GRAPH), str(path))
    write_series(path, 200, bad={150: ("2024-01-01 12:30:00", "n/a")})
    with pytest.raises(DeepHTMError, match="line 152: the file changed while it was scored"):
        det.run()
