"""Anomaly detection: date encodings, the likelihood node, deephtm detect end to end, bad rows."""
import csv
import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch

from deephtm.cli import main
from deephtm.anomaly.detect import Detector
from deephtm.errors import GraphError
from deephtm.graph.graphfile import load_graph
from deephtm.node import Context
from deephtm.nodes.anomaly_likelihood import AnomalyLikelihood
from deephtm.nodes.source_csv import CSVSource
from deephtm.nodes.util_concat import Concat
from deephtm.graph.resolve import check_params

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "graphs" / "anomaly.json"
START = datetime(2024, 1, 1)  # a Monday


def write_series(path, values, step_minutes=5, bad=None):
    """A timestamp,value CSV; bad maps a row index to a replacement (timestamp, value) pair."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            row = [(START + timedelta(minutes=step_minutes * i)).strftime("%Y-%m-%d %H:%M:%S"), f"{v:.4f}"]
            if bad and i in bad:
                row = list(bad[i])
            w.writerow(row)
    return path


def periodic(n, shift_at=None, seed=0):
    """A daily-looking pattern (period 48 rows) with a little noise, optionally a level shift."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        v = 10 + 3 * math.sin(2 * math.pi * i / 48) + rng.gauss(0, 0.1)
        if shift_at is not None and i >= shift_at:
            v += 12
        out.append(v)
    return out


def make_source(path, **params):
    p = check_params(CSVSource, "source", dict(path=str(path), **params))
    node = CSVSource(p, {})
    node.node_id, node.base_dir = "source", None
    node.used_outputs = {"value", "target", "time_of_day", "day_of_week", "raw", "gap"}
    node.setup(1, torch.Generator())
    return node


# ---- source.csv date encodings -------------------------------------------------------

def test_time_of_day_and_day_of_week_are_cyclic(tmp_path):
    rows = [("2024-01-01 06:00:00", 1), ("2024-01-01 18:00:00", 2), ("2024-01-03 00:00:00", 3)]
    path = tmp_path / "d.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    src = make_source(path, timestamp_column="timestamp", horizon=0, normalize="none")
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    out = src(ctx)
    assert out["value"].tolist() == [[1.0]]
    assert out["time_of_day"][0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)  # 06:00: a quarter turn
    monday_6h = 2 * math.pi * 0.25 / 7
    assert out["day_of_week"][0].tolist() == pytest.approx([math.sin(monday_6h), math.cos(monday_6h)], abs=1e-6)
    ctx.step = 1
    assert src(ctx)["time_of_day"][0].tolist() == pytest.approx([-1.0, 0.0], abs=1e-6)  # 18:00
    ctx.step = 2
    wednesday = 2 * math.pi * 2 / 7
    assert src(ctx)["day_of_week"][0].tolist() == pytest.approx([math.sin(wednesday), math.cos(wednesday)], abs=1e-6)


def test_online_normalization_never_uses_later_rows(tmp_path):
    a = write_series(tmp_path / "a.csv", [1, 2, 3, 4, 100])
    b = write_series(tmp_path / "b.csv", [1, 2, 3, 4, -50])
    sa = make_source(a, horizon=0, normalize="online")
    sb = make_source(b, horizon=0, normalize="online")
    assert sa.series[:4].tolist() == sb.series[:4].tolist()  # the last row changes nothing before it
    assert sa.series[4] > 1 and sb.series[4] < -1


@pytest.mark.parametrize("bad_row, message", [
    (("2024-01-01 00:10:00", "abc"), "line 4: non-numeric value 'abc' in column 'value'"),
    (("2024-01-01 00:10:00", ""), "line 4: missing value in column 'value'"),
    (("yesterday", "1.5"), "line 4: unparsable timestamp 'yesterday' in column 'timestamp'"),
])
def test_bad_rows_are_errors_naming_the_line(tmp_path, bad_row, message):
    path = write_series(tmp_path / "bad.csv", [1, 2, 3, 4, 5], bad={2: bad_row})
    with pytest.raises(GraphError) as err:
        make_source(path, timestamp_column="timestamp", horizon=0)
    assert message in str(err.value)
    assert "node 'source'" in str(err.value)


def test_concat_joins_features():
    node = Concat(check_params(Concat, "c", {}), {"a": (1,), "b": (2,), "c": None, "d": None})
    assert Concat.infer({}, {"a": (1,), "b": (2,), "c": (2,), "d": None}) == {"y": (5,)}
    y = node(None, a=torch.ones(3, 1), b=torch.zeros(3, 2))["y"]
    assert y.shape == (3, 3) and y[:, 0].tolist() == [1, 1, 1]


# ---- the likelihood node ---------------------------------------------------------------

def run_likelihood(raw_stream, **params):
    p = check_params(AnomalyLikelihood, "likelihood", params)
    node = AnomalyLikelihood(p, {"raw": ()})
    node.setup(1, torch.Generator())
    return [node(None, raw=torch.tensor([r]))["likelihood"].item() for r in raw_stream]


def test_likelihood_is_near_half_when_stationary_and_jumps_at_a_shift():
    rng = random.Random(1)
    raw = [float(rng.random() < 0.1) for _ in range(1500)] + [float(rng.random() < 0.7) for _ in range(30)]
    lik = run_likelihood(raw, learning_period=100, estimation_samples=100, history=1000)
    assert all(v == 0.5 for v in lik[:200])  # learning, then estimating
    steady = sorted(lik[300:1500])
    assert 0.3 < steady[len(steady) // 2] < 0.7  # the median: half the averages lie above
    assert max(lik[1500:1530]) > 0.999


def test_log_scale_and_flags():
    raw = [0.0] * 300 + [1.0] * 20
    p = check_params(AnomalyLikelihood, "l", {"learning_period": 50, "estimation_samples": 50,
                                              "threshold": 0.5, "refractory": 100})
    node = AnomalyLikelihood(p, {"raw": ()})
    node.setup(1, torch.Generator())
    outs = [node(None, raw=torch.tensor([r])) for r in raw]
    scores = [o["score"].item() for o in outs]
    flags = [o["flag"].item() for o in outs]
    surprise = -math.log10(0.5)  # the tail while learning
    assert scores[0] == pytest.approx(surprise / (surprise + 5.0))  # 0.057
    assert all(0.0 <= s < 1.0 for s in scores)
    assert 0.9 < max(scores[300:]) < 1.0  # far out in the tail, but never pinned at 1
    assert sum(flags) == 1 and flags.index(1.0) >= 300  # one flag, then the refractory period


def test_long_window_flags_a_long_slightly_raised_stretch_the_short_one_misses():
    rng = random.Random(5)
    raw = [rng.random() * 0.2 for _ in range(2000)] + [0.05 + rng.random() * 0.2 for _ in range(400)]

    def flagged(**params):
        p = check_params(AnomalyLikelihood, "l", dict(dict(learning_period=50, estimation_samples=50,
                                                           min_std=0.08, threshold=0.25, refractory=1000), **params))
        node = AnomalyLikelihood(p, {"raw": ()})
        node.setup(1, torch.Generator())
        return [i for i, r in enumerate(raw) if node(None, raw=torch.tensor([r]))["flag"].item()]

    assert flagged() == []  # +0.05 is well inside the 8-step average's spread (std floor 0.08)
    hits = flagged(long_window=200, long_min_std=0.01)
    assert len(hits) == 1 and 2000 < hits[0] < 2400  # over 200 steps it is far outside
    assert flagged(long_window=200, long_min_std=0.01, threshold=0.99) == []


def likelihood_with_values(values, raw=0.1, **params):
    """Flags and scores of an anomaly.likelihood fed a calm raw anomaly and these values."""
    p = check_params(AnomalyLikelihood, "l", dict(dict(learning_period=50, estimation_samples=50,
                                                       threshold=0.5, range_warmup=300), **params))
    node = AnomalyLikelihood(p, {"raw": (), "value": (1,)})
    node.setup(1, torch.Generator())
    outs = [node(None, raw=torch.tensor([raw]), value=torch.tensor([[v]])) for v in values]
    return [o["flag"].item() for o in outs], [o["score"].item() for o in outs]


def wave(n, amplitude=5.0):
    return [amplitude * math.sin(2 * math.pi * i / 50) for i in range(n)]


def test_source_marks_the_row_after_a_gap_in_the_sampling(tmp_path):
    # Every 5 minutes, then one hour of silence before row 8, then every 10 minutes (2x the
    # median: under the factor 3), then 16 minutes (3.2x) before row 12.
    minutes = [5 * i for i in range(8)] + [95 + 10 * k for k in range(4)] + [141]
    path = tmp_path / "g.csv"
    path.write_text("timestamp,value\n" + "".join(
        f"{(START + timedelta(minutes=m)).strftime('%Y-%m-%d %H:%M:%S')},{i}\n" for i, m in enumerate(minutes)))
    src = make_source(path, timestamp_column="timestamp", horizon=0)
    assert src.rows(0, len(minutes))["gap"][:, 0].tolist() == [0] * 8 + [1, 0, 0, 0, 1]
    assert make_source(path, timestamp_column="timestamp", horizon=0, gap_factor=4.0).gaps.tolist() == \
        [0] * 8 + [1] + [0] * 4
    assert make_source(path, horizon=0).gaps.tolist() == [0] * len(minutes)  # no timestamps: no gaps


def test_likelihood_leaves_out_the_raw_anomaly_after_a_gap():
    rng = random.Random(0)
    raw = [0.2 + 0.1 * rng.random() for _ in range(600)]
    gaps = [0.0] * 600
    for i in range(400, 600, 40):  # a burst of misses right after each gap
        raw[i:i + 3], gaps[i:i + 3] = [1.0] * 3, [1.0] * 3

    def scores(raw, gaps=None):
        p = check_params(AnomalyLikelihood, "l", dict(learning_period=50, estimation_samples=50, threshold=0.5))
        node = AnomalyLikelihood(p, {"raw": (), "gap": (1,)})
        node.setup(1, torch.Generator())
        g = gaps or [None] * len(raw)
        return [node(None, raw=torch.tensor([r]), gap=None if x is None else torch.tensor([[x]]))["score"].item()
                for r, x in zip(raw, g)]

    without_gaps, with_gaps = scores(raw), scores(raw, gaps)
    assert max(without_gaps[400:]) > 0.5  # the misses look anomalous to a gap-blind likelihood
    zeroed = [0.0 if g else r for r, g in zip(raw, gaps)]
    assert with_gaps == scores(zeroed) and max(with_gaps[400:]) < 1 / 6  # no tail below 0.1
    steps = AnomalyLikelihood(check_params(AnomalyLikelihood, "l", dict(learning_period=50, estimation_samples=50,
                                                                         threshold=0.5)), {"raw": (), "gap": (1,)})
    steps.setup(1, torch.Generator())
    batched = steps.forward_steps(None, raw=torch.tensor(raw), gap=torch.tensor(gaps).unsqueeze(1))
    assert batched["score"].tolist() == pytest.approx(with_gaps, abs=1e-6)


def test_range_check_flags_a_jump_past_the_range_but_not_a_slow_drift():
    values = wave(600)
    values[520] = 5.0 + 0.5  # range [-5, 5]: margin 0.02 * 10 = 0.2, so 5.5 is out of range
    drift = [5.0 + 0.01 * k for k in range(1, 500)]  # 0.01 a step past the top: never a jump
    flags, scores = likelihood_with_values(values + drift)
    # About 0.05 of the range past it, 2.5 tolerances: the surprise 2.5 x 5, scored 12.5 / 17.5.
    assert scores[520] == pytest.approx(12.5 / 17.5, abs=0.01) and [i for i, f in enumerate(flags) if f] == [520]
    assert max(scores[600:]) < 0.5  # the drift moved the range up step by step
    # The same values without a 'value' input: no range check, no flag.
    p = check_params(AnomalyLikelihood, "l", dict(learning_period=50, estimation_samples=50, threshold=0.5))
    plain = AnomalyLikelihood(p, {"raw": ()})
    plain.setup(1, torch.Generator())
    assert sum(plain(None, raw=torch.tensor([0.1]))["flag"].item() for _ in values + drift) == 0


def test_range_check_waits_for_its_warm_up():
    values = wave(400)
    values[200] = 9.0  # out of range, but before range_warmup
    flags, scores = likelihood_with_values(values, range_warmup=300)
    assert sum(flags) == 0 and scores[200] < 1.0
    flags, _ = likelihood_with_values(values, range_warmup=100)
    assert [i for i, f in enumerate(flags) if f] == [200]


def test_refractory_period_suppresses_the_second_flag():
    values = wave(700)
    values[500], values[540] = 6.0, -7.0  # two jumps out of the range, 40 rows apart
    flags, scores = likelihood_with_values(values, refractory=100)
    assert scores[500] > 0.5 and scores[540] > 0.5
    assert [i for i, f in enumerate(flags) if f] == [500]  # the second falls in the refractory period
    flags, _ = likelihood_with_values(values, refractory=30)
    assert [i for i, f in enumerate(flags) if f] == [500, 540]


def test_quiet_period_gives_one_flag_per_excursion():
    raw = [0.0] * 300 + [1.0] * 20  # the score stays above the threshold for many steps

    def flag_rows(**params):
        p = check_params(AnomalyLikelihood, "l", dict(dict(learning_period=50, estimation_samples=50,
                                                           threshold=0.5), **params))
        node = AnomalyLikelihood(p, {"raw": ()})
        node.setup(1, torch.Generator())
        return [i for i, r in enumerate(raw) if node(None, raw=torch.tensor([r]))["flag"].item()]

    assert len(flag_rows()) > 5  # no refractory, no quiet period: every high step
    assert len(flag_rows(quiet=5)) == 1  # one excursion, one flag
    values = wave(700)
    values[500], values[540] = 6.0, -7.0  # two range-check hits, 39 steps below the threshold between
    flags, _ = likelihood_with_values(values, quiet=50)
    assert [i for i, f in enumerate(flags) if f] == [500]
    flags, _ = likelihood_with_values(values, quiet=30)
    assert [i for i, f in enumerate(flags) if f] == [500, 540]


def test_likelihood_value_port_must_hold_one_value():
    assert AnomalyLikelihood.infer({}, {"raw": (), "value": (1,)}) == {"likelihood": (), "score": (), "flag": ()}
    with pytest.raises(GraphError, match="one value per stream"):
        AnomalyLikelihood.infer({}, {"raw": (), "value": (3,)})


# ---- deephtm detect --------------------------------------------------------------------

def test_detect_writes_one_row_per_input_row(tmp_path, capsys):
    path = write_series(tmp_path / "stream.csv", periodic(400))
    out = tmp_path / "scores.csv"
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 400 == summary["rows"]
    assert list(rows[0]) == ["timestamp", "value", "raw_anomaly", "anomaly_likelihood", "anomaly_score", "flagged"]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    assert all(0.0 <= float(r["raw_anomaly"]) <= 1.0 for r in rows)
    assert rows[5]["timestamp"] == "2024-01-01 00:25:00" and float(rows[5]["value"]) == pytest.approx(periodic(6)[5], abs=1e-3)
    assert summary["rows_per_s"] > 0 and "flagged_points" in summary
    assert json.loads((tmp_path / "scores.summary.json").read_text())["rows"] == 400


def test_detector_likelihood_is_calm_then_jumps_at_a_level_shift(tmp_path):
    path = write_series(tmp_path / "shift.csv", periodic(900, shift_at=800))
    res = Detector(load_graph(GRAPH), str(path)).run()
    assert sum(res.raw[400:800]) / 400 < 0.3  # the TM learned the pattern online
    calm = sorted(res.likelihood[300:800])
    assert 0.3 < calm[len(calm) // 2] < 0.7  # the median: about half the averages lie above
    assert sum(res.likelihood[700:800]) / 100 < 0.6
    assert max(res.likelihood[800:830]) > 0.9  # the shift


def test_detect_skips_bad_rows_with_a_warning_naming_the_line(tmp_path, capsys):
    bad = {3: ("2024-01-01 00:15:00", "n/a"), 7: ("not a date", "1.0"), 9: ("2024-01-01 00:45:00", "")}
    path = write_series(tmp_path / "bad.csv", periodic(60), bad=bad)
    out = tmp_path / "scores.csv"
    assert main(["detect", str(GRAPH), "--input", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    for line in (5, 9, 11):  # row i is on line i + 2
        assert f"line {line}:" in captured.err
    assert "non-numeric value 'n/a'" in captured.err and "unparsable timestamp 'not a date'" in captured.err
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 60
    assert rows[3]["value"] == "" and rows[3]["anomaly_score"] == "0.000000"
    assert rows[7]["timestamp"] == "not a date"
    assert rows[4]["value"] != ""
    assert json.loads(captured.out)["scored_rows"] == 57


def test_detect_reports_a_missing_column_in_one_line(tmp_path, capsys):
    path = write_series(tmp_path / "s.csv", periodic(20))
    assert main(["detect", str(GRAPH), "--input", str(path), "--value-column", "speed",
                 "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "no column 'speed'" in err and err.count("\n") == 1


def test_detect_without_timestamps(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    path.write_text("value\n" + "".join(f"{v}\n" for v in periodic(50)))
    out = tmp_path / "o.csv"
    assert main(["detect", str(GRAPH), "--input", str(path), "--timestamp-column", "", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 50 and rows[7]["timestamp"] == "7"


# ---- the fast online path (deephtm/online.py) ------------------------------------------

def test_source_rows_match_forward_row_by_row(tmp_path):
    path = write_series(tmp_path / "s.csv", periodic(30))
    src = make_source(path, timestamp_column="timestamp", horizon=2)
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    block = src.rows(20, 12)  # runs past the end: wraps like forward
    for i in range(12):
        ctx.step = 20 + i
        one = src(ctx)
        for port in ("value", "target", "time_of_day", "day_of_week", "raw", "gap"):
            assert block[port][i].tolist() == one[port][0].tolist(), (port, i)
    expected = periodic(30)[20:28] + periodic(30)[:4]  # as read; wraps at 30 - horizon rows, as forward does
    assert block["raw"][:, 0].tolist() == pytest.approx(expected, abs=1e-4)


def test_fast_path_batches_the_frozen_encoders_and_scores_like_the_per_row_path(tmp_path):
    path = write_series(tmp_path / "shift.csv", periodic(700, shift_at=600))
    calls = {}
    slow = Detector(load_graph(GRAPH), str(path), fast=False)
    fast = Detector(load_graph(GRAPH), str(path))
    for nid in ("encoder", "date_encoder", "sp", "tm"):
        node = fast.trainer.model.nodes[nid]

        def counted(*args, _forward=node.forward, _nid=nid, **kw):
            calls[_nid] = calls.get(_nid, 0) + 1
            return _forward(*args, **kw)
        node.forward = counted
    a, b = slow.run(), fast.run()
    # The encoders and SP (frozen: the TM's loss does not reach them) run once on row 0 and
    # then once per 256-row block; the TM, which learns, runs every row.
    assert calls == {"encoder": 4, "date_encoder": 4, "sp": 4, "tm": 700}
    assert not any(p.requires_grad for p in fast.trainer.model.nodes["sp"].parameters())
    assert fast.trainer.model.nodes["tm"].distal.requires_grad
    diff = sum(abs(x - y) for x, y in zip(a.raw, b.raw)) / len(a.raw)
    assert diff < 0.01  # batched products may round differently in the last bits
    assert a.flagged == b.flagged and max(b.likelihood[600:630]) > 0.9
    # The range check sees source.raw on both paths: on the fast path it is sliced from the
    # prefix's 256-row blocks (rows 1-256, 257-512, ...), which straddle detect's chunks.
    assert a.score[600] == b.score[600] > 0.9 and 600 in [i for i, f in enumerate(b.flagged) if f]


def prefix_calls(path, graph) -> dict:
    """How often detect's fast path runs each frozen node's forward."""
    det, calls = Detector(graph, str(path)), {}
    for nid, node in det.trainer.model.nodes.items():
        def counted(*args, _forward=node.forward, _nid=nid, **kw):
            calls[_nid] = calls.get(_nid, 0) + 1
            return _forward(*args, **kw)
        node.forward = counted
    det.run()
    return calls


def test_the_fast_path_batches_an_sp_only_while_its_rows_are_independent(tmp_path):
    path = write_series(tmp_path / "s.csv", periodic(300))
    calls = prefix_calls(path, load_graph(GRAPH))
    assert calls["sp"] == calls["encoder"] == 1 + math.ceil(299 / 256) and calls["tm"] == 300
    boosted = load_graph(GRAPH)
    boosted.node("sp").params["boost_strength"] = 1.0  # the duty cycles of earlier rows count
    calls = prefix_calls(path, boosted)
    assert calls["sp"] == 300 and calls["encoder"] == 1 + math.ceil(299 / 256)


def test_detect_finds_its_source_and_likelihood_by_their_stream_role(tmp_path, capsys):
    path = write_series(tmp_path / "s.csv", periodic(60))
    g = load_graph(GRAPH)
    for n in g.nodes:  # other ids: detect goes by what the nodes are, not what they are called
        n.id = "my_" + n.id
    for e in g.edges:
        e.src, e.dst = "my_" + e.src, "my_" + e.dst
    assert Detector(g, str(path)).run().rows == 60
    g = load_graph(GRAPH)
    g.nodes = [n for n in g.nodes if n.id != "likelihood"]
    g.edges = [e for e in g.edges if "likelihood" not in (e.src, e.dst)]
    with pytest.raises(GraphError, match="needs exactly one 'anomaly.likelihood' node, found 0"):
        Detector(g, str(path))


def test_plain_sgd_steps_are_recognised():
    from deephtm.train.optim import plain_sgd
    from deephtm.train.optim import make_optimizer
    w, v = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    opt = make_optimizer("adam", [{"params": [w], "lr": 0.5, "optimizer": "sgd"}, {"params": [v]}], 0.01)
    assert plain_sgd(opt, [w]) == [(w, 0.5)]  # the Adam weight is frozen: not asked for
    assert plain_sgd(opt, [w, v]) is None  # Adam must step v
    momentum = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    assert plain_sgd(momentum, [w]) is None


def test_likelihood_forward_steps_matches_step_by_step():
    rng = random.Random(3)
    raw = [rng.random() * 0.2 for _ in range(400)] + [0.9] * 20
    p = check_params(AnomalyLikelihood, "lik", {"learning_period": 50, "estimation_samples": 20,
                                                 "averaging_window": 5, "threshold": 0.3, "refractory": 30})
    one, block = AnomalyLikelihood(p, {}), AnomalyLikelihood(p, {})
    one.setup(1, None), block.setup(1, None)
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    rows = [one(ctx, raw=torch.tensor([r])) for r in raw]
    blocks = [block.forward_steps(ctx, raw=torch.tensor(raw[a:a + 64])) for a in range(0, len(raw), 64)]
    together = {k: torch.cat([b[k] for b in blocks]) for k in ("likelihood", "score", "flag")}
    for k in ("likelihood", "score", "flag"):
        assert together[k].tolist() == [r[k].item() for r in rows]
    assert together["flag"].sum() >= 1


def test_likelihood_forward_steps_matches_step_by_step_with_values():
    rng = random.Random(4)
    raw = [rng.random() * 0.2 for _ in range(500)]
    values = [rng.gauss(0, 1) for _ in range(500)]
    values[400] = 8.0
    p = check_params(AnomalyLikelihood, "lik", {"learning_period": 50, "estimation_samples": 20,
                                                 "threshold": 0.3, "refractory": 30, "range_warmup": 100})
    one, block = AnomalyLikelihood(p, {}), AnomalyLikelihood(p, {})
    one.setup(1, None), block.setup(1, None)
    rows = [one(None, raw=torch.tensor([r]), value=torch.tensor([[v]])) for r, v in zip(raw, values)]
    blocks = [block.forward_steps(None, raw=torch.tensor(raw[a:a + 64]), value=torch.tensor(values[a:a + 64]).unsqueeze(1))
              for a in range(0, len(raw), 64)]
    for k in ("likelihood", "score", "flag"):
        assert torch.cat([b[k] for b in blocks]).tolist() == [r[k].item() for r in rows]
    assert rows[400]["flag"].item() == 1.0


def test_detect_flags_an_injected_spike(tmp_path):
    values = periodic(700)
    values[600] += 25  # far beyond anything seen: the range check flags it on its row
    path = write_series(tmp_path / "spike.csv", values)
    res = Detector(load_graph(GRAPH), str(path)).run()
    flagged = [i for i, f in enumerate(res.flagged) if f]
    assert 600 in flagged and res.score[600] == max(res.score) > 0.9
    assert max(res.score[300:600]) < res.threshold  # calm before it


def scores_of(raw, values=None, **params):
    """anomaly.likelihood scores over a raw-anomaly stream (and values, when given)."""
    p = check_params(AnomalyLikelihood, "l", dict(dict(learning_period=50, estimation_samples=50,
                                                       averaging_window=5, min_std=0.03, range_warmup=100), **params))
    node = AnomalyLikelihood(p, {"raw": ()} if values is None else {"raw": (), "value": (1,)})
    node.setup(1, torch.Generator())
    out = node.forward_steps(None, raw=torch.tensor(raw), value=None if values is None else torch.tensor(values))
    return out["score"].tolist(), out["likelihood"].tolist()


def test_a_spike_after_a_long_stable_stretch_outscores_every_noisy_row():
    rng = random.Random(3)
    values = [10 + rng.gauss(0, 1) for _ in range(3000)]
    values[2500] = max(values[:2500]) + 0.5 * (max(values[:2500]) - min(values[:2500]))
    raw = [min(1.0, max(0.0, 0.3 + rng.gauss(0, 0.1))) for _ in range(3000)]  # a TM that never learns noise
    raw[2500] = 1.0
    scores, _ = scores_of(raw, values)
    assert scores[2500] == max(scores) > 0.9
    assert max(scores[200:2500] + scores[2501:]) < 0.8  # the noisy rows, however unlucky


def test_scores_spread_over_the_range_and_are_not_pinned_at_one():
    # Several extremes of different sizes, each past the range so far, and bursts of misses.
    rng = random.Random(4)
    values = [math.sin(2 * math.pi * i / 40) + rng.gauss(0, 0.05) for i in range(4000)]
    raw = [min(1.0, max(0.0, 0.1 + rng.gauss(0, 0.05))) for _ in range(4000)]
    jumps = {1000: 1.2, 1800: 1.6, 2600: 2.5, 3400: 6.0}  # each one higher than the last
    for row, v in jumps.items():
        values[row] = v
    for row in (1300, 2200, 3000):
        raw[row:row + 5] = [1.0] * 5
    scores, _ = scores_of(raw, values, repeat_window=100)
    assert sum(s >= 1.0 for s in scores) == 0 and max(scores) > 0.9
    ranked = [scores[row] for row in jumps]
    assert ranked == sorted(ranked) and len(set(ranked)) == len(ranked)  # a farther breach ranks higher
    assert all(max(scores[row:row + 5]) > 0.9 for row in (1300, 2200, 3000))  # the bursts of misses stand out
    deciles = sorted(scores[200:])
    assert len({round(deciles[int(q * (len(deciles) - 1))], 3) for q in (0.1, 0.5, 0.9, 0.99, 1.0)}) == 5


def test_score_rises_with_the_likelihood_for_the_same_history():
    rng = random.Random(5)
    history = [min(1.0, max(0.0, 0.2 + rng.gauss(0, 0.1))) for _ in range(600)]
    ends = [0.2, 0.4, 0.6, 0.8, 1.0]
    last = [scores_of(history + [r])[0][-1] for r in ends]
    liks = [scores_of(history + [r])[1][-1] for r in ends]
    assert liks == sorted(liks) and len(set(liks)) == len(liks)
    assert last == sorted(last) and len(set(last)) == len(last) and last[-1] < 1.0


def test_repeat_window_ranks_an_excursion_by_its_first_row():
    raw = [0.1] * 400 + [1.0] * 30 + [0.1] * 400
    plain, _ = scores_of(raw)
    ranked, _ = scores_of(raw, repeat_window=50)
    first = next(i for i, s in enumerate(plain) if s > 0.5)
    assert ranked[first] == plain[first]  # the start of the excursion keeps its score
    later = [i for i in range(first + 1, 430) if plain[i] <= max(plain[i - 50:i])]
    assert later and all(ranked[i] == pytest.approx(plain[i] / 2) for i in later)
    # The burst holds the score high for many rows; ranked, only its rising start stays high.
    assert sum(v > 0.5 for v in ranked) < sum(v > 0.5 for v in plain) / 3


def test_far_tail_probabilities_keep_ranking():
    from deephtm.nodes.anomaly_likelihood import _log_gaussian_tail
    for z in (0.0, 1.0, 3.0, 7.9):
        assert _log_gaussian_tail(z) == pytest.approx(math.log(0.5 * math.erfc(z / math.sqrt(2))), rel=1e-12)
    assert _log_gaussian_tail(8.0) == pytest.approx(math.log(0.5 * math.erfc(8.0 / math.sqrt(2))), abs=1e-5)
    far = [_log_gaussian_tail(z) for z in (20.0, 40.0, 80.0)]  # erfc underflows to 0 past about 38
    assert all(math.isfinite(v) for v in far) and far == sorted(far, reverse=True)


def test_a_first_change_after_a_constant_stretch_is_a_breach():
    scores, _ = scores_of([0.0] * 300, [3.0] * 250 + [4.0] * 50)
    assert 0.99 < scores[250] < 1.0 and max(scores[:250]) < 0.1


# ---- calibration: a stream's surprise against its own recent surprises --------------------

def bursty_and_calm(n=4000, seed=7):
    """Two raw-anomaly streams on the same noise: one with a 5-row burst of misses every 250
    rows, one with a single burst at the end."""
    rng = random.Random(seed)
    base = [min(1.0, max(0.0, 0.05 + rng.gauss(0, 0.03))) for _ in range(n)]
    bursty, calm = list(base), list(base)
    for start in range(400, n, 250):
        bursty[start:start + 5] = [1.0] * 5
    calm[n - 100:n - 95] = [1.0] * 5
    return bursty, calm


def test_calibration_lowers_a_bursty_streams_surprises_and_leaves_a_calm_one_alone():
    bursty, calm = bursty_and_calm()
    on = dict(calibration_quantile=0.995, calibration_level=4.0)
    calm_off, _ = scores_of(calm)
    calm_on, _ = scores_of(calm, **on)
    assert calm_on == calm_off  # its surprises never came near 4 digits before the burst
    bursty_off, _ = scores_of(bursty)
    bursty_on, _ = scores_of(bursty, **on)
    late = slice(2000, 3900)  # bursts the stream has seen many of by now
    assert max(bursty_off[late]) > 0.6  # uncalibrated, each burst still looks like an alarm
    assert max(bursty_on[late]) < 0.5 < max(calm_on)  # calibrated, only the calm stream's one is
    assert all(b <= a for a, b in zip(bursty_off, bursty_on))  # it only ever lowers
    assert bursty_on[:400] == bursty_off[:400]  # nothing above 4 digits yet: no change


def test_calibration_level_is_the_quantile_of_the_recent_surprises_on_its_grid():
    from deephtm.nodes.anomaly_likelihood import CALIBRATION_BIN, _Calibration
    rng = random.Random(2)
    cal = _Calibration(quantile=0.95, size=300)
    seen = []
    for i in range(2000):
        x = rng.expovariate(1.0) * (4.0 if 800 <= i < 1200 else 1.0)  # a bursty stretch, then calm again
        cal.add(x)
        seen = (seen + [x])[-300:]
        # brute force: the lowest grid step with at most 5% of the last 300 surprises above it
        bins = [int(v / CALIBRATION_BIN) for v in seen]
        k = next(k for k in range(10**4) if sum(b > k for b in bins) <= 0.05 * len(bins))
        assert cal.level() == pytest.approx((k + 1) * CALIBRATION_BIN)
        if i == 1100:
            high = cal.level()
    assert high > 2 * cal.level()  # the level follows the stream back down once the burst leaves the window
    again = _Calibration(quantile=0.95, size=300)
    again.load(list(cal.ring))
    assert (again.level(), again.k, again.above) == (cal.level(), cal.k, cal.above)


def test_calibrated_forward_steps_match_step_by_step_and_resume_from_extra_state():
    bursty, _ = bursty_and_calm(n=1500)
    p = check_params(AnomalyLikelihood, "lik", {"learning_period": 50, "estimation_samples": 20,
                                                 "calibration_quantile": 0.98, "calibration_level": 2.0,
                                                 "alarm_surprise": 2.0})
    one, block = AnomalyLikelihood(p, {}), AnomalyLikelihood(p, {})
    one.setup(1, None), block.setup(1, None)
    cut = 402  # inside the first burst: the row before the cut was an alarm (state too)
    rows = [one(None, raw=torch.tensor([r]))["score"].item() for r in bursty[:cut]]
    saved = one.get_extra_state()
    assert saved["streams"][0]["last_surprise"] >= 2.0
    resumed = AnomalyLikelihood(p, {})
    resumed.setup(1, None)
    resumed.set_extra_state(saved)
    rows += [one(None, raw=torch.tensor([r]))["score"].item() for r in bursty[cut:]]
    blocks = torch.cat([block.forward_steps(None, raw=torch.tensor(bursty[a:a + 64]))["score"]
                        for a in range(0, 1500, 64)])
    assert blocks.tolist() == rows
    assert resumed.forward_steps(None, raw=torch.tensor(bursty[cut:]))["score"].tolist() == rows[cut:]
    assert saved["calibration"].shape == (1, cut - 70)  # a surprise per row once the distribution is trusted


def test_a_version_3_likelihood_state_migrates_with_no_recent_surprises():
    # version 3 had neither the calibration's recent surprises nor the last row's surprise
    p = check_params(AnomalyLikelihood, "lik", {"learning_period": 20, "estimation_samples": 10})
    old = AnomalyLikelihood(p, {})
    old.setup(2, None)
    for r in [0.1] * 50:
        old(None, raw=torch.tensor([r, r]))
    extra = old.get_extra_state()
    del extra["calibration"]  # what version 3 saved
    for stream in extra["streams"]:
        del stream["last_surprise"]
    tensors, migrated = AnomalyLikelihood.migrate_state(3, {}, extra)
    assert migrated["calibration"].shape == (2, 0)
    new = AnomalyLikelihood(p, {})
    new.setup(2, None)
    new.set_extra_state(migrated)
    assert [s.t for s in new.streams] == [50, 50] and all(not s.calibration.ring for s in new.streams)
    assert [s.last_surprise for s in new.streams] == [0.0, 0.0]
    assert AnomalyLikelihood.migrate_state(1, {}, extra) is None


def test_alarm_surprise_halves_the_rows_that_continue_an_alarm():
    rng = random.Random(8)
    raw = [min(1.0, max(0.0, 0.1 + rng.gauss(0, 0.03))) for _ in range(600)]
    raw[500:505] = [1.0] * 5  # the 5-row average climbs: each row more surprising than the last
    plain, _ = scores_of(raw)
    held, _ = scores_of(raw, alarm_surprise=4.0)
    surprise = [5.0 * s / (1.0 - s) for s in plain]  # the score's map, inverted
    first = next(i for i in range(600) if surprise[i] >= 4.0)
    assert first == 500 and plain[500] < plain[501] < plain[502] < plain[503]
    assert held[first] == plain[first] and held[:first] == plain[:first]  # the alarm's first row keeps its score
    halved = 0
    for i in range(first + 1, 600):  # each row right after a row past 4 digits scores half
        after_alarm = surprise[i - 1] >= 4.0
        assert held[i] == pytest.approx(plain[i] / 2 if after_alarm else plain[i])
        halved += after_alarm
    assert halved >= 5
    # At the first row's level: one alarm row instead of the whole climb.
    assert sum(s >= plain[first] for s in plain) >= 5 and sum(s >= plain[first] for s in held) == 1
