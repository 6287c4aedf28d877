"""benchmarks/reference_sine.py: the no-autograd version computes the autograd version's math."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from deephtm.events import TrainerListener  # noqa: E402
from deephtm.graph.graphfile import load_graph  # noqa: E402
from deephtm.train.trainer import Trainer  # noqa: E402
from reference_sine import ManualRunner, Runner  # noqa: E402

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "sine.json"


@pytest.mark.parametrize("sparse", [False, True])
def test_manual_backward_gives_the_autograd_weights(sparse):
    manual, auto = ManualRunner(sparse), Runner(1, sparse=sparse)
    net = auto.net
    for _ in range(60):
        rng = torch.get_rng_state()  # both draw the least-used cells' noise from the global RNG
        auto.run(1)
        torch.set_rng_state(rng)
        manual.run(1)
    pairs = {"encoder 1": (manual.W1, net.enc_w), "encoder 2": (manual.W2, net.enc2.weight.t()),
             "sp": (manual.Ws, net.sp.weight.t()), "sp bias": (manual.bs, net.sp.bias),
             "decoder in": (manual.Wd, net.dec_w), "decoder out": (manual.Wo, net.dec_out.weight.t()),
             "distal": (manual.distal, net.distal), "usage": (manual.usage, net.usage), "duty": (manual.duty, net.duty),
             "offset": (manual.offset, net.offset)}
    moved = {k: float((b.detach() - a0).abs().max()) for k, (a0, b) in
             {"sp": (ManualRunner(sparse).Ws, net.sp.weight.t()), "distal": (ManualRunner(sparse).distal, net.distal),
              "decoder in": (ManualRunner(sparse).Wd, net.dec_w)}.items()}
    assert min(moved.values()) > 1e-3  # the weights really trained, so the comparison means something
    # Adam divides by the root of tiny second moments, which magnifies float rounding over the
    # steps; a wrong gradient moves a weight by about the learning rate (2e-3) in one step.
    for name, (a, b) in pairs.items():
        assert torch.allclose(a, b.detach(), atol=1e-4, rtol=1e-4), name


class Losses(TrainerListener):
    def __init__(self):
        self.values = []

    def on_log(self, step, metrics):
        self.values.append(metrics["loss"])


def engine_and_reference(sparse: bool) -> tuple[Trainer, Losses, Runner]:
    """The engine training graphs/sine.json and the reference started from its weights,
    its sine phase and its random stream."""
    losses = Losses()
    trainer = Trainer(load_graph(GRAPH), batch_size=1, device="cpu", listeners=[losses])
    trainer.config.log_every, trainer.config.checkpoint_every = 1, 0
    nodes = trainer.model.nodes
    ref = Runner(1, sparse=sparse)
    net = ref.net
    with torch.no_grad():
        enc, sp, dec = nodes["encoder"].net, nodes["sp"].proj, nodes["decoder"].net
        for dst, src in ((net.enc_w, enc[0].weight.t()), (net.enc_b, enc[0].bias), (net.enc2.weight, enc[2].weight),
                         (net.enc2.bias, enc[2].bias), (net.sp.weight, sp.weight), (net.sp.bias, sp.bias),
                         (net.distal, nodes["tm"].distal), (net.dec_w, dec[0].weight), (net.dec_b, dec[0].bias),
                         (net.dec_out.weight, dec[2].weight), (net.dec_out.bias, dec[2].bias),
                         (net.phase, nodes["sine"].phase)):
            assert dst.shape == src.shape
            dst.copy_(src)
    net.noise_generator = torch.Generator().manual_seed(0)
    net.noise_generator.set_state(trainer.generator.get_state())
    return trainer, losses, ref


@pytest.mark.parametrize("sparse", [False, True])
def test_reference_computes_the_graphs_losses(sparse):
    steps = 12  # a few dozen steps on, float rounding (magnified by Adam) parts them
    trainer, engine, ref = engine_and_reference(sparse)
    losses = []
    for _ in range(steps):
        ref.run(1)
        losses.append(float(ref.last_loss))
    trainer.train_until(steps)
    assert engine.values == pytest.approx(losses, rel=1e-5)
    assert torch.allclose(trainer.model.nodes["sp"].offset, ref.net.offset)  # the same columns won
