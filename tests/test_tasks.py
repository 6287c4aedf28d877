"""The published tasks (Cui, Ahmad & Hawkins 2016) and the nodes they are built from:
source.sequence, metric.accuracy / mape / nrmse / anomaly, decoder.rls, encoders, util nodes;
plus short runs of graphs/high_order.json and graphs/nyc_taxi.json that must really learn."""
import json
import math
from pathlib import Path

import pytest
import torch

from deephtm.graph.graphfile import load_graph
from deephtm.node import Context
from deephtm.graph.registry import get
from deephtm.graph.resolve import check_params
from deephtm.train.trainer import Trainer

from helpers import short_high_order_dict

ROOT = Path(__file__).resolve().parent.parent


def make(type_name, shapes, **params):
    cls = get(type_name)
    p = check_params(cls, "n", params)
    cls.infer(p, shapes)
    node = cls(p, shapes)
    node.node_id = "n"
    node.setup(1, torch.Generator().manual_seed(0))
    return node


def ctx(step=0):
    return Context(step=step, batch=1, device=torch.device("cpu"), generator=torch.Generator())


# ---- source.sequence -----------------------------------------------------------------
def test_sequence_source_pairs_noise_last_flag_and_swap():
    src = make("source.sequence", {}, symbols=20, pairs=2, length=7, noise=1, swap_step=300)
    seqs = src.sequences
    assert len(seqs) == 4 and all(len(s) == 7 for s in seqs)
    assert seqs[0][1:-1] == seqs[1][1:-1] and seqs[0][0] != seqs[1][0] and seqs[0][-1] != seqs[1][-1]
    stream = [src(ctx(t)) for t in range(600)]
    symbols = [int(o["symbol"]) for o in stream]
    assert all(int(stream[t]["target"]) == symbols[t + 1] for t in range(599))
    ends = {s[-1] for s in seqs}
    for t in range(599):
        if float(stream[t]["last"]) == 1:  # the target ends a sequence: the 6 before match one
            window = symbols[t - 5:t + 2]
            current = src.sequences_at(t - 5)
            assert window in current, window
            assert window[-1] in ends
    after = src.sequences_at(300)
    assert after[0][-1] == seqs[1][-1] and after[1][-1] == seqs[0][-1]
    assert torch.equal(stream[0]["onehot"][0], torch.nn.functional.one_hot(torch.tensor(symbols[0]), 20).float())


def test_sequence_source_explicit_sequences_and_bad_text():
    src = make("source.sequence", {}, symbols=8, sequences="0 1 2; 3 1 4", noise=1, noise_from="unused",
               swap_step=0)
    symbols = [int(src(ctx(t))["symbol"]) for t in range(200)]
    assert set(symbols) <= {0, 1, 2, 3, 4, 5, 6, 7} and {0, 1, 2, 3, 4} <= set(symbols)
    assert all(symbols[i + 1] == 1 for i, s in enumerate(symbols[:-1]) if s in (0, 3))
    from deephtm.errors import GraphError
    with pytest.raises(GraphError, match="sequences"):
        make("source.sequence", {}, symbols=8, sequences="0 1 9")


# ---- metrics ---------------------------------------------------------------------------
def test_accuracy_learn_and_relearn_steps():
    acc = make("metric.accuracy", {"pred": (1,), "target": (1,), "mask": ()}, window=10, swap_step=1000)
    one = torch.ones(1, 1)
    for step in range(2000):
        scored = step % 10 == 0
        # wrong until step 300, right until the swap, wrong for 200 steps, right again
        right = 300 <= step < 1000 or step >= 1200
        acc(ctx(step), pred=one if right else one * 2, target=one, mask=torch.tensor([float(scored)]))
    v = acc.value()
    assert v["accuracy_before_swap"] == 1.0 and v["accuracy_after_swap"] == 1.0
    # 95% of 1.0 needs 10 of the last 10 items right: the 10th right item is at step 390.
    assert v["learn_steps"] == 391
    assert v["relearn_steps"] == 1290 + 1 - 1000


def test_accuracy_with_logits_and_mask():
    acc = make("metric.accuracy", {"pred": (3,), "target": (1,), "mask": ()}, window=100)
    logits = torch.tensor([[0.1, 2.0, 0.3]])
    acc(ctx(), pred=logits, target=torch.tensor([[1.0]]), mask=torch.tensor([1.0]))
    acc(ctx(1), pred=logits, target=torch.tensor([[2.0]]), mask=torch.tensor([0.0]))  # not scored
    acc(ctx(2), pred=logits, target=torch.tensor([[0.0]]), mask=torch.tensor([1.0]))
    assert acc.value()["accuracy"] == 0.5


def test_mape_unnormalizes_and_starts_late():
    m = make("metric.mape", {"pred": (1,), "target": (1,)}, start=2, scale=10.0, offset=100.0)
    for step, (p, t) in enumerate([(5.0, 0.0), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]):
        m(ctx(step), pred=torch.tensor([[p]]), target=torch.tensor([[t]]))
    # scored: |110-100| + |100-110| over 100 + 110
    assert m.value() == pytest.approx(20 / 210)


def test_nrmse_whole_series_protocol_and_sine_default_unchanged():
    series = torch.randn(500).cumsum(0)
    m = make("metric.nrmse", {"pred": (1,), "target": (1,)}, window=0, start=300, divide_by="series")
    for step in range(500):
        t = series[step].view(1, 1)
        m(ctx(step), pred=t + 0.5, target=t)
    assert m.value() == pytest.approx(0.5 / float(series.std()), rel=1e-6)
    w = make("metric.nrmse", {"pred": (1,), "target": (1,)})  # the sine graph's default: a window
    for step in range(50):
        t = torch.tensor([[math.sin(step)]])
        w(ctx(step), pred=t * 0.9, target=t)
    targets = torch.tensor([math.sin(s) for s in range(50)])
    expected = float((targets * 0.1).pow(2).mean().sqrt() / targets.std(unbiased=False))
    assert w.value() == pytest.approx(expected, rel=1e-4)


def test_mean_anomaly_window():
    m = make("metric.anomaly", {"anomaly": ()}, window=4)
    for v in (1.0, 1.0, 0.0, 0.0, 0.0, 0.0):
        m(ctx(), anomaly=torch.tensor([v]))
    assert m.value() == 0.0


# ---- encoders, util and the online readout -----------------------------------------------
def test_periodic_encoder_puts_each_half_hour_of_the_week_in_its_own_slot():
    enc = make("encoder.periodic", {"x": (2,)}, size=336, active=1)
    slots = []
    for k in range(336):  # the angle source.csv gives for weekday + fraction of day
        a = 2 * math.pi * k / 336
        slots.append(int(enc(ctx(), x=torch.tensor([[math.sin(a), math.cos(a)]]))["code"].argmax()))
    assert slots == list(range(336))


def test_scalar_encoder_overlap_falls_with_distance():
    enc = make("encoder.scalar", {"x": (1,)}, size=50, active=5, min=0.0, max=1.0)
    code = lambda v: enc(ctx(), x=torch.tensor([[v]]))["code"][0]  # noqa: E731
    assert int(code(0.5).sum()) == 5
    assert float((code(0.5) * code(0.52)).sum()) >= 4 and float((code(0.1) * code(0.9)).sum()) == 0


def test_history_is_a_tapped_delay_line():
    h = make("util.history", {"x": (1,)}, length=3)
    outs = [h(ctx(), x=torch.tensor([[float(v)]]))["y"][0].tolist() for v in (1, 2, 3, 4)]
    assert outs == [[1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2]]


@pytest.mark.parametrize("method", ["rls", "nlms"])
def test_online_readout_learns_without_seeing_the_future(method):
    """y(t+3) = 2 x1(t) - x2(t) + 0.5 with random x: the readout gets only y(t) at step t, the
    answer for the features of t-3. It fits the map only if it pairs them that way."""
    params = {"horizon": 3, "method": method, "rate": 0.5, "delta": 1000.0}
    r = make("decoder.rls", {"x": (2,), "observed": (1,)}, **params)
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(400, 2, generator=g)
    ys = 2 * xs[:, 0] - xs[:, 1] + 0.5
    preds = []
    for t in range(400):
        observed = ys[t - 3] if t >= 3 else torch.tensor(0.0)
        preds.append(float(r(ctx(t), x=xs[t:t + 1], observed=observed.view(1, 1))["y"]))
    errors = [abs(preds[t] - float(ys[t])) for t in range(350, 397)]
    assert max(errors) < (1e-3 if method == "rls" else 0.05)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("lam", [0.97, 1.0])  # 1.0: no forgetting, as nyc_taxi.json's HTM readout
def test_rls_readout_is_exact_forgetting_least_squares_on_sparse_codes(batch, lam):
    """Sparse binary codes (the sparse path at batch 1, the dense one at batch 2): the weights
    after every step equal the closed-form ridge solution of the pairs seen so far, each pair
    weighted lam^age, the ridge (1/delta) fading the same way."""
    d, h, delta, steps = 40, 2, 10.0, 120
    r = get("decoder.rls")
    p = check_params(r, "n", {"horizon": h, "forgetting": lam, "delta": delta, "bias": False})
    r.infer(p, {"x": (d,), "observed": (1,)})
    r = r(p, {"x": (d,), "observed": (1,)})
    r.setup(batch, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(3)
    codes = (torch.rand(steps, batch, d, generator=g) < 0.08).float()
    values = torch.randn(steps, batch, 1, generator=g, dtype=torch.float64)
    for t in range(steps):
        r(ctx(t), x=codes[t], observed=values[t].float())
        pairs = range(h, t + 1)  # the features of step i - h against the value observed at i
        if len(pairs) < 5:
            continue
        for b in range(batch):
            F = torch.stack([codes[i - h, b].double() for i in pairs])
            Y = torch.stack([values[i, b].float().double() for i in pairs])
            age = torch.tensor([lam ** (t - i) for i in pairs], dtype=torch.float64)
            A = F.T @ (age[:, None] * F) + lam ** (len(pairs)) / delta * torch.eye(d, dtype=torch.float64)
            W = torch.linalg.solve(A, F.T @ (age[:, None] * Y))
            assert torch.allclose(r.W[b], W, atol=1e-7), (t, b, (r.W[b] - W).abs().max())


def test_seasonal_profile_uses_only_the_past():
    s = make("util.seasonal", {"slot": (4,), "value": (1,)}, ahead=1, rate=1.0)
    one_hot = lambda k: torch.nn.functional.one_hot(torch.tensor([k]), 4).float()  # noqa: E731
    out = [s(ctx(t), slot=one_hot(t % 4), value=torch.tensor([[float(t)]]))["profile"][0].tolist()
           for t in range(6)]
    assert out[0] == [0.0, 0.0]  # slot 1 unseen: the current value stands in
    assert out[4] == [1.0, 4.0]  # slot 1 last seen at t=1; slot 0 updated to 4 now
    assert out[5] == [2.0, 5.0]


def test_seasonal_naive_is_the_mean_of_the_last_values_at_the_slot_predicted():
    one_hot = lambda k: torch.nn.functional.one_hot(torch.tensor([k]), 4).float()  # noqa: E731
    for periods, expect in ((1, [7.0, 8.0]), (2, [5.0, 6.0])):
        s = make("util.seasonal_naive", {"slot": (4,), "value": (1,)}, ahead=1, periods=periods)
        out = [float(s(ctx(t), slot=one_hot(t % 4), value=torch.tensor([[float(t)]]))["y"])
               for t in range(12)]
        assert out[0] == 0.0  # slot 1 unseen: the current value stands in
        assert out[4] == 1.0  # slot 1 seen once, at t=1
        # t=10 predicts slot 3, seen at 3 and 7 (and not yet at 11); t=11 predicts slot 0 (0, 4, 8)
        assert out[10:12] == expect


def test_sdr_classifier_predicts_ahead_and_never_sees_the_future():
    """A cycle of 4 codes, each followed 2 steps later by its own value. The classifier gets the
    value at step t only; it learns the map only by pairing it with the code of t-2. Its
    predictions up to step t do not change when the values after t do."""
    values = [0.15, 0.45, 0.75, 0.95]

    def predictions(later_value):
        c = make("decoder.sdr_classifier", {"x": (8,), "observed": (1,)},
                 horizon=2, buckets=10, min=0.0, max=1.0, rate=0.5, value_rate=0.5)
        out = []
        for t in range(300):
            code = torch.zeros(1, 8)
            code[0, 2 * (t % 4):2 * (t % 4) + 2] = 1
            v = values[t % 4] if t < 250 else later_value
            out.append(float(c(ctx(t), x=code, observed=torch.tensor([[v]]))["y"]))
        return out

    a, b = predictions(0.05), predictions(0.55)
    assert a[:250] == b[:250]
    assert all(abs(a[t] - values[(t + 2) % 4]) < 0.03 for t in range(200, 250))
    assert a[-1] != b[-1]


# ---- short runs of the task graphs --------------------------------------------------------
def run_graph(d: dict, tmp_path, name: str) -> dict:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(d))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small step at a time: more threads only add overhead
    try:
        return Trainer(load_graph(path), out=tmp_path / f"run_{name}").run()
    finally:
        torch.set_num_threads(threads)


def test_nyc_taxi_htm_prediction_and_ablation_are_honest():
    """The HTM prediction reads the TM's cells and nothing else; the whole model weighs the
    no-HTM prediction against it, so the no-HTM readout (scored as no_htm_mape) is exactly the
    whole model without the HTM path."""
    d = json.loads((ROOT / "graphs" / "nyc_taxi.json").read_text())
    into = {}
    for e in d["edges"]:
        into.setdefault(e["to"].split(".")[0], set()).add((e["from"], e["to"].split(".")[1]))
    assert into["htm_readout"] == {("tm.cells", "x"), ("scaled.y", "observed")}
    assert into["features"] == {("readout_no_htm.y", "a"), ("htm_readout.y", "b")}
    assert into["readout"] == {("features.y", "x"), ("scaled.y", "observed")}
    assert ("readout_no_htm.y", "pred") in into["no_htm_mape"] and ("readout.y", "pred") in into["mape"]

    def upstream(node):  # every node the given one depends on
        seen, todo = set(), [node]
        while todo:
            for src, _ in into.get(todo.pop(), ()):
                n = src.split(".")[0]
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen
    assert not upstream("readout_no_htm") & {"sp", "tm", "htm_readout"}
    assert not upstream("htm_readout") & {"lags", "season", "readout_no_htm"}


def test_nyc_taxi_graph_beats_the_shift_baseline_in_a_short_run(tmp_path):
    """3,000 steps scored from 2,000: the HTM path alone (a readout of the TM's cells only),
    the full model and its ablation all beat the shift baseline by far, and the seasonal
    baselines are reported beside them."""
    d = json.loads((ROOT / "graphs" / "nyc_taxi.json").read_text())
    for n in d["nodes"]:
        if n["type"] == "source.csv":
            n["params"]["path"] = str(ROOT / "data" / "htmresearch" / "nyc_taxi.csv")
        if n["type"].startswith("metric.") and "start" in n["params"]:
            n["params"]["start"] = 2000
    d["training"].update({"steps": 3000, "log_every": 1000})
    m = run_graph(d, tmp_path, "nyc")["metrics"]
    assert m["shift_mape"] > 0.2
    assert m["htm_mape"] < 0.4 * m["shift_mape"] and m["htm_nrmse"] < 0.4 * m["shift_nrmse"], m
    assert m["mape"] < 0.5 * m["shift_mape"] and m["nrmse"] < 0.5 * m["shift_nrmse"], m
    assert m["no_htm_mape"] < 0.5 * m["shift_mape"], m
    for name in ("weekly", "four_week"):
        assert 0 < m[f"{name}_mape"] < m["shift_mape"] and 0 < m[f"{name}_nrmse"] < m["shift_nrmse"], m
    assert (tmp_path / "run_nyc" / "summary.json").exists()


def test_high_order_graph_learns_and_relearns_in_a_short_run(tmp_path):
    """Two pairs of length-4 sequences (two shared middle elements), endings swapped at 1,500.
    The SP keeps the graph's 8 active columns: the TM's segment thresholds are set for them."""
    d = short_high_order_dict(pairs=2, swap_step=1500, window=50)
    d["training"].update({"steps": 3000})
    m = run_graph(d, tmp_path, "high_order")["metrics"]
    assert m["accuracy_before_swap"] >= 0.95, m
    assert m["accuracy_after_swap"] >= 0.95, m
    assert m["learn_steps"] < 1500 and m["relearn_steps"] < 1500
