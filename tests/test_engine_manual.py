"""Steps without autograd (deephtm/kernels/tape.py): a graph whose nodes all have a
hand-derived backward trains to the weights autograd gives, and any other graph falls back
to autograd."""
import pytest
import torch

from deephtm.graph.graphfile import Graph, load_graph
from deephtm.kernels import tape as tape_mod
from deephtm.kernels import tm_step
from deephtm.train.trainer import Trainer

from helpers import ROOT


def trainer(graph: Graph, steps: int, hand_backward: bool, batch: int = 1) -> Trainer:
    t = Trainer(graph, device="cpu", steps=steps, batch_size=batch)
    t.config.checkpoint_every, t.config.log_every = 0, 10**9
    t.hand_backward = hand_backward
    return t


def weights_after(graph: Graph, steps: int, hand_backward: bool, batch: int = 1) -> tuple[dict, Trainer]:
    t = trainer(graph, steps, hand_backward, batch)
    assert t.uses_tape() == hand_backward
    t.train_until(steps)
    return {k: v.clone() for k, v in t.model.state_dict().items()}, t


def assert_same_weights(a: dict, b: dict, start: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        if value.is_floating_point():
            assert torch.allclose(value, b[name], atol=1e-5, rtol=1e-4), name
        else:
            assert torch.equal(value, b[name]), name
    # every weight with a gradient moved, so the comparison says something about each
    for name in ("encoder.net.0.weight", "sp.proj.weight", "decoder.net.0.weight", "decoder.net.2.weight"):
        key = f"nodes.{name}"
        if key in a:
            assert not torch.equal(a[key], start[key]), name
    distal = [k for k in a if k.endswith("distal")]
    assert distal and all(not torch.equal(a[k], start[k]) for k in distal)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_sine_trains_to_autograds_weights_without_autograd(batch):
    g = load_graph(ROOT / "graphs" / "sine.json")
    start = {k: v.clone() for k, v in trainer(g, 60, True, batch).model.state_dict().items()}
    manual, _ = weights_after(g, 60, True, batch)
    plain, _ = weights_after(g, 60, False, batch)
    assert_same_weights(manual, plain, start)


def test_a_big_batch_trains_to_autograds_weights_without_autograd(monkeypatch):
    # At batch 256 the TM's distal gradient holds each distinct gathered row once
    g = load_graph(ROOT / "graphs" / "sine.json")
    start = {k: v.clone() for k, v in trainer(g, 12, True, 256).model.state_dict().items()}
    layouts = []
    distal_grad = tm_step.distal_grad
    monkeypatch.setattr(tm_step, "distal_grad", lambda *a: layouts.append((r := distal_grad(*a)).is_coalesced()) or r)
    manual, _ = weights_after(g, 12, True, 256)
    assert len(layouts) == 12 and all(layouts)
    plain, _ = weights_after(g, 12, False, 256)
    assert_same_weights(manual, plain, start)


def test_hierarchy_demo_trains_to_autograds_weights_without_autograd():
    # two SP/TM levels, the TMs' 'cells' output, a weighted loss.term and util.concat
    g = load_graph(ROOT / "graphs" / "hierarchy_demo.json")
    start = {k: v.clone() for k, v in trainer(g, 50, True).model.state_dict().items()}
    manual, _ = weights_after(g, 50, True)
    plain, _ = weights_after(g, 50, False)
    assert_same_weights(manual, plain, start)


def test_a_node_without_hand_backward_makes_the_graph_use_autograd(monkeypatch):
    g = load_graph(ROOT / "graphs" / "sine.json")
    # A trainable boost strength has only autograd's gradient: the SP says so.
    g.node("sp").params.update(boost_mode="relative", boost_trainable=True, boost_strength=0.5)
    t = trainer(g, 20, True)
    assert not t.model.nodes["sp"].hand_backward()
    assert not t.uses_tape()
    recorded = []
    monkeypatch.setattr(tape_mod.Tape, "call", lambda self, fn, args: recorded.append(fn) or fn.forward(None, *args))
    before = t.model.nodes["sp"].boost.detach().clone()
    t.train_until(20)
    assert recorded == []  # no kernel went through a tape
    assert not torch.equal(t.model.nodes["sp"].boost.detach(), before)  # autograd trained the strength


def test_resume_equals_a_straight_run_without_autograd(tmp_path):
    g = load_graph(ROOT / "graphs" / "sine.json")
    straight = Trainer(g, device="cpu", steps=40, out=tmp_path / "a")
    straight.config.checkpoint_every = 20
    assert straight.uses_tape()
    straight.run()
    first = Trainer(g, device="cpu", steps=40, out=tmp_path / "b")
    first.config.checkpoint_every = 20
    first.run(20)  # stops half way: the schedule still runs over 40 steps
    resumed = Trainer(g, device="cpu", steps=40, out=tmp_path / "b", resume=True)
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_grad_clip_and_schedule_apply_to_steps_without_autograd():
    g = load_graph(ROOT / "graphs" / "sine.json")
    g.training.grad_clip = 0.05
    start = {k: v.clone() for k, v in trainer(g, 30, True).model.state_dict().items()}
    manual, t = weights_after(g, 30, True)
    plain, _ = weights_after(g, 30, False)
    assert t.config.grad_clip == 0.05
    assert_same_weights(manual, plain, start)
    # clipping changed the result: without it the weights differ
    g.training.grad_clip = 0.0
    unclipped, _ = weights_after(g, 30, True)
    assert not torch.allclose(unclipped["nodes.decoder.net.2.weight"], manual["nodes.decoder.net.2.weight"])


def test_tape_routes_a_reshaped_view_and_sums_a_reused_output():
    w = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    b = torch.nn.Parameter(torch.zeros(2))
    x = torch.tensor([[0.5, -2.0]])
    t = tape_mod.Tape()
    with tape_mod.recording(t):
        from deephtm.kernels.mlp import MLP, MSE
        h = tape_mod.apply(MLP, x, False, w, b)  # [1, 2]
        y = tape_mod.apply(MLP, h.view(1, 2, 1).flatten(1), False, w, b)  # a reshaped view of h
        loss = tape_mod.apply(MSE, y, torch.zeros(1, 2), 1.0)
    t.backward([loss, loss], [w, b])  # the loss counted twice: twice its gradient
    w2, b2 = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    yy = torch.nn.functional.linear(torch.nn.functional.linear(x, w2, b2), w2, b2)
    (2 * yy.pow(2).mean()).backward()
    assert torch.allclose(w.grad, w2.grad) and torch.allclose(b.grad, b2.grad)
    assert w.grad.abs().sum() > 0
