"""htm.tm with fan-out synapses, stepped by its hand-derived backward (kernels/tm_fanout.py),
against the same step recorded op by op by autograd (TemporalMemory.fused = False).

The hinge losses' and the columns' gradients are checked numerically (gradcheck, float64);
the straight-through softmax of the winners has no numerical derivative (the forward is a
one-hot), so the whole step is also checked against autograd's: outputs, gradients, grown
synapses and usage counts, then the weights of a network trained both ways."""
import copy
import itertools

import pytest
import torch

from deephtm.graph.graphfile import load_graph
from deephtm.kernels.grad_hints import mark_grad_nonzero_only
from deephtm.kernels.tm_fanout import FanoutTMStep
from deephtm.node import Context
from deephtm.nodes.htm_tm import TemporalMemory
from deephtm.train.trainer import Trainer

from helpers import ROOT, Densify

C, K, F = 6, 4, 5
N = C * K


def make_tm(B=1, dtype=torch.float32, **params) -> TemporalMemory:
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update({"cells_per_column": K, "fan_out": F, "init_std": 0.3, **params})
    torch.manual_seed(7)
    tm = TemporalMemory(p, {"columns": (C,), "context": (N,), "winner_context": (N,), "apical": None}).to(dtype)
    tm.setup(B, torch.Generator().manual_seed(0))
    tm.used_outputs = {"winners", "cells", "anomaly", "loss"}
    return tm


def inputs(B: int, wiring: str, dtype=torch.float32, seed: int = 0) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    cols = ((torch.rand(B, C, generator=g) < 0.5) * (torch.rand(B, C, generator=g) + 0.5)).to(dtype)
    cols[:, 0] = 1.0
    wired = {}
    if wiring != "none":
        wired["context"] = (torch.rand(B, N, generator=g) < 0.3).to(dtype)
    if wiring == "both":
        wired["winner_context"] = (torch.rand(B, N, generator=g) < 0.2).to(dtype)
    return cols, wired


def ctx(B: int) -> Context:
    return Context(step=0, batch=B, device=torch.device("cpu"), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("B, wiring", [(1, "context"), (2, "context"), (1, "both"), (2, "both")])
def test_distal_gradient_is_numerically_right(B, wiring):
    tm = make_tm(B, torch.float64).eval()  # no growth: the synapses stay where gradcheck moves them
    cols, wired = inputs(B, wiring, torch.float64)
    distal = tm.distal.detach().clone().requires_grad_(True)

    def loss(distal):
        return FanoutTMStep.apply(tm, cols, Densify.apply(distal), wired.get("context"),
                                  wired.get("winner_context"), True, False)[2]

    assert loss(distal) > 0  # some hinges are active: there is a gradient to check
    assert torch.autograd.gradcheck(loss, (distal,))


@pytest.mark.parametrize("B, active_grad_only", [(1, False), (2, False), (1, True), (2, True)])
def test_column_gradients_are_numerically_right(B, active_grad_only):
    tm = make_tm(B, torch.float64, downstream_grad=False).eval()
    cols, wired = inputs(B, "context", torch.float64, seed=1)
    on = cols != 0
    readout = torch.randn(2, B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(6))

    def outputs(values):
        # Only the active columns' values move: a zero column turned non-zero is another input.
        columns = torch.zeros_like(cols).masked_scatter(on, values)
        winners, cells, loss, *_ = FanoutTMStep.apply(tm, columns, tm.distal.detach(), wired["context"], None, True,
                                                      active_grad_only)
        return (winners * readout[0]).sum() + (cells * readout[1]).sum() + loss

    values = cols[on].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(outputs, (values,))


def one_step(tm, cols, wired, columns_grad: bool, marked: bool, readout):
    c = cols.clone().requires_grad_(columns_grad)
    if marked:
        mark_grad_nonzero_only(c)
    out = tm(ctx(cols.shape[0]), columns=c, **wired)
    total = out["loss"] + (out["winners"] * readout[0]).sum()
    if "cells" in out:
        total = total + (out["cells"] * readout[1]).sum()
    if total.requires_grad:
        total.backward()
    distal_grad = tm.distal.grad.to_dense() if tm.distal.grad is not None else torch.zeros_like(tm.distal)
    return out, c.grad, distal_grad


@pytest.mark.parametrize("B, wiring, columns_grad, marked, cells, match_threshold", [
    combo for combo in itertools.product([1, 3], ["context", "both", "none"], [True, False], [False, True],
                                         [False, True], [0.0, 0.2])
    if combo[2] or not combo[3]])  # a mark on columns without a gradient changes nothing
def test_step_matches_autograd(B, wiring, columns_grad, marked, cells, match_threshold):
    hand = make_tm(B, match_threshold=match_threshold)
    hand.used_outputs = {"winners", "anomaly", "loss"} | ({"cells"} if cells else set())
    plain = copy.deepcopy(hand)
    plain.fused = False
    cols, wired = inputs(B, wiring, seed=B)
    readout = torch.randn(2, B, N, generator=torch.Generator().manual_seed(4))
    (out_h, cg_h, g_h), (out_p, cg_p, g_p) = (one_step(tm, cols, wired, columns_grad, marked, readout)
                                              for tm in (hand, plain))
    assert out_h.keys() == out_p.keys()
    for k in out_p:
        assert torch.equal(out_h[k].detach(), out_p[k].detach()), k
    # the notes readers use: where the winners are non-zero, where their gradient is read
    assert all(torch.equal(a, b) for a, b in zip(out_h["winners"].nonzero_at, out_p["winners"].nonzero_at))
    if columns_grad:
        assert torch.equal(out_h["winners"].grad_support, out_p["winners"].grad_support)
        assert torch.allclose(cg_h, cg_p, atol=1e-6)
        assert cg_h.abs().sum() > 0
    assert torch.allclose(g_h, g_p, atol=1e-6)
    if wiring != "none":
        assert g_h.abs().sum() > 0
    # growth re-pointed the same synapses, and the same least used cells were picked
    assert torch.equal(hand.distal, plain.distal) and torch.equal(hand.distal_to, plain.distal_to)
    assert torch.equal(hand.usage, plain.usage)


def test_a_grown_step_learns_through_its_new_synapses():
    # Weights of 0 reach no cell: every winner grows synapses from the context's cells, and
    # the step's gradient reaches the grown ones (as autograd's does).
    hand = make_tm(1, match_threshold=0.2, init_std=0.0)
    plain = copy.deepcopy(hand)
    plain.fused = False
    cols, wired = inputs(1, "context")
    readout = torch.zeros(2, 1, N)
    before = hand.distal_to.clone()
    (_, _, g_h), (_, _, g_p) = (one_step(tm, cols, wired, False, False, readout) for tm in (hand, plain))
    grown = hand.distal_to != before
    assert grown.any()
    assert (g_h[grown] != 0).all()
    assert torch.equal(g_h, g_p)


def train(fused: bool, steps: int, batch: int = 1) -> tuple[dict, bool]:
    g = load_graph(ROOT / "graphs" / "sine.json")
    g.node("sp").params.update(columns=32, winners=3)
    g.node("tm").params.update(cells_per_column=4, fan_out=16)
    t = Trainer(g, device="cpu", steps=steps, batch_size=batch)
    t.config.checkpoint_every, t.config.log_every = 0, 10**9
    t.model.nodes["tm"].fused = fused
    t.train_until(steps)
    return {k: v.clone() for k, v in t.model.state_dict().items()}, t.uses_tape()


@pytest.mark.parametrize("batch", [1, 3])
def test_trained_weights_match_autograd(batch):
    (hand, hand_tape), (plain, plain_tape) = train(True, 60, batch), train(False, 60, batch)
    assert hand_tape and not plain_tape  # with the hand-derived backward the network steps without autograd
    assert hand.keys() == plain.keys()
    for name in plain:
        if plain[name].is_floating_point():
            assert torch.allclose(hand[name], plain[name], atol=1e-5, rtol=1e-4), name
        else:
            assert torch.equal(hand[name], plain[name]), name
    first, _ = train(True, 1, batch)
    assert not torch.equal(first["nodes.tm.distal"], hand["nodes.tm.distal"])  # the synapses learned
    assert not torch.equal(first["nodes.tm.distal_to"], hand["nodes.tm.distal_to"])  # and grew
