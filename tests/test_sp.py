"""htm.sp: exact sparsity (global and local, 1-D and 2-D), straight-through gradients,
boosting, duty cycles and their entropy."""
import json
import math

import pytest
import torch

from deephtm.errors import GraphError
from deephtm.node import Context
from deephtm.nodes.htm_sp import SpatialPooler, usage_entropy_ratio
from deephtm.graph.resolve import check_params


def make_sp(n_in=32, **params):
    p = check_params(SpatialPooler, "sp", params)
    SpatialPooler.infer(p, {"x": (n_in,)})
    torch.manual_seed(0)
    return SpatialPooler(p, {"x": (n_in,)})


CTX = Context(step=0, batch=8, device=torch.device("cpu"), generator=torch.Generator())


@pytest.mark.parametrize("output", ["magnitude", "binary"])
def test_global_inhibition_keeps_exactly_k(output):
    sp = make_sp(columns=100, winners=7, output=output, potential_pct=0.5)
    for x in (torch.randn(8, 32), torch.zeros(8, 32), torch.rand(8, 32) > 0.8):
        cols = sp(CTX, x.float())["columns"]
        assert cols.shape == (8, 100)
        assert ((cols != 0).sum(1) == 7).all()


@pytest.mark.parametrize("grid_height,neighbourhood,columns", [(1, 16, 128), (8, 4, 128), (16, 4, 256)])
def test_local_inhibition_keeps_exactly_k_per_neighbourhood(grid_height, neighbourhood, columns):
    sp = make_sp(columns=columns, winners=3, inhibition="local", grid_height=grid_height,
                 neighbourhood=neighbourhood, output="binary")
    cols = sp(CTX, torch.randn(8, 32))["columns"] != 0
    rows = grid_height
    width = columns // rows
    th = neighbourhood if rows > 1 else 1
    grid = cols.view(8, rows // th, th, width // neighbourhood, neighbourhood)
    per_tile = grid.sum(dim=(2, 4))
    assert (per_tile == 3).all()
    assert cols.sum(1).eq(3 * (rows // th) * (width // neighbourhood)).all()


def test_local_layout_that_does_not_divide_is_refused():
    p = check_params(SpatialPooler, "sp", {"columns": 100, "winners": 2, "inhibition": "local",
                                            "neighbourhood": 16})
    with pytest.raises(GraphError, match="does not divide"):
        SpatialPooler.infer(p, {"x": (8,)})


def test_gradient_flows_through_winners_only():
    sp = make_sp(columns=64, winners=5, output="binary")
    x = torch.randn(1, 32)
    cols = sp(CTX, x)["columns"]
    (cols * torch.randn_like(cols)).sum().backward()
    rows_with_grad = sp.proj.weight.grad.abs().sum(1) > 0
    assert torch.equal(rows_with_grad, (cols[0] != 0))
    assert rows_with_grad.sum() == 5


def test_boosting_evens_out_column_usage():
    """With fixed inputs and no learning, only boosting can spread the activity over the columns."""
    x = torch.randn(16, 32)
    ratios = {}
    for strength in (0.0, 10.0):
        sp = make_sp(columns=128, winners=4, boost_strength=strength, duty_inertia=0.95)
        for _ in range(400):
            sp(CTX, x[torch.randint(16, (8,))])
        ratios[strength] = sp.entropy_ratio()
    assert ratios[10.0] >= 0.9
    assert ratios[10.0] > ratios[0.0] + 0.05


def test_trainable_boost_strength_gets_a_gradient_and_keeps_the_sdr():
    sp = make_sp(columns=64, winners=4, boost_strength=2.0, boost_trainable=True)
    for _ in range(20):  # uneven duty cycles, so boosting matters
        sp(CTX, torch.randn(8, 32))
    cols = sp(CTX, torch.randn(8, 32))["columns"]
    assert ((cols != 0).sum(1) == 4).all()
    cols.pow(2).sum().backward()
    assert sp.boost.grad is not None and sp.boost.grad.abs() > 0


def test_duty_cycles_track_activity_and_freeze_in_eval():
    sp = make_sp(columns=32, winners=4, duty_inertia=0.9)
    for _ in range(200):
        sp(CTX, torch.randn(8, 32))
    assert math.isclose(float(sp.duty.sum()), 4.0, rel_tol=1e-3)  # mean activity is k per step
    before = sp.duty.clone()
    sp.eval()
    sp(CTX, torch.randn(8, 32))
    assert torch.equal(before, sp.duty)


def test_entropy_ratio_bounds():
    assert usage_entropy_ratio(torch.ones(50)) == pytest.approx(1.0)
    one_hot = torch.zeros(50)
    one_hot[3] = 1
    assert usage_entropy_ratio(one_hot) == pytest.approx(0.0, abs=1e-6)


# ---- boosting that revives idle columns ---------------------------------------------------
def wins_of_column(sp, column: int, steps: int, seed: int = 0) -> int:
    g = torch.Generator().manual_seed(seed)
    wins = 0
    for _ in range(steps):
        cols = sp(CTX, torch.randn(8, 32, generator=g))["columns"]
        wins += int((cols[:, column] != 0).sum())
    return wins


@pytest.mark.parametrize("mode,strength,revived", [("relative", 3.0, True), ("absolute", 1.0, False),
                                                   ("absolute", 0.0, False)])
def test_relative_boosting_revives_a_column_biased_off(mode, strength, revived):
    """A column whose threshold keeps it from ever winning wins again once its duty cycle has
    decayed, with relative boosting; the absolute boost of the same order is too weak at a
    sparsity of 1/16."""
    sp = make_sp(columns=32, winners=2, boost_mode=mode, boost_strength=strength)
    with torch.no_grad():
        sp.proj.bias[7] = -100.0  # its overlap is never positive: it scores 1 * boost at best
    assert wins_of_column(sp, 7, 300) > 0 if revived else wins_of_column(sp, 7, 300) == 0


def test_relative_boost_of_an_idle_column_is_exp_strength_at_any_sparsity():
    for columns, winners in ((64, 4), (1024, 4)):
        sp = make_sp(columns=columns, winners=winners, boost_mode="relative", boost_strength=3.0)
        sp.duty.zero_()
        sp.duty[0] = 2 * winners / columns  # used twice as often as its share
        b = sp.boost_factors()
        assert float(b[1]) == pytest.approx(math.exp(3.0))
        assert float(b[0]) == pytest.approx(math.exp(-3.0))


# ---- threshold offsets: usage evened out by a settling offset, not a duty-chasing factor -----
def codes_of(sp, x):
    """The winners of each row of x, without moving the offsets or duties (eval mode)."""
    sp.eval()
    with torch.no_grad():
        codes = sp(CTX, x)["columns"] != 0
    sp.train()
    return codes


def train_on(sp, x, steps, start=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    for step in range(start, start + steps):
        ctx = Context(step=step, batch=8, device=torch.device("cpu"), generator=g)
        sp(ctx, x[torch.randint(len(x), (8,), generator=g)])


def test_threshold_offsets_revive_a_column_biased_off():
    """A column held off by its bias gains an offset until it wins; without the offsets it never does."""
    won = {}
    for strength in (0.0, 0.01):
        sp = make_sp(columns=32, winners=2, boost_mode="threshold", boost_strength=strength)
        with torch.no_grad():
            sp.proj.bias[7] = -3.0
        won[strength] = wins_of_column(sp, 7, 300)
    assert won[0.0] == 0 and won[0.01] > 0, won


def test_threshold_offsets_even_out_usage_and_then_settle():
    """Fixed inputs, no learning: the offsets spread the wins over the columns; with a settling
    rate a given input then keeps its code, while a constant rate keeps reshuffling codes."""
    x = torch.randn(64, 32)
    changed, entropy = {}, {}
    for settle in (0.0, 50.0):
        sp = make_sp(columns=64, winners=4, boost_mode="threshold", boost_strength=0.02,
                     boost_settle=settle, duty_inertia=0.99)
        with torch.no_grad():
            sp.proj.bias[:8] = 2.0  # a few columns win nearly everything at first
        before = codes_of(sp, x)
        train_on(sp, x, 800)
        mid = codes_of(sp, x)
        train_on(sp, x, 200, start=800, seed=1)
        after = codes_of(sp, x)
        entropy[settle] = usage_entropy_ratio(mid.float().sum(0))
        changed[settle] = int((mid != after).any(1).sum())  # inputs whose code moved
        assert usage_entropy_ratio(before.float().sum(0)) < 0.6
    assert entropy[50.0] >= 0.9 and entropy[0.0] >= 0.9, entropy
    assert changed[50.0] < changed[0.0], changed


def test_threshold_offsets_freeze_in_eval_and_exist_only_in_their_mode():
    sp = make_sp(columns=32, winners=4, boost_mode="threshold", boost_strength=0.05)
    train_on(sp, torch.randn(16, 32), 20)
    assert sp.offset.abs().sum() > 0
    sp.eval()
    before = sp.offset.clone()
    sp(CTX, torch.randn(8, 32))
    assert torch.equal(before, sp.offset)
    assert "offset" not in make_sp(columns=32, winners=4, boost_strength=1.0).state_dict()


def test_threshold_rate_anneals_as_one_over_t():
    sp = make_sp(columns=32, winners=4, boost_mode="threshold", boost_strength=0.2, boost_settle=100)
    assert [sp.threshold_rate(s) for s in (0, 100, 300)] == pytest.approx([0.2, 0.1, 0.05])
    assert make_sp(columns=32, winners=4, boost_mode="threshold", boost_strength=0.2).threshold_rate(10**6) == 0.2


def test_trainable_boost_with_threshold_offsets_is_refused():
    p = check_params(SpatialPooler, "sp", {"boost_mode": "threshold", "boost_trainable": True})
    with pytest.raises(GraphError, match="boost_trainable"):
        SpatialPooler.infer(p, {"x": (8,)})


# ---- metric.sp_entropy: wins counted over exactly the last 'window' steps -----------------
def make_entropy_metric(window: int, units: int = 4):
    from deephtm.nodes.metric_sp_entropy import SDREntropy
    p = check_params(SDREntropy, "usage", {"window": window})
    return SDREntropy(p, {"columns": (units,)})


def test_windowed_entropy_of_known_masks():
    m = make_entropy_metric(window=3)
    assert m.values("sp_entropy") == {}  # nothing counted yet
    masks = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    for mask in masks:
        m(CTX, torch.tensor([mask], dtype=torch.float) * 0.7)
    # The window holds the last three steps: wins per column 2, 0, 1, 1 (column 1 won only
    # in the first step, which has left it). Shares 1/2, 1/4, 1/4:
    # H = ln2/2 + 2 * ln4/4 = 1.5 ln2, over ln4 = 2 ln2.
    v = m.values("sp_entropy")
    assert v["sp_entropy"] == pytest.approx(0.75)
    assert v["sp_active_columns"] == 3


def test_windowed_entropy_counts_every_stream_and_reaches_one_when_even():
    m = make_entropy_metric(window=2)
    m(CTX, torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    m(CTX, torch.tensor([[0, 0, 1.0, 0], [0, 0, 0, 1.0]]))
    assert m.values("u") == {"u": pytest.approx(1.0), "sp_active_columns": 4}
    m(CTX, torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]]))  # the first step leaves the window
    counts = torch.tensor([2.0, 1.0, 1.0])
    share = counts / counts.sum()
    assert m.value() == pytest.approx(float(-(share * share.log()).sum()) / math.log(4))


# ---- the seed network, shrunk: boosting spreads the wins over the columns ------------------
def test_short_sine_training_uses_more_columns_with_boosting(tmp_path):
    from deephtm.graph.graphfile import Graph
    from deephtm.train.trainer import Trainer
    from helpers import small_sine_dict

    usage = {}
    for boosted in (False, True):
        d = small_sine_dict(steps=600, columns=64)
        sp = next(n for n in d["nodes"] if n["type"] == "htm.sp")
        sp["params"].update(boost_mode="relative", boost_strength=1.0 if boosted else 0.0)
        d["training"]["checkpoint_every"] = 0
        summary = Trainer(Graph.from_dict(d), out=tmp_path / str(boosted)).run()
        saved = json.loads((tmp_path / str(boosted) / "summary.json").read_text())["metrics"]
        assert saved["sp_entropy"] == pytest.approx(summary["metrics"]["sp_entropy"])
        usage[boosted] = summary["metrics"]
    assert usage[True]["sp_active_columns"] > usage[False]["sp_active_columns"] + 10, usage
    assert usage[True]["sp_entropy"] > usage[False]["sp_entropy"] + 0.1, usage


def test_threshold_offsets_resume_exactly(tmp_path):
    """The offsets and the annealed rate (which reads the step) continue where a run stopped."""
    from deephtm.graph.graphfile import Graph
    from deephtm.train.checkpoint import load_checkpoint
    from deephtm.train.trainer import Trainer
    from helpers import small_sine_dict

    d = small_sine_dict(steps=60, columns=32)
    sp = next(n for n in d["nodes"] if n["type"] == "htm.sp")
    sp["params"].update(boost_mode="threshold", boost_strength=0.01, boost_settle=10)
    d["training"].update(checkpoint_every=0, log_every=30)
    Trainer(Graph.from_dict(d), out=tmp_path / "straight").run()
    Trainer(Graph.from_dict(d), out=tmp_path / "halves").run(30)
    Trainer(Graph.from_dict(d), out=tmp_path / "halves", resume=True).run()
    a, _ = load_checkpoint(tmp_path / "straight")
    b, _ = load_checkpoint(tmp_path / "halves")
    offsets = [k for k in a if k.endswith("offset")]
    assert offsets and all(a[k].abs().sum() > 0 for k in offsets)
    assert all(torch.equal(a[k], b[k]) for k in a)
