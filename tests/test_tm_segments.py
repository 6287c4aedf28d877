"""htm.tm_segments: HTM's segment-level matching, growth and winners, on hand-made column SDRs,
plus its checkpoint round trip and its errors."""
import json
from pathlib import Path

import pytest
import torch

from deephtm.errors import DeepHTMError, GraphError, ShapeError
from deephtm.graph.graphfile import load_graph
from deephtm.node import Context
from deephtm.graph.registry import get
from deephtm.graph.resolve import check_params, resolve
from deephtm.train.trainer import Trainer

from helpers import short_high_order_dict

ROOT_GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "high_order.json"
C, K, W = 32, 4, 4  # columns, cells per column, active columns per symbol
SMALL = {"cells_per_column": K, "segments_per_cell": 4, "synapses_per_segment": 8, "sample_size": W,
         "threshold": 2.0, "match_threshold": 3, "initial_weight": 0.3, "temperature": 0.5,
         "false_prediction_weight": 0.5}


def make_tm(**params):
    cls = get("htm.tm_segments")
    p = check_params(cls, "tm", {**SMALL, **params})
    shapes = {"columns": (C,), "context": (C * K,), "winner_context": (C * K,)}
    cls.infer(p, shapes)
    tm = cls(p, shapes)
    tm.setup(1, torch.Generator().manual_seed(0))
    return tm


def ctx():
    return Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())


def sdr(symbol: int) -> torch.Tensor:
    cols = torch.zeros(1, C)
    cols[0, symbol * W:(symbol + 1) * W] = 1.0
    return cols


class Runner:
    """Feeds symbols to a TM, wiring cells -> context and winners -> winner_context as a
    graph's delayed edges do; each learning step ends with the graph's SGD step."""

    def __init__(self, tm):
        self.tm = tm
        self.opt = torch.optim.SGD([tm.syn_w], lr=tm.p["distal_lr"])
        self.reset()

    def reset(self):
        self.cells = self.winners = None

    def step(self, symbol: int) -> dict:
        out = self.tm(ctx(), sdr(symbol), context=self.cells, winner_context=self.winners)
        if self.tm.training:
            self.opt.zero_grad()
            out["loss"].backward()
            self.opt.step()
        self.cells, self.winners = out["cells"].detach(), out["winners"].detach()
        return out

    def sequence(self, symbols) -> list[dict]:
        self.reset()  # no context before the first element: it bursts
        return [self.step(s) for s in symbols]


def winner_set(out) -> set[int]:
    return set(out["winners"][0].nonzero().squeeze(1).tolist())


def test_a_new_context_grows_a_new_segment_from_the_previous_winners():
    tm = make_tm()
    run = Runner(tm)
    a = run.step(0)
    assert int((tm.seg_stamp >= 0).sum()) == 0  # no previous winners: nothing to grow from
    prev = winner_set(a)
    assert len(prev) == W  # a bursting column has one winner
    b = run.step(1)
    assert float(b["anomaly"]) == 1.0
    segs = (tm.seg_stamp >= 0).nonzero().squeeze(1)
    assert segs.numel() == W  # one new segment per bursting column, on its winner cell
    assert {int(s) // tm.S for s in segs} == winner_set(b)
    for s in segs:
        pre = tm.syn_pre[s]
        assert set(pre[pre >= 0].tolist()) == prev  # sampled from the previous winners
    # A context it has never seen (symbol 2 before 1) grows further segments on other cells.
    run.reset()
    run.step(2)
    c = run.step(1)
    assert int((tm.seg_stamp >= 0).sum()) == 2 * W
    assert winner_set(c).isdisjoint(winner_set(b))


def test_a_transition_is_learned_within_a_few_presentations():
    tm = make_tm()
    run = Runner(tm)
    anomalies = [float(run.sequence([0, 1])[1]["anomaly"]) for _ in range(5)]
    assert anomalies[0] == 1.0
    assert anomalies[-1] == 0.0, anomalies
    assert anomalies.index(0.0) <= 3, anomalies
    tm.eval()
    out = run.sequence([0])[0]
    tm.used_outputs = {p.name for p in tm.outputs}
    pred = out["predicted"][0]
    assert float(pred[W:2 * W].min()) > 0.5 and float(pred[2 * W:].max()) < 0.5


@pytest.mark.parametrize("fallback", [False, True])
def test_a_burst_does_not_merge_two_contexts_of_a_shared_middle(fallback):
    """A-B-C-D and X-B-C-D: after training, C and D get other cells in each context, even though
    in learning the shared part was often reached through a burst (the union of both contexts).
    With the column fallback, B after A and B after X still learn cells of their own."""
    tm = make_tm(column_fallback=fallback)
    run = Runner(tm)
    A, X, B, Cs, D, NOISE = 0, 5, 1, 2, 3, 7
    for i in range(30):
        run.step(NOISE)  # an unpredictable first element: A and X burst
        for s in ([A, B, Cs, D] if i % 2 == 0 else [X, B, Cs, D]):
            run.step(s)
    tm.eval()
    with torch.no_grad():
        in_a = run.sequence([NOISE, A, B, Cs, D])
        in_x = run.sequence([NOISE, X, B, Cs, D])
    for k in (2, 3, 4):  # B, C, D
        assert float(in_a[k]["anomaly"]) == 0.0 and float(in_x[k]["anomaly"]) == 0.0
        assert winner_set(in_a[k]).isdisjoint(winner_set(in_x[k])), k


def test_growth_only_tops_a_segment_up_to_the_sample_size():
    tm = make_tm()
    run = Runner(tm)
    for _ in range(4):
        run.sequence([0, 1])
    before = tm.syn_pre.clone()
    # Now 1 follows a burst of 0 whose winners differ from the learned ones: the learned
    # segments see W active synapses already (all of 0's cells fire), so nothing grows.
    run.reset()
    run.step(0)
    out = run.step(1)
    assert float(out["anomaly"]) == 0.0
    assert torch.equal(tm.syn_pre, before)


def test_downstream_gradient_reaches_the_segment_weights_through_the_winners():
    tm = make_tm(downstream_grad=True)
    run = Runner(tm)
    for _ in range(3):
        run.sequence([0, 1])
    run.reset()
    run.step(0)
    out = tm(ctx(), sdr(1), context=run.cells, winner_context=run.winners)
    tm.syn_w.grad = None
    out["winners"][0, W * K:2 * W * K].sum().backward()
    grad = tm.syn_w.grad.coalesce() if tm.syn_w.grad.is_sparse else tm.syn_w.grad
    assert grad.is_sparse  # only the rows of the segments involved
    assert float(grad.to_dense().abs().sum()) > 0


def test_checkpoint_round_trip_keeps_the_segments_and_resumes_exactly(tmp_path):
    d = short_high_order_dict(pairs=1, swap_step=0, window=20)
    d["training"].update({"steps": 200, "checkpoint_every": 100, "log_every": 100})
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    straight = Trainer(load_graph(path), out=tmp_path / "a")
    straight.run()
    d["training"]["steps"] = 100
    path.write_text(json.dumps(d))
    Trainer(load_graph(path), out=tmp_path / "b").run()
    d["training"]["steps"] = 200
    path.write_text(json.dumps(d))
    resumed = Trainer(load_graph(path), out=tmp_path / "b", resume=True)
    tm = resumed.model.nodes["tm"]
    assert int((tm.seg_stamp >= 0).sum()) > 0 and int(tm.clock) == 100  # buffers came back
    assert tm.p["fallback_steps"] > 1 and len(tm.past_cells) == tm.p["fallback_steps"] - 1  # extra state too
    resumed.run()
    a, b = straight.model.nodes["tm"], resumed.model.nodes["tm"]
    for name in ("syn_pre", "seg_stamp", "clock"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.allclose(a.syn_w, b.syn_w)
    assert all(torch.equal(x, y) for x, y in zip(a.past_cells, b.past_cells, strict=True))


def test_a_checkpoint_of_version_1_resumes_with_no_earlier_cells():
    """Version 1 kept no earlier steps' cells: it migrates to none, and the fallback reads one step back."""
    tm = make_tm(column_fallback=True, fallback_steps=3)
    tm.past_cells = [torch.ones(1, C * K, dtype=torch.bool)]
    old = {"clock": torch.zeros((), dtype=torch.int64), "seg_stamp": tm.seg_stamp.clone()}
    tensors, extra = type(tm).migrate_state(1, old, None)
    assert "clock" in tensors
    tm.set_extra_state(extra)
    assert tm.past_cells == []
    assert type(tm).migrate_state(4, {}, None) is None


@pytest.mark.parametrize("old_version", [1, 2])
def test_older_checkpoints_count_every_segment_as_grown_out_of_a_burst(old_version):
    """Versions 1 and 2 did not record where a segment grew: all migrate as grown out of a burst,
    whose false predictions are weakened as they were then."""
    tm = make_tm()
    stamp = torch.arange(tm.seg_stamp.shape[0])
    tensors, extra = type(tm).migrate_state(old_version, {"seg_stamp": stamp}, {"past_steps": 0})
    assert tensors["seg_specific"].shape == stamp.shape and not bool(tensors["seg_specific"].any())
    assert torch.equal(tensors["seg_stamp"], stamp)
    tm.load_state_dict({**tm.state_dict(), **tensors})
    assert not bool(tm.seg_specific.any())


def test_shape_and_param_errors():
    cls = get("htm.tm_segments")
    p = check_params(cls, "tm", SMALL)
    with pytest.raises(ShapeError, match="context"):
        cls.infer(p, {"columns": (C,), "context": (C * K + 1,)})
    with pytest.raises(ShapeError, match="columns"):
        cls.infer(p, {"columns": (4, 8)})
    with pytest.raises(GraphError, match="segments_per_cell"):
        check_params(cls, "tm", {"segments_per_cell": 0})
    # param_count covers the segment pool, so an oversized one is refused before allocating.
    g = load_graph(ROOT_GRAPH)
    g.node("tm").params.update(cells_per_column=256, segments_per_cell=1024, synapses_per_segment=1024)
    with pytest.raises(DeepHTMError, match="allocate"):
        resolve(g)
    small = dict(p, segments_per_cell=2, synapses_per_segment=3)
    # Per synapse a weight and a presynaptic index; per segment a stamp and its origin; the clock.
    assert cls.param_count(small, {"columns": (C,)}) == C * K * 2 * (2 * 3 + 2) + 1
    built = make_tm(segments_per_cell=2, synapses_per_segment=3)
    allocated = sum(t.numel() for t in built.parameters()) + sum(t.numel() for t in built.buffers())
    assert allocated == cls.param_count(small, {"columns": (C,)})


def test_anomaly_is_zero_on_a_learned_sequence_and_one_on_a_novel_one():
    tm = make_tm()
    run = Runner(tm)
    NOISE = 7
    for _ in range(8):
        run.step(NOISE)
        for s in (0, 1, 2, 3):
            run.step(s)
    tm.eval()
    with torch.no_grad():
        learned = run.sequence([NOISE, 0, 1, 2, 3])
        novel = run.sequence([NOISE, 4, 6, 5, 0])
    assert [float(o["anomaly"]) for o in learned[2:]] == [0.0, 0.0, 0.0]
    assert [float(o["anomaly"]) for o in novel[1:]] == [1.0, 1.0, 1.0, 1.0]


def test_streams_of_a_batch_share_the_segments_and_learn_each_their_own_transition():
    tm = make_tm()
    tm.setup(2, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD([tm.syn_w], lr=tm.p["distal_lr"])
    first, second = torch.cat([sdr(0), sdr(2)]), torch.cat([sdr(1), sdr(3)])  # stream 0: 0-1, stream 1: 2-3
    for _ in range(5):
        a = tm(ctx(), first)
        b = tm(ctx(), second, context=a["cells"].detach(), winner_context=a["winners"].detach())
        opt.zero_grad()
        b["loss"].backward()
        opt.step()
    assert b["winners"].shape == (2, C * K) and b["anomaly"].shape == (2,)
    assert b["anomaly"].tolist() == [0.0, 0.0]
    tm.eval()
    with torch.no_grad():  # stream 0 now sees 2: it predicts 3, what stream 1 taught
        a = tm(ctx(), torch.cat([sdr(2), sdr(0)]))
        b = tm(ctx(), torch.cat([sdr(3), sdr(1)]), context=a["cells"], winner_context=a["winners"])
    assert b["anomaly"].tolist() == [0.0, 0.0]


def punishment_of_a_learned_successor(prefix: list[int], **params) -> float:
    """Learns prefix + [1], then shows prefix + [2]: the summed weight change of the segments
    of symbol 1's columns, which predicted 1 and saw 2 come instead."""
    tm = make_tm(**params)
    run = Runner(tm)
    for _ in range(6):
        run.sequence(prefix + [1])
    assert float(run.sequence(prefix + [1])[-1]["anomaly"]) == 0.0  # learned
    before = tm.syn_w.detach().clone()
    run.sequence(prefix + [2])
    seg_col = torch.arange(tm.syn_w.shape[0]) // (tm.S * K)
    ones = (seg_col >= W) & (seg_col < 2 * W)
    return float((tm.syn_w.detach() - before)[ones].sum())


def test_a_false_prediction_from_a_burst_has_its_own_weight():
    # After a reset, 0 bursts: 1 was predicted by the cells of bursting columns.
    only_specific = {"false_prediction_weight": 1.0, "burst_false_prediction_weight": 0.0}
    only_burst = {"false_prediction_weight": 0.0, "burst_false_prediction_weight": 1.0}
    assert punishment_of_a_learned_successor([0], **only_specific) == 0.0
    assert punishment_of_a_learned_successor([0], **only_burst) < 0.0
    # 5 bursts, 0 is predicted in its own cells: 1 was predicted by a specific context.
    assert punishment_of_a_learned_successor([5, 0], **only_burst) == 0.0
    assert punishment_of_a_learned_successor([5, 0], **only_specific) < 0.0



def punishment_when_a_burst_of_its_context_symbol_drives_it(prefix: list[int], shown: int = 6,
                                                             **params) -> float:
    """Learns prefix, then shows prefix + [1] `shown` times (1's segment grows from the cells of
    0, the last of prefix, predicted in its context if prefix has one), then shows 0 after a reset,
    so 0 bursts, and 2 instead of 1: the summed weight change of the segments of 1's columns,
    which the burst drove."""
    tm = make_tm(**params)
    run = Runner(tm)
    for _ in range(6):
        run.sequence(prefix)
    for _ in range(shown):
        out = run.sequence(prefix + [1])
    assert (float(out[-1]["anomaly"]) == 0.0) == (shown > 1)  # learned after a few presentations
    before = tm.syn_w.detach().clone()
    run.sequence([0, 2])
    seg_col = torch.arange(tm.syn_w.shape[0]) // (tm.S * K)
    ones = (seg_col >= W) & (seg_col < 2 * W)
    return float((tm.syn_w.detach() - before)[ones].sum())


def test_spare_specific_segments_keeps_a_context_segment_from_a_burst_of_its_symbol():
    only_burst = {"false_prediction_weight": 0.0, "burst_false_prediction_weight": 1.0}
    # 5-0, then 5-0-1: 1 grew from 0's cells in the context of 5 (0 predicted). A burst of 0 drives it.
    assert punishment_when_a_burst_of_its_context_symbol_drives_it([5, 0], **only_burst) < 0.0
    assert punishment_when_a_burst_of_its_context_symbol_drives_it(
        [5, 0], spare_specific_segments=True, **only_burst) == 0.0
    # 0-1 after a reset: 1 grew from a burst of 0, as a noise element's successor does; still weakened.
    assert punishment_when_a_burst_of_its_context_symbol_drives_it(
        [0], spare_specific_segments=True, **only_burst) < 0.0
    # 5-0-1 seen once: the segment has not learned its context yet (a rare one); still weakened.
    assert punishment_when_a_burst_of_its_context_symbol_drives_it(
        [5, 0], shown=1, spare_specific_segments=True, **only_burst) < 0.0


def successors_of_a_shared_context(false_prediction_weight: float) -> tuple[float, float, float]:
    """0-1-2 twice as often as 0-1-3, a random noise element (4-7) after each. After training:
    the predicted probability of 2 and of 3 after 0-1 (lowest over their columns) and the
    highest of any noise element after 0-1-2."""
    tm = make_tm(false_prediction_weight=false_prediction_weight)
    run = Runner(tm)
    noise = torch.Generator().manual_seed(3)
    for i in range(90):
        for s in ([0, 1, 3] if i % 3 == 0 else [0, 1, 2]):
            run.step(s)
        run.step(int(torch.randint(4, 8, (1,), generator=noise)))
    tm.eval()
    tm.used_outputs = {p.name for p in tm.outputs}
    with torch.no_grad():
        out = run.sequence([7, 0, 1, 2])
    after_1, after_2 = out[2]["predicted"][0], out[3]["predicted"][0]
    return float(after_1[2 * W:3 * W].min()), float(after_1[3 * W:4 * W].min()), float(after_2[4 * W:].max())


def test_the_false_prediction_weight_decides_whether_a_successor_seen_a_third_of_the_time_survives():
    """A successor seen a fraction q of the time keeps predicting while the weight is below about
    q / (1 - q) (here 1/2): at 0.25 the context 0-1 predicts both 2 and 3, as a symbol shared by
    several sequences must; at 0.75 only the usual 2. Noise successors are dropped at both."""
    two, three, noise = successors_of_a_shared_context(0.25)
    assert two > 0.5 and three > 0.5 and noise < 0.5, (two, three, noise)
    two, three, noise = successors_of_a_shared_context(0.75)
    assert two > 0.5 and three < 0.5 and noise < 0.5, (two, three, noise)



def column_cells(out, symbol: int) -> set[int]:
    """The active cells of a symbol's columns (indices into all cells)."""
    return set(out["cells"][0].view(C * K)[symbol * W * K:(symbol + 1) * W * K].nonzero().squeeze(1).tolist())


@pytest.mark.parametrize("fallback", [False, True])
def test_column_fallback_passes_on_the_context_of_a_first_element_predicted_in_a_rare_cell(fallback):
    """0-1-2 and 3-1-4 are learned from bursts of 0 and 3 (no context before them); 5-0 is learned
    too, so after a burst of 5, 0 fires in a cell of its own, from which 1 was never learned.
    Without the fallback 1 bursts and predicts both its successors, 2 and 4; with it, 1 fires
    the cells it fires after 0 and predicts 2 only."""
    tm = make_tm(column_fallback=fallback)
    run = Runner(tm)
    for _ in range(8):
        run.sequence([0, 1, 2])
        run.sequence([3, 1, 4])
        run.sequence([5, 0])
    tm.eval()
    tm.used_outputs = {p.name for p in tm.outputs}
    with torch.no_grad():
        learned = run.sequence([0, 1, 2])
        rare = run.sequence([5, 0, 1, 2])
    assert float(rare[1]["anomaly"]) == 0.0  # 0 was predicted, in 5's cell for it...
    assert len(column_cells(rare[1], 0)) == W
    assert float(rare[2]["anomaly"]) == 1.0  # ...and nothing predicts 1 from there: not predicted
    after_1 = rare[2]["predicted"][0]
    if fallback:
        # 1 fires its cells of the 0 context (and its winner), not its whole columns...
        assert column_cells(learned[1], 1) <= column_cells(rare[2], 1)
        assert len(column_cells(rare[2], 1)) < W * K
        # ...so it predicts 2 only, which then fires in its cells of the learned sequence.
        assert float(after_1[2 * W:3 * W].min()) > 0.5 and float(after_1[4 * W:5 * W].max()) < 0.5
        assert float(rare[3]["anomaly"]) == 0.0
        assert column_cells(rare[3], 2) == column_cells(learned[2], 2)
    else:
        assert len(column_cells(rare[2], 1)) == W * K  # a burst: every context of 1
        assert float(after_1[2 * W:3 * W].min()) > 0.5 and float(after_1[4 * W:5 * W].min()) > 0.5


def live_columns_read(tm, seg: int) -> list[int]:
    """Presynaptic column of each live synapse of a segment."""
    pre, w = tm.syn_pre[seg], tm.syn_w.detach()[seg]
    return [int(c) for c in (pre[(pre >= 0) & (w > 0)] // K).tolist()]


@pytest.mark.parametrize("one_per_column", [False, True])
def test_top_up_one_per_column_keeps_an_active_segment_off_another_contexts_cells(one_per_column):
    """1 is learned after 0 (one cell per column of 0). Then 0 half bursts: three of its columns
    burst, the fourth fires another cell, and every winner is another cell than the segment reads.
    The segment still predicts 1 through the bursting columns and tops itself up from those
    winners; with top_up_one_per_column it grows none onto a column it already reads."""
    tm = make_tm(top_up_one_per_column=one_per_column)
    run = Runner(tm)
    for _ in range(6):
        run.sequence([0, 1])
    ones = [s for s in (tm.seg_stamp >= 0).nonzero().squeeze(1).tolist() if W <= s // (tm.S * K) < 2 * W]
    seg = ones[0]
    tm.syn_w.data[seg][tm.syn_pre[seg] >= 0] = 0.9  # a well learned segment: 3 of its synapses predict
    read = {int(p) for p in tm.syn_pre[seg][tm.syn_pre[seg] >= 0].tolist()}
    assert sorted(live_columns_read(tm, seg)) == list(range(W))  # one cell in each column of 0
    cells, winners = torch.zeros(1, C * K), torch.zeros(1, C * K)
    for col in range(W):
        other = next(col * K + k for k in range(K) if col * K + k not in read)
        winners[0, other] = 1.0
        if col < W - 1:
            cells[0, col * K:(col + 1) * K] = 1.0  # bursting
        else:
            cells[0, other] = 1.0  # another context's cell
    out = tm(ctx(), sdr(1), context=cells, winner_context=winners)
    assert float(out["anomaly"]) == 0.0  # predicted, through the bursting columns
    cols = live_columns_read(tm, seg)
    if one_per_column:
        assert sorted(cols) == list(range(W))  # nothing grown: it still reads one cell per column
    else:
        assert len(cols) > W and len(set(cols)) == W  # a second cell in a column it already read


def presentations_until_predicted(context_initial_weight: float) -> tuple[int, int]:
    """0-1 is learned first (0 bursts: 1 learns from a burst); then 0-1-2, where 2 follows a
    predicted 1. Presentations of each until its last element is predicted."""
    tm = make_tm(context_initial_weight=context_initial_weight)
    run = Runner(tm)
    first = next(i for i in range(1, 20) if float(run.sequence([0, 1])[-1]["anomaly"]) == 0.0)
    assert float(run.sequence([0, 1])[-1]["anomaly"]) == 0.0
    second = next(i for i in range(1, 20) if float(run.sequence([0, 1, 2])[-1]["anomaly"]) == 0.0)
    return first, second


def test_context_initial_weight_speeds_up_a_transition_from_a_predicted_element_only():
    """SMALL: threshold 2 over 4 synapses, initial_weight 0.3, distal_lr 0.1."""
    out_of_burst, from_context = presentations_until_predicted(0.0)
    fast_burst, fast_context = presentations_until_predicted(0.45)
    assert fast_burst == out_of_burst  # a transition out of a burst keeps initial_weight
    assert fast_context < from_context, (fast_context, from_context)
    # Grown at 0.45 and raised by one step of 0.1 in the same update: 4 x 0.55 = 2.2 predicts.
    assert fast_context == 2


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_fallback_steps_keep_the_context_of_a_chain_started_in_a_rare_cell(steps):
    """0-1-2-3 and 4-1-2-5 share their middle. 6-0-1 is learned too, so after a burst of 6, 0
    fires in a cell of its own and 1 in a cell of that variant, from which 2 was never learned.
    Read one step back, 2 falls back to its cells of every context of 1, the 4 context's too;
    read two steps back, 1's cells of the 0 context tell it which, and it fires those only."""
    tm = make_tm(column_fallback=True, fallback_steps=steps)
    run = Runner(tm)
    for _ in range(8):
        run.sequence([0, 1, 2, 3])
        run.sequence([4, 1, 2, 5])
        run.sequence([6, 0, 1])
    tm.eval()
    tm.used_outputs = {p.name for p in tm.outputs}
    with torch.no_grad():
        learned = run.sequence([0, 1, 2, 3])
        other = run.sequence([4, 1, 2, 5])
        rare = run.sequence([6, 0, 1, 2, 3])
    assert [float(o["anomaly"]) for o in rare[1:4]] == [0.0, 0.0, 1.0]  # 0 and 1 predicted, 2 not
    assert len(column_cells(rare[2], 1)) == W  # 1 fired in one cell per column: its 6-0 variant
    mine, others = column_cells(learned[2], 2), column_cells(other[2], 2)
    assert mine and others and not mine & others
    assert mine <= column_cells(rare[3], 2)  # 2 fires its cells of the 0 context either way...
    assert float(rare[3]["predicted"][0][3 * W:4 * W].min()) > 0.5  # ...and predicts 3
    if steps > 1:  # 3 steps back finds nothing (2 was never learned after 6-0-1): 2 steps back
        assert not others & column_cells(rare[3], 2)  # but not those of the 4 context
        assert float(rare[4]["anomaly"]) == 0.0
        assert column_cells(rare[4], 3) == column_cells(learned[3], 3)
    else:
        assert others <= column_cells(rare[3], 2)  # both contexts merged
