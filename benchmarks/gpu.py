"""GPU speed of graphs/sine.json (on a CUDA machine; under 3 minutes).

Prints one JSON object: online steps/s (batch 1) and batched samples/s (batch 256 and 4096)
of the engine, fp32 and bf16 autocast (training.precision), and the hand-written dense
reference online with and without a CUDA graph. Without CUDA it prints a JSON message and
exits 0.

The whole engine step is tried in a CUDA graph too (its nodes must then avoid host reads
and data-dependent shapes; the reason of a failed capture is reported). The htm.tm node
of the engine (graphs/sine.json's, on a fixed sequence of 20-of-256 column sets) is timed
eager and replayed as one captured CUDA graph of its forward, backward and SGD step: its
presynaptic rows are fixed-shape [B, A] gathers, A fixed by the SP's number of winners.

    python benchmarks/gpu.py [--seconds 4]
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def timed(fn, seconds: float) -> float:
    """Calls per second of fn over about `seconds` (after a warm-up), synchronized."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def engine(batch: int, precision: str, seconds: float) -> dict:
    from online import make_trainer

    t = make_trainer(batch, device="cuda")
    t.config.precision = precision
    rate = timed(lambda: t.train_until(t.step + 10), seconds) * 10
    return {"batch": batch, "precision": precision, "steps_per_s": round(rate, 1),
            "samples_per_s": round(rate * batch, 1), "loss": round(float(t._loss_sum / max(t._loss_n, 1)), 5)}


def engine_cuda_graph() -> dict:
    """Try to capture one whole engine training step (every node and the optimizer) in a CUDA graph."""
    from online import make_trainer

    t = make_trainer(1, device="cuda")
    t.train_until(5)
    g = torch.cuda.CUDAGraph()
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.cuda.graph(g):
            t.train_until(t.step + 1)
        return {"captured": True}
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        return {"captured": False, "reason": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}


def tm_step(batch: int, seconds: float) -> dict:
    """The engine's htm.tm node alone: forward, backward and its plain SGD step, eager and
    replayed from a CUDA graph (static column and context tensors, updated in place)."""
    from online import make_trainer

    from deephtm.node import Context

    t = make_trainer(batch, device="cuda")
    tm, winners = t.model.nodes["tm"], t.model.nodes["sp"].p["winners"]
    g = torch.Generator().manual_seed(0)
    seq = torch.zeros(16, batch, tm.C)
    for s in seq:
        for b in range(batch):
            s[b, torch.randperm(tm.C, generator=g)[:winners]] = 1.0
    seq = seq.cuda()
    readout = torch.randn(tm.C * tm.K, generator=g).cuda()
    cols, context = seq[0].clone(), torch.zeros(batch, tm.C * tm.K, device="cuda")
    ctx = Context(step=0, batch=batch, device=torch.device("cuda"), generator=t.generator)
    lr = tm.p["distal_lr"]
    i = [0]

    def step():
        out = tm(ctx, columns=cols, context=context)
        loss = out["loss"] + 1e-3 * (out["winners"] @ readout).sum()
        grad, = torch.autograd.grad(loss, [tm.distal])
        with torch.no_grad():  # the row-sparse gradient, added without coalescing it (no host sync)
            tm.distal.index_add_(0, grad._indices()[0], grad._values(), alpha=-lr)
            context.copy_(out["winners"])
            i[0] += 1
            cols.copy_(seq[i[0] % seq.shape[0]])

    eager = timed(step, seconds)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    res = {"batch": batch, "eager_steps_per_s": round(eager, 1)}
    try:
        with torch.cuda.graph(graph):
            step()
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        res["cuda_graph"] = {"captured": False, "reason": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}
        return res
    # cols is then advanced outside the graph (the capture froze the step counter).
    def replay():
        graph.replay()
        i[0] += 1
        cols.copy_(seq[i[0] % seq.shape[0]])

    res["cuda_graph"] = {"captured": True, "steps_per_s": round(timed(replay, seconds), 1),
                         "weights_finite": bool(torch.isfinite(tm.distal).all()),
                         "width_exceeded": bool(tm.width_exceeded)}
    return res


def reference(batch: int, seconds: float, cuda_graph: bool) -> dict:
    """The dense hand-written network; with cuda_graph, forward, backward and both optimizer
    steps replay as one captured graph (static tensors, capturable Adam)."""
    from reference_sine import DISTAL_LR, LR, SineNet

    torch.manual_seed(0)
    net = SineNet(batch, sparse=False).cuda()
    rest = [p for n, p in net.named_parameters() if n != "distal"]
    opts = [torch.optim.Adam(rest, lr=LR, capturable=cuda_graph, foreach=True),
            torch.optim.SGD([net.distal], lr=DISTAL_LR)]
    net.t = torch.zeros((), device="cuda")  # the time step as a tensor: step_loss adds 1 in place

    def train_step():
        loss = net.step_loss()
        for o in opts:
            o.zero_grad(set_to_none=False)
        loss.backward()
        for o in opts:
            o.step()
        return loss

    if not cuda_graph:
        rate = timed(train_step, seconds)
        return {"batch": batch, "cuda_graph": False, "steps_per_s": round(rate, 1)}
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # warm-up on a side stream, as torch's docs ask before capture
            train_step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_loss = train_step()
    rate = timed(g.replay, seconds)
    return {"batch": batch, "cuda_graph": True, "steps_per_s": round(rate, 1),
            "loss_finite": math.isfinite(float(static_loss))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu", "cuda": False, "message": "no CUDA device: nothing measured",
                          "torch": torch.__version__}))
        return
    out = {"benchmark": "gpu", "cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "engine": [], "reference": []}
    torch.cuda.reset_peak_memory_stats()
    for batch in (1, 256, 4096):
        for precision in ("fp32", "bf16"):
            try:
                out["engine"].append(engine(batch, precision, args.seconds))
            except Exception as exc:  # noqa: BLE001 - report and go on with the rest
                out["engine"].append({"batch": batch, "precision": precision, "error": str(exc)[:300]})
    for cg in (False, True):
        try:
            out["reference"].append(reference(1, args.seconds, cg))
        except Exception as exc:  # noqa: BLE001
            out["reference"].append({"batch": 1, "cuda_graph": cg, "error": str(exc)[:300]})
    out["tm_step"] = []
    for batch in (1, 256):
        try:
            out["tm_step"].append(tm_step(batch, args.seconds))
        except Exception as exc:  # noqa: BLE001
            out["tm_step"].append({"batch": batch, "error": str(exc)[:300]})
    out["engine_cuda_graph"] = engine_cuda_graph()  # last: a failed capture may upset the context
    out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
