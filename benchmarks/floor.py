"""The floor under graphs/sine.json's training speed on this machine, beside the engine.

Whatever is made sparse, every implementation of the seed's network still trains its dense
front at full width each step: the encoder (256 scalar bits, 16 on -> 256 -> 256, ReLU) and
the SP's 256 x 256 projection, forward, backward and Adam. This script times only that front,
written as plainly and cheaply as eager PyTorch allows (the first layer sums the 16 weight
rows of the bits that are on, nn.Linear after it, fused Adam, a sum as the loss),
and the bare matrix products inside it (forward, weight gradient, input gradient of the
two 256 x 256 layers, nothing else). It also times one fused Adam step over the weights
with dense gradients, and, at batch 1, the whole network with a hand-derived backward and
no autograd, dense and sparse (reference_sine.ManualRunner). The floors are not complete
networks: they bound the rate of any version of sine.json from above.

The engine (graphs/sine.json through the Trainer) and the whole network written by hand the
sparse way (benchmarks/reference_sine.py) run at each batch size in the same process,
interleaved in rounds with the floors, so that load hits them all alike.

    .venv/bin/python benchmarks/floor.py [--batches 1,32,256] [--rounds 3] [--threads 1]
"""
import argparse
import json
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from online import Engine, interleaved  # noqa: E402
from reference_sine import BITS, BITS_ON, ManualRunner, Runner, SineNet  # noqa: E402

HIDDEN, COLUMNS = 256, 256
TARGETS = {"online_steps_per_s": 1500, "batched_samples_per_s": 50_000}


class DenseFront:
    """Encoder and SP projection only: forward, backward, fused Adam."""

    def __init__(self, batch: int):
        torch.manual_seed(0)
        self.bits = nn.EmbeddingBag(BITS, HIDDEN, mode="sum")  # dense gradient, as the engine's Adam
        self.bias = nn.Parameter(torch.zeros(HIDDEN))
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, COLUMNS))
        self.opt = torch.optim.Adam([*self.bits.parameters(), self.bias, *self.net.parameters()], lr=1e-3, fused=True)
        first = torch.randint(0, BITS - BITS_ON + 1, (batch, 1))
        self.on = first + torch.arange(BITS_ON)  # each row's bits that are on

    def run(self, steps: int) -> None:
        for _ in range(steps):
            loss = self.net(self.bits(self.on) + self.bias).sum()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


class AdamOnly:
    """One fused Adam step, with fixed gradients and nothing else, over the weights whose
    gradient is dense in the engine: all that Adam trains but the decoder's input weight,
    whose rows the engine updates lazily (decoder.mlp's row-sparse gradient)."""

    def __init__(self, batch: int):
        torch.manual_seed(0)
        net = SineNet(1, sparse=False)
        adam_groups, _ = net.param_groups()
        self.params = [p for g in adam_groups for p in g["params"] if p is not net.dec_w]
        for p in self.params:
            p.grad = torch.randn_like(p)
        self.opt = torch.optim.Adam(self.params, lr=1e-3, fused=True)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.opt.step()


class BareProducts:
    """The three matrix products per 256 x 256 layer of a training step, and nothing else."""

    def __init__(self, batch: int):
        g = torch.Generator().manual_seed(0)
        self.a = torch.randn(batch, HIDDEN, generator=g)
        self.grad = torch.randn(batch, COLUMNS, generator=g)
        self.w = torch.randn(HIDDEN, COLUMNS, generator=g)

    def run(self, steps: int) -> None:
        a, grad, w = self.a, self.grad, self.w
        for _ in range(steps):
            for _layer in range(2):  # the encoder's second layer and the SP
                torch.mm(a, w)
                torch.mm(a.t(), grad)
                torch.mm(grad, w.t())


def one_batch(batch: int, rounds: int) -> dict:
    steps = max(10, min(400, 8000 // batch))
    contenders = {"engine": Engine(batch), "handwritten_sparse": Runner(batch, sparse=True),
                  "dense_front": DenseFront(batch), "bare_products": BareProducts(batch),
                  "adam_only": AdamOnly(batch)}
    if batch == 1:  # the no-autograd versions are written for one stream
        contenders["manual_dense"] = ManualRunner(sparse=False)
        contenders["manual_sparse"] = ManualRunner(sparse=True)
    res = interleaved(contenders, rounds, steps)
    rate = {k: v["steps_per_cpu_s"] for k, v in res.items()}
    wall = {k: v["steps_per_wall_s"] for k, v in res.items()}
    return {
        "batch": batch,
        **{f"{k}_samples_per_s": round(rate[k] * batch, 1) for k in contenders},
        # with several threads one CPU second is less than one wall second: both are shown
        **{f"{k}_samples_per_wall_s": round(wall[k] * batch, 1) for k in contenders},
        "engine_over_dense_front": round(rate["engine"] / rate["dense_front"], 3),
        "contenders": res,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="1: rates are per core")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [one_batch(int(b), args.rounds) for b in args.batches.split(",")]
    print(json.dumps({
        "benchmark": "floor", "graph": "graphs/sine.json", "device": "cpu", "threads": args.threads,
        "rounds": args.rounds, "rate_unit": "per CPU second of this process (median of rounds)",
        "targets": TARGETS, "batches": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
