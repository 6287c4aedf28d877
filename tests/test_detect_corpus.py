"""`deephtm detect --input-dir DIR --out-dir OUT`: every series of a folder, in a pool of
processes, each exactly as single-file mode scores it, in a layout `deephtm score` reads."""
import json
from pathlib import Path

import pytest

from deephtm.cli import main

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "graphs" / "anomaly.json"


@pytest.fixture
def nab_like(tmp_path):
    """Two short series in NAB's layout: <category>/<file>.csv."""
    src = tmp_path / "data"
    for cat, name, rows in (("realTraffic", "speed_7578.csv", 260), ("artificialWithAnomaly", "art_daily_jumpsup.csv", 220)):
        (src / cat).mkdir(parents=True)
        lines = (ROOT / "data" / "nab" / name).read_text().splitlines()[:rows + 1]
        (src / cat / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_corpus_mode_mirrors_the_folders_and_matches_single_file_mode(nab_like, capsys):
    src, out = nab_like / "data", nab_like / "results"
    before = {p: p.read_bytes() for p in src.rglob("*.csv")}
    assert main(["detect", str(GRAPH), "--input-dir", str(src), "--out-dir", str(out), "--seed", "0",
                 "--workers", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["series"] == 2 and report["failed"] == 0 and report["rows"] == 480
    single = nab_like / "single.csv"
    assert main(["detect", str(GRAPH), "--input", str(src / "realTraffic" / "speed_7578.csv"),
                 "--out", str(single), "--seed", "0"]) == 0
    capsys.readouterr()
    assert (out / "realTraffic" / "speed_7578.csv").read_bytes() == single.read_bytes()
    assert (out / "artificialWithAnomaly" / "art_daily_jumpsup.csv").is_file()
    assert (out / "artificialWithAnomaly" / "art_daily_jumpsup.summary.json").is_file()
    assert {p: p.read_bytes() for p in src.rglob("*.csv")} == before  # inputs untouched
    # The results folder is what `deephtm score` reads in corpus mode.
    windows = {"realTraffic/speed_7578.csv": [], "artificialWithAnomaly/art_daily_jumpsup.csv": []}
    (nab_like / "w.json").write_text(json.dumps(windows))
    assert main(["score", str(out), "--windows", str(nab_like / "w.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["series"] == 2


@pytest.mark.parametrize("where", ["inside", "same", "earlier_run"])
def test_corpus_mode_never_writes_over_inputs_or_an_earlier_run(nab_like, capsys, where):
    src = nab_like / "data"
    out = {"inside": src / "results", "same": src, "earlier_run": nab_like / "old"}[where]
    if where == "earlier_run":
        out.mkdir()
        (out / "kept.csv").write_text("an earlier result\n")
    before = {p: p.read_bytes() for p in nab_like.rglob("*") if p.is_file()}
    assert main(["detect", str(GRAPH), "--input-dir", str(src), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deephtm: error:") and err.count("\n") == 1
    assert {p: p.read_bytes() for p in nab_like.rglob("*") if p.is_file()} == before


def test_detect_needs_exactly_one_input_kind(nab_like, capsys):
    assert main(["detect", str(GRAPH), "--out", str(nab_like / "x.csv")]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["detect", str(GRAPH), "--input-dir", str(nab_like / "data"), "--out", str(nab_like / "x.csv")]) == 2
    assert "--out-dir" in capsys.readouterr().err
