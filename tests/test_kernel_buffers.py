"""Buffers the kernels keep between steps: htm.sp's weight gradient, reused by a step without
autograd (only its winners' rows change), and the rows decoder.mlp gathers for its input
gradient. A step gives what it gives with fresh tensors, whatever was done to them since."""
import pytest
import torch

from deephtm.graph.graphfile import load_graph
from deephtm.kernels import sp as sp_kernels
from deephtm.kernels.mlp import sparse_rows_grad_x
from deephtm.kernels.sp import SPColumns
from deephtm.kernels.tape import Tape, apply, recording
from deephtm.nodes.htm_sp import SpatialPooler, k_winners_mask
from deephtm.train.trainer import Trainer

from helpers import ROOT


def make_sp() -> SpatialPooler:
    p = {prm.name: prm.default for prm in SpatialPooler.params}
    p.update({"columns": 16, "winners": 3})
    torch.manual_seed(0)
    sp = SpatialPooler(p, {"x": (6,)})
    with torch.no_grad():
        sp.proj.bias.uniform_(-0.5, 0.5)
    return sp


def step_grad(sp, x, g) -> torch.Tensor:
    """The weight's gradient of sum(columns * g), one step recorded on a tape."""
    tape = Tape()
    with recording(tape):
        apply(SPColumns, sp, x, sp.proj.weight, sp.proj.bias, None)
    fn, ctx, _, _ = tape.entries[0]
    _, _, g_w, _, _ = fn.backward(ctx, g, None)
    return g_w


def test_the_sps_reused_gradient_equals_a_fresh_one(monkeypatch):
    monkeypatch.setattr(sp_kernels, "WINNERS_ROWS_ABOVE", 0)  # one stream's backward on the winners' rows
    sp = make_sp()
    gen = torch.Generator().manual_seed(1)
    grads = []
    for step in range(4):
        x = torch.randn(1, 6, generator=gen)
        g = torch.randn(1, 16, generator=gen)
        got = step_grad(sp, x, g)
        mask = k_winners_mask(sp.overlap(x).detach(), 3)  # the winners (no boosting: by overlap)
        want = (g * mask).t() @ x  # the dense gradient: zero but at the winners' rows
        assert torch.equal(got, want), step
        assert (got.abs().sum(1) > 0).sum() == 3
        if step == 2:  # something (clipping, averaging) writes to the gradient in place
            got.add_(1.0)
        grads.append(got)
    assert grads[0] is grads[1]  # the step reused its tensor
    assert grads[3] is not grads[2]  # but not one written to since


def test_an_sp_trained_without_autograd_matches_autograd_with_clipping(monkeypatch):
    # a layer above WINNERS_ROWS_ABOVE weights, one stream: its reused gradient, clipped in place each step
    def train(hand: bool) -> dict:
        g = load_graph(ROOT / "graphs" / "sine.json")
        g.node("sp").params.update(columns=1024, winners=20)
        t = Trainer(g, device="cpu", steps=40)
        t.config.checkpoint_every, t.config.log_every, t.config.grad_clip = 0, 10**9, 0.05
        t.hand_backward = hand
        assert t.uses_tape() == hand
        t.train_until(40)
        return {k: v.clone() for k, v in t.model.state_dict().items()}

    assert 1024 * 256 > sp_kernels.WINNERS_ROWS_ABOVE
    hand, plain = train(True), train(False)
    for name in plain:
        assert torch.allclose(hand[name], plain[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("rows", [[3, 1, 7], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [5]])
def test_the_decoders_input_gradient_at_its_support_with_a_kept_buffer(rows):
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(12, 4, generator=gen, requires_grad=True)
    g = torch.randn(1, 4, generator=gen)
    support = torch.tensor(rows)
    got = sparse_rows_grad_x(g, weight, (1, 12), torch.float32, support)
    want = torch.zeros(1, 12)
    want[0, support] = (weight.detach()[support] @ g[0])
    assert torch.allclose(got, want, atol=1e-6)
    assert (got[0, support] != 0).all()


def test_each_thread_gathers_into_its_own_buffer():
    import threading

    from deephtm.kernels.mlp import _scratch

    like = torch.zeros(10, 4)
    here = _scratch(like, 3)
    assert _scratch(like, 2).data_ptr() == here.data_ptr()  # kept between calls
    there = []
    worker = threading.Thread(target=lambda: there.append(_scratch(like, 3)))
    worker.start()
    worker.join()
    assert there[0].data_ptr() != here.data_ptr()
