"""htm.tm with fan-out synapse lists (fan_out > 0): the same step as the dense matrix, a
budget that grows with cells x fan_out, learning (with synapse growth) and checkpoints."""
import copy
import pytest
import torch

from deephtm.errors import DeepHTMError
from deephtm.graph.graphfile import Graph, load_graph
from deephtm.node import Context
from deephtm.nodes.htm_tm import TemporalMemory
from deephtm.graph.resolve import resolve
from deephtm.train.trainer import Trainer

from helpers import SINE, replay_symbols, sequence_tm_dict, small_sine_dict

NOISE = 15


def make_tm(fan_out, C=6, K=4, B=1, apical=None, **params):
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=K, fan_out=fan_out, **params)
    tm = TemporalMemory(p, {"columns": (C,), "context": (C * K,), "winner_context": (C * K,), "apical": apical})
    tm.setup(B, torch.Generator().manual_seed(0))
    return tm


def step_ctx(B=1):
    return Context(step=0, batch=B, device=torch.device("cpu"), generator=torch.Generator())


def sequence_graph(steps: int, fan_out: int) -> Graph:
    return Graph.from_dict(sequence_tm_dict("0 1 2 3 4 5", steps, columns=128, fan_out=fan_out))


def replay(trainer: Trainer, symbols: list[int]) -> list[float]:
    """Anomaly of each step when the trained SP and TM see `symbols` (learning off)."""
    return [float(out["anomaly"]) for out in replay_symbols(trainer, symbols)]


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("wiring", ["context", "both", "apical", "none"])
@pytest.mark.parametrize("columns_grad", [True, False])
@pytest.mark.parametrize("anomaly_mode", ["binary", "graded"])
def test_fan_out_over_every_cell_is_the_dense_matrix(B, wiring, columns_grad, anomaly_mode):
    """With n synapses per cell pointing at cells 0..n-1, the fan-out step computes exactly
    what the dense matrix does: every output, the loss, and the gradients of the distal
    weights and of the columns (the straight-through ones of inactive columns included)."""
    torch.manual_seed(7)  # the initial weights come from the global generator: not from test order
    C, K = 6, 4
    n = C * K
    apical = (5,) if wiring == "apical" else None
    dense = make_tm(0, C, K, B, apical, init_std=0.3, anomaly_mode=anomaly_mode)
    fan = make_tm(n, C, K, B, apical, init_std=0.3, anomaly_mode=anomaly_mode)
    with torch.no_grad():
        fan.distal.copy_(dense.distal)
        fan.distal_to.copy_(torch.arange(n).repeat(n, 1))
        if apical:
            fan.apical.copy_(dense.apical)
    g = torch.Generator().manual_seed(B)
    cols = (torch.rand(B, C, generator=g) < 0.5).float()
    cols[:, 0] = 1.0
    inputs = {"context": (torch.rand(B, n, generator=g) < 0.2).float()} if wiring != "none" else {}
    if wiring == "both":
        inputs["winner_context"] = (torch.rand(B, n, generator=g) < 0.1).float()
    if wiring == "apical":
        inputs["apical"] = torch.randn(B, 5, generator=g)
    w1, w2 = torch.randn(B, n, generator=g), torch.randn(B, n, generator=g)
    results = []
    for tm in (dense, fan):
        c = cols.clone().requires_grad_(columns_grad)
        out = tm(step_ctx(B), columns=c, **inputs)
        total = out["loss"] + (out["winners"] * w1).sum() + (out["cells"] * w2).sum()
        if total.requires_grad:
            total.backward()
        grad = tm.distal.grad.to_dense() if tm.distal.grad is not None else torch.zeros_like(tm.distal)
        results.append(({k: v.detach() for k, v in out.items()}, c.grad, grad))
        fan_winners = out["winners"]
    (out_d, cg_d, g_d), (out_f, cg_f, g_f) = results
    assert out_d.keys() == out_f.keys()
    # the winners' non-zero entries, as the fan-out step notes them for its readers
    noted = fan_winners.nonzero_at
    assert all(torch.equal(a, b) for a, b in zip(noted, fan_winners.nonzero(as_tuple=True)))
    for k in out_d:
        assert torch.allclose(out_d[k], out_f[k], atol=1e-5), k
    assert float(out_d["loss"]) > 0 or wiring == "none"
    if columns_grad:
        assert torch.allclose(cg_d, cg_f, atol=1e-5)
    assert torch.allclose(g_d, g_f, atol=1e-5)
    if wiring != "none":
        assert g_f.abs().sum() > 0


def test_shapes_budget_and_allocation():
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=32, fan_out=16)
    shapes = {"columns": (64,), "context": (2048,), "winner_context": None, "apical": None}
    assert TemporalMemory.infer(p, shapes)["winners"] == (2048,)
    tm = TemporalMemory(p, shapes)
    assert tm.distal.shape == (2048, 16) and tm.distal_to.shape == (2048, 16)
    assert tm.distal_to.dtype == torch.int32 and int(tm.distal_to.min()) >= 0 and int(tm.distal_to.max()) < 2048
    allocated = sum(t.numel() for t in list(tm.parameters()) + list(tm.buffers()))
    assert allocated == TemporalMemory.param_count(p, shapes) == 2 * 2048 * 16 + 2048
    # htm.core's default size fits the graph budget with fan-out, and is refused as a dense matrix.
    g = load_graph(SINE)
    g.node("sp").params.update(columns=2048, winners=41)
    g.node("tm").params.update(cells_per_column=32, fan_out=256)
    r = resolve(g)
    assert r.nodes["tm"].out_shapes["winners"] == (65536,)
    g.node("tm").params["fan_out"] = 0
    with pytest.raises(DeepHTMError, match="allocate"):
        resolve(g)


def test_fan_out_tm_learns_a_sequence_with_synapse_growth():
    untrained = Trainer(sequence_graph(1, 32))
    assert sum(replay(untrained, [NOISE, 0, 1, 2, 3, 4, 5])[2:]) / 5 > 0.9
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = Trainer(sequence_graph(400, 32))
        t.run()
    finally:
        torch.set_num_threads(threads)
    learned = replay(t, [NOISE, 0, 1, 2, 3, 4, 5])
    novel = replay(t, [NOISE, 8, 10, 9, 12, 11, 13])
    assert sum(learned[2:]) / 5 < 0.1, learned
    assert sum(novel[2:]) / 5 > 0.8, novel
    tm = t.model.nodes["tm"]
    # Learning re-pointed synapses: the drawn targets are no longer all there.
    assert not torch.equal(tm.distal_to, untrained.model.nodes["tm"].distal_to)


def test_a_new_transition_grows_synapses_from_the_previous_winners():
    tm = make_tm(3, C=8, K=4, match_threshold=0.2, init_std=0.0)
    with torch.no_grad():
        tm.distal_to.fill_(0)  # every synapse onto cell 0: nothing reaches column 5 yet
    prev = torch.zeros(1, 32)
    prev[0, [1, 9]] = 1.0  # previous winners: cell 1 (column 0) and cell 9 (column 2)
    cols = torch.zeros(1, 8)
    cols[0, 5] = 1.0
    out = tm(step_ctx(), columns=cols, winner_context=prev, context=prev)
    winner = int(out["winners"][0].nonzero())
    assert winner // 4 == 5
    for source in (1, 9):
        assert winner in tm.distal_to[source].tolist()
    d = tm.gather(prev, tm.distal).detach().reshape(-1)
    assert abs(float(d[winner]) - 0.25) < 1e-6  # threshold / 2: a match, not yet a prediction
    assert float(d[winner]) < tm.p["threshold"]
    # The step learns through the grown synapses at once: its loss reaches them.
    out["loss"].backward()
    grad = tm.distal.grad.coalesce()
    rows = grad.indices()[0].tolist()
    assert sorted(set(rows)) == [1, 9]
    grown = (tm.distal_to[[1, 9]] == winner)
    assert (grad.to_dense()[[1, 9]][grown] < 0).all()  # SGD raises them towards the threshold


def test_own_output_as_context_reuses_its_indices():
    """A delayed edge from the node's own output skips the scan for active cells and gives
    the same cells as the scan."""
    tm = make_tm(5, C=16, K=4)
    cols = torch.zeros(2, 16)
    cols[0, [1, 4, 7]] = 1.0
    cols[1, [2, 4]] = 1.0
    tm.used_outputs = {p.name for p in tm.outputs}
    out = tm(step_ctx(2), columns=cols, context=torch.zeros(2, 64))
    for port in ("winners", "cells"):
        kept = out[port].detach()
        cached = tm.active_units(kept)
        scanned = kept.clone().nonzero(as_tuple=True)
        assert cached is not None and all(torch.equal(a, b) for a, b in zip(cached, scanned)), port
        assert tm.active_units(kept.clone()) is not cached


def test_checkpoint_round_trip_keeps_synapses_and_resumes_exactly(tmp_path):
    d = small_sine_dict(steps=60)
    tm_node = next(n for n in d["nodes"] if n["type"] == "htm.tm")
    tm_node["params"]["fan_out"] = 8
    g = Graph.from_dict(d)
    g.path = str(SINE)
    full = Trainer(g)
    full.run()
    first = Trainer(g, out=tmp_path)
    first.run(30)
    resumed = Trainer(g, out=tmp_path, resume=True)
    assert resumed.step == 30
    assert torch.equal(resumed.model.nodes["tm"].distal_to, first.model.nodes["tm"].distal_to)
    resumed.run()
    for (k, va), (_, vb) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(va, vb), k
    assert "nodes.tm.distal_to" in full.model.state_dict()


@pytest.mark.parametrize("columns_grad", [True, False])
def test_decoder_gradient_on_the_tm_support_only_changes_nothing_upstream(columns_grad):
    """decoder.mlp reading a fan-out TM computes its input gradient only where the TM uses
    it (grad_support); every gradient the TM and the columns receive is the same as with
    the full input gradient."""
    from deephtm.nodes.decoder_mlp import MLPDecoder

    torch.manual_seed(3)
    C, K, B = 16, 8, 2  # few active inputs: the decoder takes its sparse path
    tm = make_tm(16, C, K, B, init_std=0.3)
    dp = {prm.name: prm.default for prm in MLPDecoder.params}
    dp.update(hidden=16)
    decoder = MLPDecoder(dp, {"x": (C * K,)})
    g = torch.Generator().manual_seed(5)
    cols = (torch.rand(B, C, generator=g) < 0.2).float() * (torch.rand(B, C, generator=g) + 0.5)
    cols[:, 0] = 1.0
    context = (torch.rand(B, C * K, generator=g) < 0.2).float()
    grads, computed = [], []
    original = (tm, decoder)
    for use_support in (True, False):
        tm, decoder = copy.deepcopy(original)  # a step grows synapses: both start from the same ones
        c = cols.clone().requires_grad_(columns_grad)
        out = tm(step_ctx(B), columns=c, context=context)
        x = out["winners"]
        assert hasattr(x, "grad_support")
        if not use_support:
            del x.grad_support
        x.retain_grad()
        y = decoder(step_ctx(B), x=x)["y"]
        (y.square().sum() + out["loss"]).backward()
        grads.append((tm.distal.grad.to_dense(), c.grad, decoder.net[0].weight.grad.to_dense()))
        computed.append(int((x.grad != 0).sum()))
    for a, b in zip(*grads):
        if a is None:
            assert b is None
        else:
            assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert grads[0][0].abs().sum() > 0  # the decoder's loss reached the synapses
    assert computed[0] < computed[1] / 2, computed  # the hint really narrowed the input gradient
