"""htm.sp's fused step (deephtm/kernels/sp.py: one autograd function, backward by hand)
against the same step recorded op by op by autograd."""
import pytest
import torch

from deephtm.graph.graphfile import load_graph
from deephtm.kernels import sp as sp_kernels
from deephtm.kernels.sp import SPColumns
from deephtm.node import Context
from deephtm.nodes.htm_sp import SpatialPooler
from deephtm.train.trainer import Trainer

from helpers import ROOT

F64 = torch.float64


def make_sp(n_in=6, dtype=torch.float32, **params) -> SpatialPooler:
    p = {prm.name: prm.default for prm in SpatialPooler.params}
    p.update({"columns": 8, "winners": 3, **params})
    torch.manual_seed(0)
    sp = SpatialPooler(p, {"x": (n_in,)}).to(dtype)
    with torch.no_grad():
        sp.proj.bias.uniform_(-0.5, 0.5)  # distinct overlaps: no ties among the scores
    return sp


def ctx(step=0):
    return Context(step=step, batch=2, device=torch.device("cpu"), generator=torch.Generator())


CASES = [{}, {"output": "binary"}, {"potential_pct": 0.5}, {"boost_mode": "threshold", "boost_strength": 0.2},
         {"boost_strength": 2.0}, {"inhibition": "local", "grid_height": 2, "neighbourhood": 2, "winners": 1}]


# Output 'binary' is straight-through (a 0/1 forward, the overlap's gradient): no numerical
# derivative to check; the comparison with autograd below covers it.
@pytest.mark.parametrize("streams", [2, 1])
@pytest.mark.parametrize("params", [c for c in CASES if c.get("output") != "binary"])
def test_gradcheck_float64(params, streams, monkeypatch):
    # One stream of a layer this small takes the dense backward; patched, the winners' rows one
    if streams == 1:
        monkeypatch.setattr(sp_kernels, "WINNERS_ROWS_ABOVE", 0)
    sp = make_sp(dtype=F64, **params)
    x = torch.randn(streams, 6, dtype=F64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    w = sp.proj.weight.detach().clone().requires_grad_(True)
    b = sp.proj.bias.detach().clone().requires_grad_(True)
    # The winners stay put under gradcheck's small steps (no ties), so the function is smooth there.
    assert torch.autograd.gradcheck(lambda x, w, b: SPColumns.apply(sp, x, w, b, sp.potential)[0], (x, w, b))


@pytest.mark.parametrize("winners_rows", [False, True])
@pytest.mark.parametrize("params", CASES)
def test_fused_step_gives_autograds_outputs_gradients_and_bookkeeping(params, winners_rows, monkeypatch):
    # winners_rows: one stream, whose backward works on the winners' rows (kernels/sp.py)
    streams = 1 if winners_rows else 2
    if winners_rows:
        monkeypatch.setattr(sp_kernels, "WINNERS_ROWS_ABOVE", 0)
        used = []
        rows_backward = sp_kernels.winners_backward
        monkeypatch.setattr(sp_kernels, "winners_backward", lambda *a: used.append(1) or rows_backward(*a))
    fused, plain = make_sp(**params), make_sp(**params)
    fused.fused = True
    x = torch.randn(streams, 6, generator=torch.Generator().manual_seed(5))
    for step in range(4):
        xs = [(x + 0.1 * step).requires_grad_(True) for _ in range(2)]
        outs = [sp(ctx(step), x=xi)["columns"] for sp, xi in ((fused, xs[0]), (plain, xs[1]))]
        assert torch.equal(outs[0], outs[1])
        assert ((outs[0] != 0).sum(1) == (3 if "inhibition" not in params else 2)).all()
        g = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(step))
        for o in outs:
            o.backward(g)
        assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-6) and xs[0].grad.abs().sum() > 0
        for a, b in zip(fused.parameters(), plain.parameters()):
            assert torch.allclose(a.grad, b.grad, atol=1e-6)
        assert torch.equal(fused.duty, plain.duty)
        if params.get("boost_mode") == "threshold":
            assert torch.equal(fused.offset, plain.offset) and fused.offset.abs().sum() > 0
    if winners_rows:
        assert len(used) == 4


@pytest.mark.parametrize("batch", [2, 1])
def test_trained_weights_match_autograd(batch, monkeypatch):
    if batch == 1:  # the fused step's backward on the winners' rows (the node's choice of path unchanged)
        monkeypatch.setattr(sp_kernels, "WINNERS_ROWS_ABOVE", 0)

    def train(fused: bool):
        g = load_graph(ROOT / "graphs" / "sine.json")
        t = Trainer(g, device="cpu", steps=60, batch_size=batch)
        t.config.checkpoint_every, t.config.log_every = 0, 10**9
        t.hand_backward = False  # autograd: the node's own choice of path decides
        t.model.nodes["sp"].fused = fused
        t.train_until(60)
        return {k: v.clone() for k, v in t.model.state_dict().items()}

    fused, plain = train(True), train(False)
    for name in plain:
        if plain[name].is_floating_point():
            assert torch.allclose(fused[name], plain[name], atol=1e-5, rtol=1e-4), name
        else:
            assert torch.equal(fused[name], plain[name]), name
