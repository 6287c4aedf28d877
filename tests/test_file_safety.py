"""Bad inputs and outputs of detect and score: one line, exit 2, nothing on disk changed;
inputs that are not regular files are refused before they are opened."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deephtm.atomic import atomic_write_bytes
from deephtm.cli import main

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "graphs" / "anomaly.json"


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.fixture
def series(tmp_path):
    lines = (ROOT / "data" / "nab" / "speed_7578.csv").read_text().splitlines()[:120]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", ["out_is_input", "summary_is_input", "out_is_graph", "out_is_summary"])
def test_detect_never_writes_over_its_inputs(tmp_path, series, capsys, case):
    graph = tmp_path / "g.json"
    graph.write_bytes(GRAPH.read_bytes())
    args = {"out_is_input": ["--out", series],
            "summary_is_input": ["--out", tmp_path / "o.csv", "--summary", series],
            "out_is_graph": ["--out", graph],
            "out_is_summary": ["--out", tmp_path / "o.csv", "--summary", tmp_path / "o.csv"]}[case]
    before = snapshot(tmp_path)
    assert main(["detect", str(graph), "--input", str(series), *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deephtm: error: --") and err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_detect_checks_its_output_before_the_work(tmp_path, series, capsys):
    (tmp_path / "good.csv").write_text("x\n")
    assert main(["detect", str(GRAPH), "--input", str(series), "--out", str(tmp_path / "good.csv" / "x.csv")]) == 2
    assert "--out: " in (err := capsys.readouterr().err) and "is a file, not a folder" in err
    assert main(["detect", str(GRAPH), "--input", str(series), "--out", str(tmp_path)]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_devices_and_fifos_are_refused_not_read(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for source in ("/dev/zero", str(fifo)):
        if not Path(source).exists():
            continue
        proc = subprocess.run([sys.executable, "-m", "deephtm", "detect", str(GRAPH), "--input", source,
                               "--out", str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "not a regular file" in proc.stderr and proc.stderr.count("\n") == 1
        proc = subprocess.run([sys.executable, "-m", "deephtm", "validate", source],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "not a regular file" in proc.stderr


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path, series, capsys):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + series.read_bytes())
    assert main(["detect", str(GRAPH), "--input", str(bom), "--out", str(tmp_path / "a.csv"), "--seed", "0"]) == 0
    assert main(["detect", str(GRAPH), "--input", str(series), "--out", str(tmp_path / "b.csv"), "--seed", "0"]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_an_overlong_csv_line_is_refused_without_reading_it_all(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    path.write_text("timestamp,value\n2020-01-01 00:00:00," + ",".join(["1"] * 2_000_000) + "\n")
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(tmp_path / "o.csv")]) == 2
    assert "line 2: longer than" in capsys.readouterr().err


def test_temp_files_of_killed_writers_are_cleaned_up(tmp_path):
    target = tmp_path / "model.safetensors"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".model.safetensors.{dead.pid}.0badc0de.tmp"
    stale.write_bytes(b"left by a killed write")
    live = tmp_path / f".model.safetensors.{os.getppid()}.0badc0de.tmp"  # a live writer's
    live.write_bytes(b"being written")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and not stale.exists() and live.exists()


def test_timestamps_with_offsets_are_converted_not_dropped():
    from deephtm.anomaly.timestamps import parse_timestamp

    # 10:00 at +02:00 and 09:30 at +01:00 are 08:00 and 08:30 UTC: order kept, not reversed.
    a, b = parse_timestamp("2020-01-01T10:00:00+02:00"), parse_timestamp("2020-01-01T09:30:00+01:00")
    assert (a.hour, a.minute, b.hour, b.minute) == (8, 0, 8, 30) and a < b
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp("0001-01-01T00:00:00+05:00")


def test_the_size_budget_counts_state_kept_per_stream(tmp_path, capsys):
    """decoder.rls keeps a P matrix per stream: 4,001² values at batch 1 fit, 32 of them do not,
    and the refusal comes before anything is allocated."""
    d = {"format_version": 1, "name": "big", "nodes": [
        {"id": "sine", "type": "source.sine", "params": {}},
        {"id": "enc", "type": "encoder.mlp", "params": {"hidden": 4000, "layers": 1}},
        {"id": "rls", "type": "decoder.rls", "params": {}},
        {"id": "loss", "type": "loss.mse", "params": {}}],
        "edges": [{"from": "sine.value", "to": "enc.x"}, {"from": "enc.y", "to": "rls.x"},
                  {"from": "sine.value", "to": "rls.observed"}, {"from": "rls.y", "to": "loss.pred"},
                  {"from": "sine.target", "to": "loss.target"}],
        "training": {"batch_size": 1}}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(d))
    assert main(["validate", str(path)]) == 0
    assert "16,028,004 values" in capsys.readouterr().out
    start = peak_rss_mb()
    assert main(["train", str(path), "--batch-size", "32", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "node 'rls': the graph would allocate over" in err and "batch_size 32" in err
    assert peak_rss_mb() - start < 200 and not (tmp_path / "run").exists()


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_detect_writes_the_value_column_exactly_as_read(tmp_path):
    texts = ["1022294.6", "0.000123456789", "7", "-3.50", "1e3"] * 30
    path = tmp_path / "v.csv"
    path.write_text("timestamp,value\n" + "".join(f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{v}\n"
                                                   for i, v in enumerate(texts)))
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(tmp_path / "o.csv")]) == 0
    rows = (tmp_path / "o.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == texts


def test_detect_streams_its_rows_to_a_temp_file_and_never_leaves_a_partial_output(tmp_path):
    """Rows appear (in a temp file beside --out) while detect runs; --out itself appears only
    whole, at the end."""
    import time

    lines = (ROOT / "data" / "nab" / "speed_7578.csv").read_text().splitlines()
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.csv"
    proc = subprocess.Popen([sys.executable, "-m", "deephtm", "detect", str(GRAPH), "--input", str(path),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, deadline = set(), time.time() + 300  # the temp file's line counts, as polled
    while proc.poll() is None and time.time() < deadline:
        temps = list(tmp_path.glob(".o.csv.*.tmp"))
        if temps:
            try:
                seen.add(temps[0].read_text().count("\n"))
            except OSError:
                pass
            assert not out.exists()  # never a partial file at the final path
        time.sleep(0.05)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    # some rows were written before the last one was scored (the poll may also catch the
    # finished temp file in the moment before it is renamed)
    assert any(1 < n < len(lines) for n in seen), sorted(seen)
    assert out.read_text().count("\n") == len(lines) and not list(tmp_path.glob("*.tmp"))


def test_timestamps_out_of_order_or_repeated_are_said_once(tmp_path, capsys):
    rows = ["2020-01-01 00:05:00,1", "2020-01-01 00:00:00,2", "2020-01-01 00:00:00,3"]
    rows += [f"2020-01-01 01:{i:02d}:00,{i}" for i in range(60)]
    path = tmp_path / "o.csv"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(tmp_path / "s.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"deephtm: warning: {path}: 1 row with a timestamp earlier than the row before (line 3); "
                   "rows are used in file order",
                   f"deephtm: warning: {path}: 1 row with the same timestamp as the row before (line 4); "
                   "rows are used in file order"]


def test_an_input_without_rows_says_so_plainly(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("timestamp,value\n")
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"{path}: no usable rows\n") and "horizon" not in err


def test_detect_shows_progress_over_rows_when_asked(tmp_path, series, capsys):
    from deephtm.anomaly.detect import detect

    detect(str(GRAPH), str(series), str(tmp_path / "o.csv"), progress=True)
    rows = len(series.read_text().splitlines()) - 1
    assert f"{rows}/{rows}" in capsys.readouterr().err  # the bar over rows reached the end
