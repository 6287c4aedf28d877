"""NAB's corpus protocol (`deephtm score RESULTS_DIR --windows W.json`): thresholds optimized
per profile over every series, checked against figures worked out by hand and against a
brute-force search over every threshold."""
import json
import math
import random
from datetime import datetime, timedelta

import pytest

from deephtm.anomaly.nab_corpus import Series, score_corpus, sweep
from deephtm.anomaly.nab_score import PROFILES, score_detections
from deephtm.cli import main

T0 = datetime(2020, 1, 1)


def sigma(y):
    return 2 / (1 + math.exp(5 * y)) - 1


def write_series(folder, key, scores):
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value,anomaly_score"]
    lines += [f"{T0 + timedelta(minutes=i)},{i},{s}" for i, s in enumerate(scores)]
    path.write_text("\n".join(lines) + "\n")


def stamp(i):
    return str(T0 + timedelta(minutes=i))


@pytest.fixture
def corpus_dir(tmp_path):
    """Two series of 20 rows (probation: 3 rows). c1/a.csv has one window, rows 10-14, a
    false positive before it (row 5, 0.6), its detection (row 12, 0.8) and a weak false
    positive after it (row 18, 0.3); c2/b.csv has no window and one false positive (row 8, 0.7)."""
    a = [0.0] * 20
    a[5], a[12], a[18] = 0.6, 0.8, 0.3
    b = [0.0] * 20
    b[8] = 0.7
    write_series(tmp_path / "results", "c1/a.csv", a)
    write_series(tmp_path / "results", "c2/b.csv", b)
    windows = {"c1/a.csv": [[stamp(10), stamp(14)]], "c2/b.csv": []}
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    return tmp_path


def test_corpus_scores_match_the_hand_computed_figures(corpus_dir):
    report = score_corpus(corpus_dir / "results", corpus_dir / "windows.json")
    tp = sigma((12 - 14 - 1) / 5) / sigma(-1)  # the detection at row 12 of window 10-14
    # Every profile's best threshold is 0.8: only the true positive. Lowering it to 0.7 or
    # 0.6 adds full-cost false positives; to 0.3 a cheap one after the window; to 0 every row.
    for profile, short in (("standard", "standard"), ("reward_low_FP_rate", "low_fp"),
                           ("reward_low_FN_rate", "low_fn")):
        p = PROFILES[profile]
        expected = 100 * (p.tp * tp - p.fn) / (p.tp - p.fn)
        assert report["profiles"][profile]["threshold"] == 0.8
        assert report[short] == pytest.approx(expected, abs=0.01)
        assert report["categories"]["c1"][profile]["score"] == pytest.approx(expected, abs=0.01)
        assert report["categories"]["c2"][profile]["score"] is None  # no windows: undefined
    assert report["standard"] == pytest.approx(95.87, abs=0.01)
    assert report["low_fn"] == pytest.approx(97.25, abs=0.01)
    assert report["profiles"]["standard"]["detected"] == 1
    assert report["profiles"]["standard"]["false_positives"] == 0


def test_a_cheap_false_positive_is_worth_an_earlier_detection():
    """Row 11 (0.5) is an earlier, better detection of window 10-14 than row 13 (0.9), but a
    threshold low enough to take it also takes row 5 (0.55), a full-cost false positive:
    the sweep keeps whichever total is higher under each profile's weights."""
    values = [0.0] * 20
    values[5], values[11], values[13] = 0.55, 0.5, 0.9
    series = [Series("c/a.csv", values, [(10, 14)])]
    late, early = sigma((13 - 15) / 5) / sigma(-1), sigma((11 - 15) / 5) / sigma(-1)
    for profile in PROFILES:
        p = PROFILES[profile]
        at_09 = p.tp * late
        at_05 = p.tp * early + p.fp * 1.0  # row 5 is a false positive with no window before it
        threshold, raw = sweep(series, profile)
        assert raw == pytest.approx(max(at_09, at_05))
        assert threshold == (0.9 if at_09 >= at_05 else 0.5)


def brute_force(corpus, profile):
    """The best corpus raw score over every distinct threshold, scoring each from scratch."""
    candidates = sorted({v for s in corpus for v in s.values}, reverse=True)
    best = sum(PROFILES[profile].fn * len(s.windows) for s in corpus)
    for t in candidates:
        total = sum(score_detections([v >= t for v in s.values], s.windows).raw[profile] for s in corpus)
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_sweep_finds_the_brute_force_optimum(seed):
    rng = random.Random(seed)
    corpus = []
    for k in range(rng.randint(1, 4)):
        n = rng.randint(30, 120)
        windows, row = [], rng.randint(5, 20)
        while row < n - 5 and rng.random() < 0.7:
            length = rng.randint(2, 10)
            windows.append((row, min(n - 1, row + length)))
            row += length + rng.randint(3, 30)
        values = [round(rng.random() ** 3, 2) for _ in range(n)]  # ties on purpose
        corpus.append(Series(f"c{k % 2}/s{k}.csv", values, windows))
    for profile in PROFILES:
        _, raw = sweep(corpus, profile)
        assert raw == pytest.approx(brute_force(corpus, profile))


def test_cli_corpus_mode_prints_a_table_and_json(corpus_dir, capsys):
    args = ["score", str(corpus_dir / "results"), "--windows", str(corpus_dir / "windows.json")]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "c1" in table and "c2" in table and "95.9" in table and "thresholds:" in table
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"standard", "low_fp", "low_fn", "categories", "profiles"}
    assert report["standard"] == pytest.approx(95.87, abs=0.01)


def test_cli_corpus_mode_names_a_missing_series(corpus_dir, capsys):
    (corpus_dir / "results" / "c2" / "b.csv").unlink()
    assert main(["score", str(corpus_dir / "results"), "--windows", str(corpus_dir / "windows.json")]) == 2
    err = capsys.readouterr().err
    assert "no scores for series 'c2/b.csv'" in err and err.count("\n") == 1


@pytest.mark.parametrize("bad", ["nan", "-5", "1.5"])
def test_score_refuses_a_threshold_outside_0_1(corpus_dir, capsys, bad):
    path = corpus_dir / "results" / "c1" / "a.csv"
    assert main(["score", str(path), "--windows", str(corpus_dir / "windows.json"), "--threshold", bad]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_score_json_has_no_nan_for_a_series_without_windows(corpus_dir, capsys):
    path = corpus_dir / "results" / "c2" / "b.csv"
    assert main(["score", str(path), "--windows", str(corpus_dir / "windows.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # strict JSON: NaN would not parse back as null
    assert report["series"][0]["scores"]["standard"] is None


def test_score_refuses_a_reversed_window_and_deep_json(corpus_dir, capsys):
    path = corpus_dir / "results" / "c1" / "a.csv"
    (corpus_dir / "rev.json").write_text(json.dumps({"c1/a.csv": [[stamp(14), stamp(10)]]}))
    assert main(["score", str(path), "--windows", str(corpus_dir / "rev.json")]) == 2
    assert "ends before it starts" in capsys.readouterr().err
    (corpus_dir / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["score", str(path), "--windows", str(corpus_dir / "deep.json")]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and err.count("\n") == 1


def test_score_refuses_nan_scores(corpus_dir, capsys):
    path = corpus_dir / "results" / "c1" / "a.csv"
    path.write_text(path.read_text().replace(",0.8\n", ",nan\n"))
    assert main(["score", str(path), "--windows", str(corpus_dir / "windows.json"), "--threshold", "0.5"]) == 2
    assert "line 14: anomaly_score 'nan' is not a finite number" in capsys.readouterr().err
