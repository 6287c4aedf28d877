"""htm.tm's fused step (one autograd function, backward by hand) against autograd.

The hinge losses and the column gradients are checked numerically (gradcheck, float64); the
straight-through softmax of the winners has no numerical derivative to check (the forward
is a one-hot), so the whole step is checked against the same step recorded op by op by
autograd (TemporalMemory.fused = False): outputs, every gradient, the usage counts, and the
weights after training steps, alone and inside a trained graph.
"""
import copy

import pytest
import torch

from deephtm.anomaly.detect import Detector
from deephtm.anomaly.fast_path import OnlineFastPath
from deephtm.graph.graphfile import load_graph
from deephtm.node import Context
from deephtm.nodes.htm_tm import TemporalMemory
from deephtm.kernels import tm_step as tm_fused
from deephtm.kernels.tm_step import FusedTMStep
from deephtm.train.trainer import Trainer

from helpers import ROOT, Densify

C, K, APICAL = 6, 3, 4


def make_tm(dtype=torch.float32, **params) -> TemporalMemory:
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=K, init_std=0.3, **params)
    torch.manual_seed(0)
    tm = TemporalMemory(p, {"columns": (C,), "context": (C * K,), "winner_context": (C * K,),
                            "apical": (APICAL,)}).to(dtype)
    tm.setup(2, torch.Generator().manual_seed(1))
    tm.used_outputs = {"winners", "cells", "predicted", "anomaly", "loss"}
    return tm


def column_sets(step: int, dtype=torch.float32) -> torch.Tensor:
    """Two streams with different numbers of active columns (2 and 3)."""
    g = torch.Generator().manual_seed(step % 4)
    cols = torch.zeros(2, C, dtype=dtype)
    cols[0, torch.randperm(C, generator=g)[:2]] = 1.0
    cols[1, torch.randperm(C, generator=g)[:3]] = 1.0
    return cols


def rows_of(active: torch.Tensor):
    on = active != 0
    rows = on.to(active.dtype).topk(int(on.sum(1).max()), dim=1).indices
    return rows, on.gather(1, rows).to(active.dtype)


def step_args(tm, cols, streams: int):
    """The active columns and padding flag to pass: two streams of 2 and 3 active columns
    (found by the step, padded), or the first stream alone (no padding)."""
    if streams == 2:
        return None, True
    return tm.first_units(cols != 0, int((cols != 0).sum())), False


@pytest.mark.parametrize("streams", [2, 1])
def test_hinge_loss_gradient_is_numerically_right(streams):
    tm = make_tm(torch.float64, downstream_grad=False)
    cols = column_sets(0, torch.float64)[:streams]
    ctx_cells = torch.zeros(2, C * K, dtype=torch.float64)
    ctx_cells[0, [1, 5, 9]] = 1.0
    ctx_cells[1, [0, 7]] = 1.0
    winners = torch.zeros_like(ctx_cells)
    winners[0, [5, 9]] = 1.0
    winners[1, [7]] = 1.0
    rows, scale = rows_of(ctx_cells[:streams])
    learn_rows, learn_scale = rows_of(winners[:streams])
    distal = tm.distal.detach().clone().requires_grad_(True)
    apical_w = tm.apical.detach().clone().requires_grad_(True)
    apical = torch.randn(streams, APICAL, dtype=torch.float64, requires_grad=True)
    active, padded = step_args(tm, cols, streams)

    def loss(distal, apical_w, apical):
        return FusedTMStep.apply(tm, cols, Densify.apply(distal), rows, scale, learn_rows, learn_scale, apical_w, apical,
                                 True, True, active, True, padded)[2]

    assert loss(distal, apical_w, apical) > 0  # some hinges are active: the check has gradients to check
    assert torch.autograd.gradcheck(loss, (distal, apical_w, apical))


@pytest.mark.parametrize("streams, active_grad_only", [(2, False), (1, False), (2, True), (1, True)])
def test_column_gradients_are_numerically_right(streams, active_grad_only):
    # active_grad_only: the active columns' gradient only (what htm.sp reads), worked out on their cells
    tm = make_tm(torch.float64)
    cols = column_sets(1, torch.float64)[:streams]
    on = cols != 0
    ctx_cells = torch.zeros(streams, C * K, dtype=torch.float64)
    ctx_cells[:, [2, 4, 12]] = 1.0
    rows, scale = rows_of(ctx_cells)
    readout = torch.randn(2, streams, C * K, dtype=torch.float64)
    active, padded = step_args(tm, cols, streams)

    def outputs(active_values):
        # Only the active columns' values move: a zero column turned non-zero is another input.
        columns = torch.zeros_like(cols).masked_scatter(on, active_values)
        winners, cells, loss, *_ = FusedTMStep.apply(tm, columns, tm.distal.detach(), rows, scale, None, None,
                                                     None, None, True, True, active, True, padded,
                                                     active_grad_only)
        return (winners * readout[0]).sum() + (cells * readout[1]).sum() + loss

    values = torch.rand(int(on.sum()), dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(outputs, (values.requires_grad_(True),))


@pytest.mark.parametrize("fan_out", [0, 6])
@pytest.mark.parametrize("streams", [2, 1])
def test_columns_marked_by_an_sp_get_the_active_columns_gradient_only(fan_out, streams):
    # htm.sp marks its columns: it reads their gradient only where they are non-zero. The TM
    # then leaves out every inactive column's winner and firing; the active ones' gradient
    # is what it is without the mark, and the distal gradient the same.
    from deephtm.kernels.grad_hints import mark_grad_nonzero_only

    tm = make_tm(fan_out=fan_out)
    tm.used_outputs = {"winners", "cells", "anomaly", "loss"}
    tm.setup(streams, torch.Generator().manual_seed(1))
    cols = (column_sets(3) * torch.tensor([[0.7], [1.3]]))[:streams]
    ctx_cells = torch.zeros(streams, C * K)
    ctx_cells[:, [2, 4, 12]] = 1.0
    readout = torch.randn(2, streams, C * K, generator=torch.Generator().manual_seed(4))
    grads = []
    for marked in (False, True):
        node = copy.deepcopy(tm)
        columns = cols.clone().requires_grad_(True)
        if marked:
            mark_grad_nonzero_only(columns)
        ctx = Context(step=0, batch=streams, device=torch.device("cpu"), generator=torch.Generator().manual_seed(2))
        out = node(ctx, columns=columns, context=ctx_cells)
        ((out["winners"] * readout[0]).sum() + (out["cells"] * readout[1]).sum() + out["loss"]).backward()
        grads.append((columns.grad, node.distal.grad.to_dense()))
    (plain, plain_distal), (marked, marked_distal) = grads
    on = cols != 0
    assert torch.allclose(marked[on], plain[on], atol=1e-6)
    assert (marked[~on] == 0).all() and (plain[~on] != 0).any()  # the unmarked step passed them some
    assert torch.allclose(marked_distal, plain_distal, atol=1e-6)


def test_a_batchs_distal_gradient_holds_each_gathered_row_once():
    # 6 streams gather 4 rows each of 10, many the same, padding rows weighing 0
    gen = torch.Generator().manual_seed(3)
    rows = torch.randint(0, 10, (6, 4), generator=gen)
    scale = (torch.rand(6, 4, generator=gen) < 0.8).float()
    grad_d = torch.randn(6, 10, generator=gen)
    got = tm_fused.distal_grad(rows, scale, grad_d, (10, 10))
    want = tm_fused.row_sparse_grad(rows, scale, grad_d, (10, 10)).coalesce()
    assert got.is_coalesced() and got.indices().tolist() == [sorted(set(rows.flatten().tolist()))]
    assert torch.equal(got.indices(), want.indices())
    assert torch.allclose(got.values(), want.values(), atol=1e-6)


def test_softmax_on_the_active_columns_only_gives_every_gradient_of_the_full_one():
    # Given the active columns (padded with an inactive one), the step keeps their cells'
    # softmax only; the inactive columns' cells get no gradient through it either way.
    tm = make_tm(torch.float64)
    cols = column_sets(2, torch.float64) * torch.tensor([[0.7], [1.3]], dtype=torch.float64)
    act = tm.first_units(cols != 0, 4)  # stream 0 has 2 active columns, stream 1 has 3
    ctx_cells = torch.zeros(2, C * K, dtype=torch.float64)
    ctx_cells[:, [2, 4, 12]] = 1.0
    rows, scale = rows_of(ctx_cells)
    readout = torch.randn(2, C * K, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    grads = []
    for active in (None, act):
        columns = cols.clone().requires_grad_(True)
        distal = tm.distal.detach().clone().requires_grad_(True)
        apical = torch.randn(2, APICAL, dtype=torch.float64, generator=torch.Generator().manual_seed(6),
                             requires_grad=True)
        winners, _, loss, *_ = FusedTMStep.apply(tm, columns, Densify.apply(distal), rows, scale, None, None,
                                                 tm.apical, apical, False, True, active)
        total = loss + (winners * readout).sum()
        grads.append(torch.autograd.grad(total, (columns, distal, apical)))
    for full, active_only in zip(*grads):
        assert full.abs().sum() > 0
        assert torch.allclose(full, active_only, atol=1e-12)


def run_both(wiring: str, steps: int, **params):
    """The fused and the autograd step side by side on the same inputs, with SGD on the
    distal and apical weights; asserts each step's outputs and gradients agree."""
    fused = make_tm(**params)
    plain = copy.deepcopy(fused)
    plain.fused = False
    plain.setup(2, torch.Generator().manual_seed(1))
    ctx = Context(step=0, batch=2, device=torch.device("cpu"), generator=torch.Generator())
    readout = torch.randn(C * K, generator=torch.Generator().manual_seed(2))
    prev = {id(fused): [torch.zeros(2, C * K)] * 2, id(plain): [torch.zeros(2, C * K)] * 2}
    for step in range(steps):
        apical = torch.randn(2, APICAL, generator=torch.Generator().manual_seed(step))
        got = []
        for tm in (fused, plain):
            cols = column_sets(step).requires_grad_(True)
            ap = apical.clone().requires_grad_(True)
            win, cells = prev[id(tm)]
            if wiring == "htm":  # context: the previous active cells; learning from the previous winners
                out = tm(ctx, columns=cols, context=cells, winner_context=win, apical=ap)
            else:
                out = tm(ctx, columns=cols, context=win, apical=ap)
            total = out["loss"] + (out["winners"] @ readout).sum() + 0.1 * out["cells"].sum() + \
                out["predicted"].sum()
            wrt = [tm.distal, tm.apical, cols, ap]
            grads = torch.autograd.grad(total, wrt, allow_unused=True)
            grads = [torch.zeros_like(x) if g is None else g.to_dense() for g, x in zip(grads, wrt)]
            with torch.no_grad():
                tm.distal.sub_(0.1 * grads[0])
                tm.apical.sub_(0.1 * grads[1])
            prev[id(tm)] = [out["winners"].detach(), out["cells"].detach()]
            got.append(({k: v.detach() for k, v in out.items()}, grads))
        (out_f, grads_f), (out_p, grads_p) = got
        for port in out_p:
            assert torch.allclose(out_f[port].float(), out_p[port].float(), atol=1e-5, rtol=1e-3), (step, port)
        for name, a, b in zip(("distal", "apical", "columns", "apical input"), grads_f, grads_p):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (step, name)
    return fused, plain


@pytest.mark.parametrize("wiring", ["sine", "htm"])
@pytest.mark.parametrize("match_threshold", [0.0, 0.2])
@pytest.mark.parametrize("small", [None, 0])
def test_fused_step_matches_autograd(wiring, match_threshold, small, monkeypatch):
    if small is not None:  # the layouts of big batches (transposed softmax, matrix-vector sums)
        monkeypatch.setattr(tm_fused, "SMALL", small)
    fused, plain = run_both(wiring, 16, match_threshold=match_threshold)
    assert torch.allclose(fused.distal, plain.distal, atol=1e-5)
    assert torch.allclose(fused.apical, plain.apical, atol=1e-5)
    assert torch.equal(fused.usage, plain.usage)
    if match_threshold:
        assert fused.usage.sum() > 0  # least-used winners were picked, and alike


@pytest.mark.parametrize("wiring", ["sine", "htm"])
def test_graded_anomaly_matches_autograd(wiring):
    fused, plain = run_both(wiring, 12, anomaly_mode="graded")
    assert torch.allclose(fused.distal, plain.distal, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_graded_anomaly_counts_each_active_column_by_its_confidence(fused):
    tm = make_tm(anomaly_mode="graded", threshold=0.5, temperature=0.1)
    tm.fused = fused
    with torch.no_grad():
        tm.distal.zero_()
        # Context cell 0 depolarizes column 0's first cell far past the threshold, column 1's
        # exactly to it and column 2's a temperature below it; columns 3-5 get nothing.
        tm.distal[0, 0 * K] = 2.0
        tm.distal[0, 1 * K + 1] = 0.5
        tm.distal[0, 2 * K + 2] = 0.4
    context = torch.zeros(2, C * K)
    context[:, 0] = 1.0
    columns = torch.zeros(2, C)
    columns[0, [0, 1, 2]] = 1.0  # the predicted, the borderline and the nearly predicted column
    columns[1, [0, 3]] = 1.0  # one predicted, one with no input at all
    ctx = Context(step=0, batch=2, device=torch.device("cpu"), generator=torch.Generator())
    graded = tm(ctx, columns=columns, context=context)["anomaly"]
    sig = torch.sigmoid(torch.tensor([15.0, 0.0, -1.0, -5.0]))
    assert torch.allclose(graded, torch.stack([1 - (sig[0] + sig[1] + sig[2]) / 3, 1 - (sig[0] + sig[3]) / 2]),
                          atol=1e-5)
    tm.p["anomaly_mode"] = "binary"
    binary = tm(ctx, columns=columns, context=context)["anomaly"]
    # Binary: only column 0 is predicted (column 1's input equals the threshold, not above it).
    assert torch.allclose(binary, torch.tensor([2 / 3, 1 / 2]))
    # Graded is lower where a column is nearly predicted, and the same where columns are
    # clearly predicted or clearly not.
    assert graded[0] < binary[0] - 0.1 and abs(float(graded[1] - binary[1])) < 0.01


def test_fused_step_without_downstream_gradient_matches_autograd():
    fused, plain = run_both("htm", 10, downstream_grad=False)
    assert torch.allclose(fused.distal, plain.distal, atol=1e-5)


def test_own_outputs_come_back_as_their_rows():
    tm = make_tm()
    ctx = Context(step=0, batch=2, device=torch.device("cpu"), generator=torch.Generator())
    out = tm(ctx, columns=column_sets(0), context=torch.zeros(2, C * K))
    rows, scale = tm.rows_of(out["winners"].detach(), "context")
    # One row per active column of the busiest stream (3); the other stream's padding weighs 0.
    assert rows.shape == (2, 3) and scale.sum(1).tolist() == [2.0, 3.0]
    assert torch.equal(torch.zeros(2, C * K).scatter_add(1, rows, scale), (out["winners"] != 0).float())
    # The winners note where they are non-zero for their readers (decoder.mlp), padding left out
    assert all(torch.equal(a, b) for a, b in zip(out["winners"].nonzero_at, out["winners"].nonzero(as_tuple=True)))
    # With no context every active column bursts: all K cells of each fired.
    cell_rows, cell_scale = tm.rows_of(out["cells"].detach(), "context")
    assert cell_rows.shape == (2, 3 * K)
    assert torch.equal(torch.zeros(2, C * K).scatter_add(1, cell_rows, cell_scale), (out["cells"] != 0).float())
    # Once the context predicts one cell of a column, that column fires that cell alone, and
    # only the cells that fired come back (padded to the busiest stream's count).
    cols = column_sets(0)
    predicted = int(cols[1].nonzero()[0])  # an active column of stream 1
    with torch.no_grad():
        tm.distal.fill_(-1.0)
        tm.distal[:, predicted * K + 1] = 5.0
    out = tm(ctx, columns=cols, context=out["cells"].detach())
    fired = (out["cells"] != 0).sum(1)
    assert fired.tolist() == [2 * K, 2 * K + 1]
    cell_rows, cell_scale = tm.rows_of(out["cells"].detach(), "context")
    assert cell_rows.shape == (2, 2 * K + 1) and cell_scale.sum(1).tolist() == [2.0 * K, 2.0 * K + 1]
    assert torch.equal(torch.zeros(2, C * K).scatter_add(1, cell_rows, cell_scale), (out["cells"] != 0).float())


@pytest.mark.parametrize("match_threshold, anomaly_mode", [(0.0, "binary"), (0.2, "binary"), (0.2, "graded")])
@pytest.mark.parametrize("stream", [0, 1])
def test_one_stream_with_fixed_columns_matches_autograd(match_threshold, anomaly_mode, stream):
    # The step of `deephtm detect`: one stream, columns that take no gradient (nothing
    # upstream learns from the TM), the previous active cells as context, no downstream
    # gradient. Only the active columns' cells are worked on, and the next step gathers the
    # rows of the cells that fired only. Every seventh step no column is active.
    fused = make_tm(match_threshold=match_threshold, downstream_grad=False, anomaly_mode=anomaly_mode)
    fused.used_outputs = {"cells", "loss", "anomaly"}
    plain = copy.deepcopy(fused)
    plain.fused = False
    for tm in (fused, plain):
        tm.setup(1, torch.Generator().manual_seed(1))
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    prev = {id(fused): torch.zeros(1, C * K), id(plain): torch.zeros(1, C * K)}
    hinges = 0
    for step in range(24):
        cols = column_sets(step)[stream:stream + 1] * (step % 7 != 6)
        got = []
        for tm in (fused, plain):
            out = tm(ctx, columns=cols, context=prev[id(tm)])
            (grad,) = torch.autograd.grad(out["loss"], [tm.distal], allow_unused=True)
            grad = torch.zeros_like(tm.distal) if grad is None else grad
            with torch.no_grad():
                tm.distal.sub_(0.1 * grad.to_dense())
            prev[id(tm)] = out["cells"].detach()
            got.append(out)
        hinges += bool(got[1]["loss"] > 0)
        assert torch.equal(got[0]["cells"], got[1]["cells"]), step
        assert torch.allclose(got[0]["anomaly"], got[1]["anomaly"], atol=1e-6), step
        assert torch.allclose(got[0]["loss"], got[1]["loss"], atol=1e-6), step
    assert hinges > 12  # the loss had gradients to compare on most steps
    assert torch.allclose(fused.distal, plain.distal, atol=1e-6)
    assert torch.equal(fused.usage, plain.usage)
    if match_threshold:
        assert fused.usage.sum() > 0


def train(fused: bool, steps: int, batch: int = 1) -> dict:
    g = load_graph(ROOT / "graphs" / "sine.json")
    g.node("sp").params.update(columns=32, winners=3)
    g.node("tm").params.update(cells_per_column=4)
    t = Trainer(g, device="cpu", steps=steps, batch_size=batch)
    t.config.checkpoint_every, t.config.log_every = 0, 10**9
    t.model.nodes["tm"].fused = fused
    t.train_until(steps)
    return {k: v.clone() for k, v in t.model.state_dict().items()}


@pytest.mark.parametrize("batch, small", [(1, None), (4, None), (4, 0)])
def test_trained_weights_match_autograd(batch, small, monkeypatch):
    if small is not None:  # every step counts as a big one: the layouts of big batches (transposed softmax, matrix-vector sums)
        monkeypatch.setattr(tm_fused, "SMALL", small)
    fused, plain = train(True, 60, batch), train(False, 60, batch)
    assert fused.keys() == plain.keys()
    moved = 0
    for name in plain:
        if plain[name].is_floating_point():
            assert torch.allclose(fused[name], plain[name], atol=1e-4, rtol=1e-3), name
        else:
            assert torch.equal(fused[name], plain[name]), name
    first = train(True, 1, batch)
    moved = sum(not torch.equal(first[k], fused[k]) for k in fused if "distal" in k)
    assert moved  # the distal weights learned in those steps


def test_one_streams_winners_from_marked_columns_tell_the_decoder_where_their_gradient_is_read():
    # With its columns from an SP (marked), the dense TM reads its winners' gradient at the
    # active columns' cells only; decoder.mlp then computes it there alone, and every
    # gradient the TM and the columns get is what the full input gradient gives.
    from deephtm.kernels.grad_hints import mark_grad_nonzero_only
    from deephtm.nodes.decoder_mlp import MLPDecoder

    cols_n = 32  # few active cells: the decoder takes its sparse path
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=K, init_std=0.3)
    torch.manual_seed(0)
    tm = TemporalMemory(p, {"columns": (cols_n,), "context": (cols_n * K,), "winner_context": None, "apical": None})
    tm.used_outputs = {"winners", "anomaly", "loss"}
    tm.setup(1, torch.Generator().manual_seed(1))
    dp = {prm.name: prm.default for prm in MLPDecoder.params}
    dp.update(hidden=16)
    decoder = MLPDecoder(dp, {"x": (cols_n * K,)})
    cols = torch.zeros(1, cols_n)
    cols[0, [3, 10, 21]] = torch.tensor([0.8, 1.1, 0.6])
    ctx_cells = torch.zeros(1, cols_n * K)
    ctx_cells[0, [2, 4, 12, 33, 64]] = 1.0
    grads, computed = [], []
    for use_support in (True, False):
        node, dec = copy.deepcopy(tm), copy.deepcopy(decoder)
        c = mark_grad_nonzero_only(cols.clone().requires_grad_(True))
        ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator().manual_seed(2))
        out = node(ctx, columns=c, context=ctx_cells)
        x = out["winners"]
        assert torch.equal(x.grad_support.sort().values,
                           (torch.arange(cols_n * K).view(cols_n, K)[cols[0] != 0]).flatten())
        if not use_support:
            del x.grad_support
        x.retain_grad()
        y = dec(ctx, x=x)["y"]
        (y.square().sum() + out["loss"]).backward()
        grads.append((node.distal.grad.to_dense(), c.grad, dec.net[0].weight.grad.to_dense()))
        computed.append(int((x.grad != 0).sum()))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert grads[0][1].abs().sum() > 0 and grads[0][0].abs().sum() > 0  # the decoder's loss reached both
    assert computed[0] == 3 * K < computed[1], computed  # the note narrowed the input gradient


@pytest.mark.parametrize("fan_out, batch", [(0, 1), (0, 4), (16, 1)])
def test_training_with_the_sps_mark_gives_the_weights_of_training_without_it(fan_out, batch, monkeypatch):
    from deephtm.nodes import htm_tm

    def weights(steps: int) -> dict:
        g = load_graph(ROOT / "graphs" / "sine.json")
        g.node("sp").params.update(columns=32, winners=3)
        g.node("tm").params.update(cells_per_column=4, fan_out=fan_out)
        t = Trainer(g, device="cpu", steps=steps, batch_size=batch)
        t.config.checkpoint_every, t.config.log_every = 0, 10**9
        t.train_until(steps)
        return {k: v.clone() for k, v in t.model.state_dict().items()}

    start, marked = weights(0), weights(40)
    monkeypatch.setattr(htm_tm, "grad_nonzero_only", lambda t: False)  # the TM ignores the mark
    plain = weights(40)
    for name in plain:
        if plain[name].is_floating_point():
            assert torch.allclose(marked[name], plain[name], atol=1e-6, rtol=1e-5), name
        else:
            assert torch.equal(marked[name], plain[name]), name
    for name in ("nodes.sp.proj.weight", "nodes.tm.distal"):  # both learned, so the comparison says something
        assert not torch.equal(marked[name], start[name]), name


def test_detect_steps_the_tm_without_autograd_to_autograds_weights(tmp_path, monkeypatch):
    # deephtm detect's per-row step: with the TM and its loss term taking their backward
    # from the tape, the distal weights and the raw anomaly are autograd's, to the bit.
    lines = (ROOT / "data" / "nab" / "art_daily_jumpsup.csv").read_text().splitlines()[:700]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    learn = OnlineFastPath.learn
    results = {}
    for taped in (True, False):
        det = Detector(str(ROOT / "graphs" / "anomaly.json"), str(path))
        tm = det.trainer.model.nodes["tm"]
        if not taped:
            monkeypatch.setattr(tm, "hand_backward", lambda: False)
        rows = []
        monkeypatch.setattr(OnlineFastPath, "learn",
                            lambda self, loss, clip: rows.append(self.recorded()) or learn(self, loss, clip))
        found = det.run()
        assert len(rows) > 600 and all(rows) == taped and any(rows) == taped
        results[taped] = (found.raw, tm.distal.detach().clone())
    (raw_taped, distal_taped), (raw_autograd, distal_autograd) = results[True], results[False]
    assert raw_taped == raw_autograd and 0 < sum(raw_taped) < len(raw_taped)
    assert torch.equal(distal_taped, distal_autograd)
