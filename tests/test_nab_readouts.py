"""benchmarks/nab_readouts.py: the raw anomalies it reads from a TM's prediction, and that the
readout at margin 0 is the raw anomaly the TM itself reports in a real detect run."""
import csv
import json
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import nab_readouts  # noqa: E402


def test_each_definition_reads_the_margins_as_documented():
    defs = nab_readouts.definitions(temperature=0.1)
    # 4 active columns, 2 of them predicted (margin > 0), 5 columns predicted in all
    row = {"margins": [0.3, -0.05, 0.01, -0.4], "predicted": 5, "active": 4}
    assert defs["margin_0"](row) == 1 - 2 / 4
    assert defs["margin_-0.1"](row) == 1 - 3 / 4  # a nearly predicted column counts
    assert defs["margin_0.1"](row) == 1 - 1 / 4
    assert defs["margin_0.5"](row) == 1.0
    assert math.isclose(defs["dice"](row), 1 - 2 * 2 / (5 + 4))
    assert math.isclose(defs["false_share"](row), 3 / 5)
    expected = 1 - sum(1 / (1 + math.exp(-m / 0.1)) for m in row["margins"]) / 4
    assert math.isclose(defs["graded"](row), expected)
    # nothing predicted yet (the first row): every definition reads a full anomaly
    first = {"margins": [], "predicted": 0, "active": 4}
    assert all(f(first) == 1.0 for f in defs.values())


def test_the_margin_0_readout_is_the_tms_raw_anomaly(tmp_path):
    data = tmp_path / "data" / "realTraffic"
    data.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "nab" / "speed_7578.csv", data)
    out = tmp_path / "out"
    nab_readouts.run_seed(str(ROOT / "graphs" / "anomaly.json"), tmp_path / "data", out, seed=0)
    scores = out / "realTraffic" / "speed_7578.csv"
    with open(scores, newline="", encoding="utf-8") as f:
        raw = [float(r["raw_anomaly"]) for r in csv.DictReader(f) if r["value"] != ""]
    notes = json.loads(scores.with_suffix(".readouts.json").read_text(encoding="utf-8"))
    read = [nab_readouts.definitions(0.1)["margin_0"](r) for r in notes]
    assert len(read) == len(raw) == 1127  # every row of the file was seen
    assert max(abs(a - b) for a, b in zip(read, raw)) < 1e-6
    assert len({round(v, 3) for v in raw}) > 5  # the TM learned: not one constant anomaly
