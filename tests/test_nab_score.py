"""NAB scoring on hand-made windows and detections, with values worked out by hand.

sigma(y) = 2 / (1 + e^(5y)) - 1 equals tanh(-5y / 2); a window of rows 10..19 (10 rows)
puts its first row at y = -1 and its last row at y = -0.1."""
import json
import math

import pytest

from deephtm.cli import main
from deephtm.anomaly.nab_score import PROFILES, combined, scaled_sigmoid, score_detections

WINDOW = [(10, 19)]
N = 100


def hits(*rows, n=N):
    return [i in rows for i in range(n)]


def score(rows, windows=WINDOW, **kw):
    return score_detections(hits(*rows), windows, probation=kw.pop("probation", 0), **kw)


def test_scaled_sigmoid_matches_tanh_form():
    for y in (-1.0, -0.1, 0.0, 0.5, 3.1):
        assert scaled_sigmoid(y) == pytest.approx(math.tanh(-2.5 * y), abs=1e-12)


def test_detection_at_window_start_is_perfect():
    s = score([10])
    assert (s.detected, s.false_positives) == (1, 0)
    assert s.raw["standard"] == pytest.approx(1.0)
    assert s.normalized() == pytest.approx({p: 100.0 for p in PROFILES})


def test_detection_at_window_end_earns_the_sigmoid_share():
    s = score([19])
    reward = math.tanh(0.25) / math.tanh(2.5)  # 0.244919 / 0.986614 = 0.248242
    assert reward == pytest.approx(0.248242, abs=1e-6)
    assert s.raw["standard"] == pytest.approx(reward)
    n = s.normalized()
    assert n["standard"] == pytest.approx(100 * (reward + 1) / 2)  # 62.41
    assert n["reward_low_FN_rate"] == pytest.approx(100 * (reward + 2) / 3)  # 74.94
    assert n["standard"] == pytest.approx(62.412, abs=1e-3)


def test_only_the_first_detection_in_a_window_counts():
    assert score([10, 12, 19]).raw == score([10]).raw


def test_no_detection_scores_zero():
    s = score([])
    assert (s.detected, s.false_positives) == (0, 0)
    assert s.raw == {"standard": -1.0, "reward_low_FP_rate": -1.0, "reward_low_FN_rate": -2.0}
    assert s.normalized() == pytest.approx({p: 0.0 for p in PROFILES})


def test_false_positive_long_after_a_window_costs_almost_a_full_fp():
    s = score([10, 50])  # y = (50 - 19) / 10 = 3.1
    cost = math.tanh(7.75)  # 0.99999963
    assert s.false_positives == 1
    assert s.raw["standard"] == pytest.approx(1 - 0.11 * cost)
    assert s.raw["reward_low_FP_rate"] == pytest.approx(1 - 0.22 * cost)
    assert s.normalized()["standard"] == pytest.approx(100 * (2 - 0.11 * cost) / 2)  # 94.5


def test_false_positive_right_after_a_window_costs_little():
    s = score([10, 20])  # y = 1 / 10: cost tanh(0.25) = 0.2449 of an FP
    assert s.raw["standard"] == pytest.approx(1 - 0.11 * math.tanh(0.25))


def test_false_positive_before_any_window_costs_a_full_fp_and_miss_adds_fn():
    s = score([5])
    assert (s.detected, s.false_positives) == (0, 1)
    assert s.raw["standard"] == pytest.approx(-1 - 0.11)
    assert s.normalized()["standard"] == pytest.approx(-5.5)
    assert s.raw["reward_low_FN_rate"] == pytest.approx(-2 - 0.11)


def test_probation_rows_are_not_scored():
    s = score_detections(hits(5, 10), WINDOW, probation=8)
    assert (s.detected, s.false_positives) == (1, 0)
    assert score_detections(hits(5), WINDOW).false_positives == 0  # default: 15% of 100 rows


def test_series_are_combined_before_normalizing():
    a, b = score([10]), score([], windows=[(10, 19), (40, 49)])
    # raw 1 + (-2), null -1 + -2, perfect 1 + 2  ->  100 * (-1 + 3) / 6
    assert combined([a, b])["standard"] == pytest.approx(100 * 2 / 6)


def test_score_cli_reads_detect_output(tmp_path, capsys):
    lines = ["timestamp,value,raw_anomaly,anomaly_likelihood,anomaly_score,flagged"]
    for i in range(200):  # probation: the first 30 rows
        lines.append(f"2020-01-01 00:{i // 60:02d}:{i % 60:02d},1,0,0.5,{0.9 if i == 40 else 0.1},{int(i == 40)}")
    (tmp_path / "demo.scores.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "w.json").write_text(json.dumps(
        {"x/demo.csv": [["2020-01-01 00:00:40.000000", "2020-01-01 00:00:49.000000"]]}))
    assert main(["score", str(tmp_path / "demo.scores.csv"), "--windows", str(tmp_path / "w.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["series"][0]["detected"] == 1
    assert report["series"][0]["false_positives"] == 0
    assert report["total"]["standard"] == 100.0
    assert main(["score", str(tmp_path / "nomatch.csv"), "--windows", str(tmp_path / "w.json")]) == 2
    assert "no series" in capsys.readouterr().err


def test_score_cli_names_the_line_of_a_bad_score(tmp_path, capsys):
    (tmp_path / "demo.csv").write_text("timestamp,anomaly_score\n2020-01-01 00:00:00,0.1\n"
                                       "not a time,0\n2020-01-01 00:00:01,high\n")
    (tmp_path / "w.json").write_text(json.dumps({"demo.csv": []}))
    assert main(["score", str(tmp_path / "demo.csv"), "--windows", str(tmp_path / "w.json")]) == 2
    err = capsys.readouterr().err
    assert "line 4: non-numeric anomaly_score 'high'" in err and err.count("\n") == 1


def test_score_cli_quiet_keeps_one_detection_per_excursion(tmp_path, capsys):
    """Re-thresholding a detect output: --quiet applies the detector's one-flag-per-excursion
    rule, so an excursion of three high rows after a window is one false positive, not three."""
    lines = ["timestamp,anomaly_score"]
    high = {40, 120, 121, 122}  # a hit in the window, then one excursion of 3 rows outside it
    for i in range(200):
        lines.append(f"2020-01-01 00:{i // 60:02d}:{i % 60:02d},{0.9 if i in high else 0.1}")
    (tmp_path / "demo.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "w.json").write_text(json.dumps(
        {"demo.csv": [["2020-01-01 00:00:40.000000", "2020-01-01 00:00:49.000000"]]}))
    args = ["score", str(tmp_path / "demo.csv"), "--windows", str(tmp_path / "w.json"), "--json", "--threshold", "0.5"]
    fps = []
    for extra in ([], ["--quiet", "5"]):
        assert main(args + extra) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["series"][0]["detected"] == 1
        fps.append(report["series"][0]["false_positives"])
    assert fps == [3, 1]
    assert main(["score", str(tmp_path / "demo.csv"), "--windows", str(tmp_path / "w.json"), "--quiet", "5"]) == 2
    assert "--quiet" in capsys.readouterr().err
