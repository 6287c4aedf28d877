"""The MLP and loss nodes' fused forward/backward (deephtm/kernels/mlp.py) and the
optimizer's direct steps give what autograd and torch.optim give."""
import copy

import pytest
import torch

from deephtm.graph.graphfile import Graph
from deephtm.node import Context
from deephtm.kernels import mlp as fm
from deephtm.nodes.decoder_mlp import MLPDecoder
from deephtm.nodes.encoder_mlp import MLPEncoder
from deephtm.nodes.loss_ce import CrossEntropyLoss
from deephtm.nodes.loss_mse import MSELoss
from deephtm.nodes.loss_term import LossTerm
from deephtm.train.optim import SGD, LazyAdam, LazyAdamW
from deephtm.train.trainer import Trainer

from helpers import Densify

F64 = torch.float64


def params_of(cls, **kw):
    p = {prm.name: prm.default for prm in cls.params}
    p.update(kw)
    return p


def ctx(batch=1):
    return Context(step=0, batch=batch, device=torch.device("cpu"), generator=torch.Generator())


def rand(*shape, seed=0, **kw):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64, **kw)


# ---- gradcheck in float64 -----------------------------------------------------------
@pytest.mark.parametrize("relu_last", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_mlp_gradcheck(relu_last, batch):
    x = (rand(batch, 4) - 0.5).requires_grad_(True)
    sizes = [(6, 4), (5, 6), (3, 5)]
    ps = []
    for i, (o, n) in enumerate(sizes):
        ps += [(rand(o, n, seed=i + 1) - 0.5).requires_grad_(True), (rand(o, seed=i + 7) - 0.5).requires_grad_(True)]
    assert torch.autograd.gradcheck(lambda x, *p: fm.MLP.apply(x, relu_last, *p), (x, *ps))


@pytest.mark.parametrize("batch,sparse,support", [(1, True, False), (3, True, False), (3, True, True),
                                                  (2, False, False)])
@pytest.mark.parametrize("hidden_layers", [0, 2])
def test_sparse_input_mlp_gradcheck(batch, sparse, support, hidden_layers):
    n = 12
    x = torch.zeros(batch, n, dtype=F64)
    x[0, [1, 5, 9]] = torch.tensor([0.7, -1.3, 0.4], dtype=F64)
    if batch > 1:
        x[1:, [2, 5]] = 0.9
    x.requires_grad_(True)
    b_idx, i_idx = x.detach().nonzero(as_tuple=True)
    if not sparse:
        b_idx = i_idx = None
    sup = torch.tensor([1, 3, 5, n + 2, n + 7]) if support else None
    w0 = (rand(n, 5, seed=2) - 0.5).requires_grad_(True)
    b0 = (rand(5, seed=3) - 0.5).requires_grad_(True)
    rest = []
    for i in range(hidden_layers):
        rest += [(rand(5, 5, seed=10 + i) - 0.5).requires_grad_(True), (rand(5, seed=20 + i) - 0.5).requires_grad_(True)]

    def f(x, w0, b0, *rest):
        return fm.SparseInputMLP.apply(x, b_idx, i_idx, sup, w0, b0, *rest)

    if not sparse:
        assert torch.autograd.gradcheck(f, (x, w0, b0, *rest))
        return
    # The sparse path reads the non-zero inputs only, so a finite difference at a zero input
    # sees nothing: check the weights numerically and the input gradient against the dense
    # path's (checked above), exact on the support and zero elsewhere when one is given.
    assert torch.autograd.gradcheck(lambda w0, *w: f(x.detach(), Densify.apply(w0), *w), (w0, b0, *rest))
    y = f(x, w0, b0, *rest)
    g = rand(*y.shape, seed=9)
    (gx,) = torch.autograd.grad(y, x, g)
    (dense,) = torch.autograd.grad(fm.SparseInputMLP.apply(x, None, None, None, w0, b0, *rest), x, g)
    if not support:
        assert torch.allclose(gx, dense)
        return
    flat, flat_dense = gx.reshape(-1), dense.reshape(-1)
    assert torch.allclose(flat[sup], flat_dense[sup]) and flat_dense[sup].abs().sum() > 0
    outside = torch.ones_like(flat, dtype=torch.bool)
    outside[sup] = False
    assert torch.equal(flat[outside], torch.zeros_like(flat[outside]))


def test_a_batchs_sparse_weight_gradient_holds_each_shared_input_row_once():
    # Streams that share active inputs add into one row each: the LazyAdam step reads the
    # rows as they are, without merging repeats.
    x = torch.zeros(4, 10, dtype=F64)
    x[:, 3] = 1.0
    x[[0, 2], 7] = 0.5
    x[1, 1] = -2.0
    b_idx, i_idx = x.nonzero(as_tuple=True)
    g = rand(4, 6, seed=4)
    w = rand(10, 6, seed=5)
    got = fm.sparse_rows_grad_w(g, w, b_idx, i_idx, x[b_idx, i_idx])
    assert got.is_coalesced()
    assert got.indices().tolist() == [[1, 3, 7]]
    assert torch.allclose(got.to_dense(), x.t() @ g)


def test_mse_gradcheck():
    pred, target = rand(3, 2, requires_grad=True), rand(3, 2, seed=1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, t: fm.MSE.apply(p, t, 2.5), (pred, target))


def test_scale_gradcheck():
    assert torch.autograd.gradcheck(lambda v: fm.Scale.apply(v, 0.3), (rand(requires_grad=True),))


@pytest.mark.parametrize("with_mask", [False, True])
def test_cross_entropy_gradcheck_class_indices(with_mask):
    logits = (rand(4, 5) * 4 - 2).requires_grad_(True)
    classes = torch.tensor([0, 3, 4, 1])
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64, requires_grad=True) if with_mask else None
    args = (logits, mask) if with_mask else (logits,)
    assert torch.autograd.gradcheck(lambda lg, *m: fm.CrossEntropy.apply(lg, classes, None, m[0] if m else None, 0.7),
                                    args)


def test_cross_entropy_gradcheck_probabilities():
    logits = (rand(3, 4) * 4 - 2).requires_grad_(True)
    probs = rand(3, 4, seed=5)
    probs = (probs / probs.sum(1, keepdim=True)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda lg, pr: fm.CrossEntropy.apply(lg, None, pr, None, 1.3), (logits, probs))


# ---- the nodes: fused and plain autograd give the same values and gradients ---------------
def both_ways(node, **inputs):
    """(outputs, input and weight gradients) with the node fused and with plain autograd."""
    out = []
    for fused in (True, False):
        n = copy.deepcopy(node)
        n.fused = fused
        ins = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in inputs.items()}
        y = next(iter(n(ctx(), **ins).values()))
        g = rand(*y.shape, seed=11).float()
        y.backward(g)
        grads = [v.grad for v in ins.values() if v.requires_grad] + [p.grad for p in n.parameters()]
        out.append((y.detach(), [None if t is None else t.to_dense() for t in grads]))
    return out


def assert_same(pair):
    (ya, ga), (yb, gb) = pair
    assert torch.allclose(ya, yb, atol=1e-6)
    assert len(ga) == len(gb)
    for a, b in zip(ga, gb):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert any(a is not None and a.abs().sum() > 0 for a in ga)


@pytest.mark.parametrize("batch", [1, 4])
def test_encoder_node_fused_matches_autograd(batch):
    torch.manual_seed(0)
    enc = MLPEncoder(params_of(MLPEncoder, hidden=16, layers=3), {"x": (2, 3)})
    assert_same(both_ways(enc, x=torch.randn(batch, 2, 3, requires_grad=True)))


@pytest.mark.parametrize("batch,density", [(1, 0.05), (4, 0.05), (2, 0.5)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_decoder_node_fused_matches_autograd(batch, density, layers):
    torch.manual_seed(1)
    dec = MLPDecoder(params_of(MLPDecoder, hidden=8, layers=layers, outputs=3), {"x": (200,)})
    x = torch.rand(batch, 200) * (torch.rand(batch, 200) < density)
    x[:, 0] = 1.0  # at least one active input per row
    assert_same(both_ways(dec, x=x.requires_grad_(True)))


def test_loss_nodes_fused_match_autograd():
    torch.manual_seed(2)
    mse = MSELoss(params_of(MSELoss, weight=0.5), {"pred": (3,), "target": (3,)})
    assert_same(both_ways(mse, pred=torch.randn(4, 3, requires_grad=True), target=torch.randn(4, 3)))
    ce = CrossEntropyLoss(params_of(CrossEntropyLoss, weight=2.0), {"logits": (5,), "target": (1,)})
    assert_same(both_ways(ce, logits=torch.randn(4, 5, requires_grad=True), target=torch.tensor([[1.0], [4], [0], [2]])))
    assert_same(both_ways(ce, logits=torch.randn(4, 5, requires_grad=True), target=torch.tensor([[1.0], [4], [0], [2]]),
                          mask=torch.tensor([[1.0], [0], [1], [0]])))
    assert_same(both_ways(ce, logits=torch.randn(4, 5, requires_grad=True), target=torch.softmax(torch.randn(4, 5), 1)))
    term = LossTerm(params_of(LossTerm, weight=0.25), {"value": ()})
    v = torch.tensor(3.0, requires_grad=True)
    y = term(ctx(), value=v)["loss"]
    y.backward()
    assert y.item() == pytest.approx(0.75) and v.grad.item() == pytest.approx(0.25)


# ---- whole runs: equal weights after training -------------------------------------------
def small_graph(optimizer="adam") -> Graph:
    return Graph.from_dict({
        "format_version": 1, "name": "fused",
        "nodes": [
            {"id": "sine", "type": "source.sine", "params": {"step_size": 0.3}},
            {"id": "enc", "type": "encoder.mlp", "params": {"hidden": 24, "layers": 2, "lr_scale": 0.3}},
            {"id": "sp", "type": "htm.sp", "params": {"columns": 32, "winners": 3, "lr_scale": 0.3}},
            {"id": "tm", "type": "htm.tm", "params": {"cells_per_column": 3}},
            {"id": "dec", "type": "decoder.mlp", "params": {"hidden": 16, "layers": 1, "outputs": 1}},
            {"id": "loss", "type": "loss.mse", "params": {}},
            {"id": "tm_loss", "type": "loss.term", "params": {"weight": 0.5}},
        ],
        "edges": [
            {"from": "sine.value", "to": "enc.x"}, {"from": "enc.y", "to": "sp.x"},
            {"from": "sp.columns", "to": "tm.columns"}, {"from": "tm.winners", "to": "tm.context", "delay": 1},
            {"from": "tm.winners", "to": "dec.x"}, {"from": "dec.y", "to": "loss.pred"},
            {"from": "sine.target", "to": "loss.target"}, {"from": "tm.loss", "to": "tm_loss.value"},
        ],
        "training": {"optimizer": optimizer, "lr": 0.01, "lr_schedule": "cosine", "steps": 40, "seed": 3,
                     "device": "cpu", "checkpoint_every": 0, "log_every": 1000},
    })


@pytest.mark.parametrize("optimizer,batch", [("adam", 1), ("adamw", 3), ("sgd", 2)])
def test_fused_run_gives_the_autograd_weights(optimizer, batch):
    runs = []
    for fused in (True, False):
        t = Trainer(small_graph(optimizer), batch_size=batch)
        for node in t.model.nodes.values():
            if hasattr(node, "fused"):
                node.fused = fused
        if not fused:  # torch.optim's own steps and loss.backward(), as a reference
            t.optimizer = reference_optimizer(t.optimizer)
        t.train_until(40)
        runs.append(t.model.state_dict())
    start = Trainer(small_graph(optimizer), batch_size=batch).model.state_dict()
    moved = max(float((runs[0][k] - start[k]).abs().max()) for k in start if runs[0][k].is_floating_point())
    assert moved > 1e-3  # it really trained
    for k, v in runs[0].items():
        assert torch.allclose(v, runs[1][k], atol=2e-5, rtol=1e-4), k


def reference_optimizer(opt):
    """The same optimizer(s) stepped by torch.optim itself (torch's own step methods)."""
    from deephtm.train.optim import MultiOptimizer

    for o in (opt.optimizers if isinstance(opt, MultiOptimizer) else [opt]):
        if isinstance(o, LazyAdam):
            o.step = o._torch_step
        elif isinstance(o, SGD):
            o.step = lambda closure=None, o=o: torch.optim.SGD.step(o, closure)
    return opt


# ---- the optimizer's direct steps ------------------------------------------------------
@pytest.mark.parametrize("cls,ref_cls", [(LazyAdam, torch.optim.Adam), (LazyAdamW, torch.optim.AdamW)])
def test_lazy_adam_groups_with_equal_rates_step_as_torch_adam(cls, ref_cls):
    torch.manual_seed(4)
    ws = [torch.randn(5, 3, requires_grad=True) for _ in range(4)]
    refs = [w.detach().clone().requires_grad_(True) for w in ws]

    def groups(ps):  # two groups share a rate: one kernel call for both
        return [{"params": ps[:1], "lr": 0.1}, {"params": ps[1:2], "lr": 0.02}, {"params": ps[2:], "lr": 0.1,
                                                                                 "weight_decay": 0.01}]

    start = [w.detach().clone() for w in ws]
    opt, ref = cls(groups(ws), fused=True), ref_cls(groups(refs), fused=True)
    for i in range(5):
        for ps, o in ((ws, opt), (refs, ref)):
            o.zero_grad()
            sum(((p * (k + 1 + i)).sin().sum()) for k, p in enumerate(ps)).backward()
            o.step()
    for a, b in zip(ws, refs):
        assert torch.allclose(a, b, atol=1e-6)
    assert all((a - b).abs().max() > 1e-2 for a, b in zip(ws, start))  # every group moved
    sd, rsd = opt.state_dict(), ref.state_dict()
    assert sd["param_groups"] == rsd["param_groups"]
    for k in rsd["state"]:
        for name, v in rsd["state"][k].items():
            assert torch.allclose(sd["state"][k][name], v), (k, name)
            assert sd["state"][k][name].dtype == v.dtype


def test_sgd_steps_dense_and_sparse_gradients_as_torch_sgd():
    torch.manual_seed(5)
    w = torch.randn(6, 2, requires_grad=True)
    e = torch.randn(10, 2, requires_grad=True)
    rw, re = w.detach().clone().requires_grad_(True), e.detach().clone().requires_grad_(True)
    idx = torch.tensor([1, 3, 3])
    for ps, o in (((w, e), SGD([w, e], lr=0.2)), ((rw, re), torch.optim.SGD([rw, re], lr=0.2))):
        for _ in range(3):
            o.zero_grad()
            (ps[0].pow(2).sum() + torch.nn.functional.embedding(idx, ps[1], sparse=True).sum()).backward()
            o.step()
    assert torch.allclose(w, rw) and torch.allclose(e, re)
    assert not torch.equal(e[1], torch.zeros(2)) and torch.equal(e[0], re[0])
