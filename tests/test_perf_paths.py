"""The fast paths compute the same thing as the plain ones: lazy row-sparse Adam, sparse
gradient clipping, the plain-SGD optimizer step."""
import torch
import torch.nn.functional as F

from deephtm.train.optim import LazyAdam, LazyAdamW, PlainSGD, clip_grad_norm_, make_optimizer, optimizer_step


def bag_loss(w, idx, offsets, sparse):
    return F.embedding_bag(idx, w, offsets, mode="sum", sparse=sparse).pow(2).sum()


def test_lazy_adam_matches_sparse_adam_on_row_gradients():
    torch.manual_seed(0)
    w = torch.randn(10, 4, requires_grad=True)
    ref = w.detach().clone().requires_grad_(True)
    opt, ref_opt = LazyAdam([w], lr=0.1, fused=True), torch.optim.SparseAdam([ref], lr=0.1)
    for idx in ([1, 3, 3, 7], [2, 3], [9, 1, 1]):
        for p, o in ((w, opt), (ref, ref_opt)):
            o.zero_grad()
            bag_loss(p, torch.tensor(idx), torch.tensor([0, 1]), sparse=True).backward()
            o.step()
    assert torch.allclose(w, ref, atol=1e-5)
    untouched = [0, 4, 5, 6, 8]
    assert not torch.equal(w[[1, 2, 3, 7, 9]], torch.zeros(5, 4))
    assert torch.equal(opt.state[w]["exp_avg"][untouched], torch.zeros(5, 4))


def test_lazy_adam_is_fused_adam_when_every_row_is_active():
    for lazy_cls, cls in ((LazyAdam, torch.optim.Adam), (LazyAdamW, torch.optim.AdamW)):
        torch.manual_seed(1)
        w = torch.randn(6, 3, requires_grad=True)
        ref = w.detach().clone().requires_grad_(True)
        opt, ref_opt = lazy_cls([w], lr=0.05, fused=True), cls([ref], lr=0.05)
        for _ in range(4):
            opt.zero_grad(), ref_opt.zero_grad()
            bag_loss(w, torch.arange(6), torch.tensor([0]), sparse=True).backward()
            bag_loss(ref, torch.arange(6), torch.tensor([0]), sparse=False).backward()
            opt.step(), ref_opt.step()
        assert torch.allclose(w, ref, atol=1e-5), lazy_cls
        # The same state layout as torch's Adam: a checkpoint of one loads into the other.
        ref_opt.load_state_dict(opt.state_dict())
        assert set(opt.state[w]) == {"step", "exp_avg", "exp_avg_sq"}


def test_clip_grad_norm_with_sparse_and_dense_gradients():
    torch.manual_seed(2)
    a = torch.randn(8, 3, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    a2, b2 = (t.detach().clone().requires_grad_(True) for t in (a, b))
    idx, off = torch.tensor([0, 2, 2, 5]), torch.tensor([0])
    (bag_loss(a, idx, off, True) + b.pow(2).sum() * 3).backward()
    (bag_loss(a2, idx, off, False) + b2.pow(2).sum() * 3).backward()
    total = clip_grad_norm_([a, b], 1.0)
    ref_total = torch.nn.utils.clip_grad_norm_([a2, b2], 1.0)
    assert torch.allclose(total, ref_total)
    assert torch.allclose(a.grad.to_dense(), a2.grad, atol=1e-6)
    assert torch.allclose(b.grad, b2.grad, atol=1e-6)


def sgd_problem():
    """A row-sparse and a dense weight in plain SGD groups, and a loss over both."""
    torch.manual_seed(4)
    w = torch.randn(8, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    idx, off = torch.tensor([1, 4, 4]), torch.tensor([0])
    return [w, b], lambda: bag_loss(w, idx, off, True) + (b * 2).pow(2).sum()


def reference_sgd(clip: float) -> list[torch.Tensor]:
    params, loss = sgd_problem()
    opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.3}])
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        if clip:
            clip_grad_norm_(params, clip)
        opt.step()
    return params


def test_optimizer_step_on_plain_sgd_weights_matches_torch_sgd():
    for clip in (0.0, 0.5):  # 0: gradients straight from the engine; else through .grad and clipping
        params, loss = sgd_problem()
        opt = make_optimizer("sgd", [{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.3}], 0.1)
        stepper = PlainSGD.of(opt, params)
        assert stepper is not None
        for _ in range(3):
            optimizer_step(stepper, loss(), params, clip)
        for p, ref in zip(params, reference_sgd(clip)):
            assert torch.allclose(p, ref, atol=1e-6), clip
        assert all(p.grad is None for p in params) == (clip == 0)


def test_optimizer_step_sets_the_scheduled_rates_before_stepping():
    params, loss = sgd_problem()
    opt = make_optimizer("sgd", [{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 1.0}], 1.0)
    calls = []
    for _ in range(3):
        optimizer_step(opt, loss(), params, 0.5, lrs=[0.1, 0.3], after_backward=lambda: calls.append(1))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3] and len(calls) == 3
    for p, ref in zip(params, reference_sgd(0.5)):
        assert torch.allclose(p, ref, atol=1e-6)


def test_sparse_input_linear_matches_a_dense_linear_layer():
    from deephtm.nodes.decoder_mlp import SparseInputLinear

    torch.manual_seed(3)
    layer = SparseInputLinear(40, 6)
    x = torch.zeros(3, 40)
    x[0, [1, 7]] = torch.tensor([0.5, 2.0])
    x[2, [7, 39]] = torch.tensor([1.5, -1.0])  # stream 1 has no active input
    x.requires_grad_(True)
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)
    gy = torch.randn(3, 6)
    y = layer(x)
    y.backward(gy)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = x_ref @ w + b
    y_ref.backward(gy)
    assert torch.allclose(y, y_ref, atol=1e-6)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)  # zero inputs get their gradient too
    assert layer.weight.grad.is_sparse
    assert torch.allclose(layer.weight.grad.to_dense(), w.grad, atol=1e-6)
    assert torch.allclose(layer.bias.grad, b.grad, atol=1e-6)
    dense = torch.randn(2, 40)  # mostly non-zero: a plain matmul, dense gradient
    layer.weight.grad = None
    layer(dense).sum().backward()
    assert not layer.weight.grad.is_sparse


def test_bf16_precision_runs_under_autocast_with_fp32_weights_and_loss():
    # bf16 matmuls are emulated (slow) on most CPUs: a few steps here; learning curves are
    # checked by benchmarks/gpu.py on a GPU.
    import math

    from deephtm.graph.graphfile import Graph
    from deephtm.train.trainer import Trainer
    from helpers import SINE, small_sine_dict

    d = small_sine_dict(steps=30, columns=32, hidden=16)
    d["training"].update(precision="bf16", device="cpu", checkpoint_every=0, log_every=10)
    g = Graph.from_dict(d)
    g.path = str(SINE)
    t = Trainer(g)
    before = {k: v.clone() for k, v in t.model.named_parameters()}
    t.run()
    assert math.isfinite(t.last_metrics["loss"])
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    assert all(not torch.equal(before[k], v) for k, v in t.model.named_parameters() if k.startswith("nodes.decoder"))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the decoder really computes in bf16
        y = t.model.nodes["decoder"].forward(None, x=torch.ones(1, 32 * 4))["y"]
    assert y.dtype == torch.bfloat16
