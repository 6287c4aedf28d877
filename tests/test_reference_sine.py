"""benchmarks/reference_sine.py: the no-autograd version computes the autograd version's math."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from reference_sine import ManualRunner, Runner  # noqa: E402


@pytest.mark.parametrize("sparse", [False, True])
def test_manual_backward_gives_the_autograd_weights(sparse):
    manual, auto = ManualRunner(sparse), Runner(1, sparse=sparse)
    net = auto.net
    for _ in range(60):
        rng = torch.get_rng_state()  # both draw the least-used cells' noise from the global RNG
        auto.run(1)
        torch.set_rng_state(rng)
        manual.run(1)
    pairs = {"encoder 1": (manual.W1, net.encoder[0].weight.t()), "encoder 2": (manual.W2, net.encoder[2].weight.t()),
             "sp": (manual.Ws, net.sp.weight.t()), "sp bias": (manual.bs, net.sp.bias),
             "decoder in": (manual.Wd, net.dec_w), "decoder out": (manual.Wo, net.dec_out.weight.t()),
             "distal": (manual.distal, net.distal), "usage": (manual.usage, net.usage), "duty": (manual.duty, net.duty)}
    moved = {k: float((b.detach() - a0).abs().max()) for k, (a0, b) in
             {"sp": (ManualRunner(sparse).Ws, net.sp.weight.t()), "distal": (ManualRunner(sparse).distal, net.distal),
              "decoder in": (ManualRunner(sparse).Wd, net.dec_w)}.items()}
    assert min(moved.values()) > 1e-3  # the weights really trained, so the comparison means something
    for name, (a, b) in pairs.items():
        assert torch.allclose(a, b.detach(), atol=1e-6, rtol=1e-5), name
