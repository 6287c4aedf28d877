"""Small graph builders shared by the engine tests."""
import copy
import json
from pathlib import Path

import torch

from deephtm.node import Context

ROOT = Path(__file__).resolve().parent.parent
SINE = ROOT / "graphs" / "sine.json"
HIGH_ORDER = ROOT / "graphs" / "high_order.json"


def sine_dict() -> dict:
    return json.loads(SINE.read_text())


def small_sine_dict(steps: int = 300, columns: int = 64, cells: int = 4, hidden: int = 32) -> dict:
    """The seed network, shrunk so a test trains it in about a second."""
    d = copy.deepcopy(sine_dict())
    sizes = {"encoder": {"hidden": hidden}, "sp": {"columns": columns, "winners": 4},
             "tm": {"cells_per_column": cells}, "decoder": {"hidden": hidden}}
    for n in d["nodes"]:
        n["params"].update(sizes.get(n["id"], {}))
    d["training"].update({"steps": steps, "log_every": 50, "checkpoint_every": 100})
    return d


def short_high_order_dict(pairs: int, swap_step: int, window: int, symbols: int = 12, length: int = 4) -> dict:
    """graphs/high_order.json with fewer symbols and shorter sequences, for a short run; its
    SP and TM settings are kept."""
    d = json.loads(HIGH_ORDER.read_text())
    for n in d["nodes"]:
        if n["id"] == "seq":
            n["params"].update({"symbols": symbols, "pairs": pairs, "length": length, "swap_step": swap_step})
        if n["type"] == "decoder.classifier":
            n["params"]["classes"] = symbols
        if n["type"] == "metric.accuracy":
            n["params"].update({"swap_step": swap_step, "window": window})
    return d


SEQUENCE_SYMBOLS = 16


def sequence_tm_dict(sequences: str, steps: int, after: str = "", swap_step: int = 0, columns: int = 64,
                     winners: int = 4, cells: int = 8, boost: float = 0.0, **tm_params) -> dict:
    """One-hot symbols -> SP -> TM on the given sequences (one unused-symbol noise element
    between sequences), the TM learning from its own self-supervised loss."""
    return {
        "format_version": 1, "name": "sequence",
        "nodes": [
            {"id": "seq", "type": "source.sequence", "params": {
                "symbols": SEQUENCE_SYMBOLS, "sequences": sequences, "sequences_after": after,
                "swap_step": swap_step, "noise": 1, "noise_from": "unused"}},
            {"id": "sp", "type": "htm.sp", "params": {"columns": columns, "winners": winners,
                                                      "output": "binary", "boost_strength": boost}},
            {"id": "tm", "type": "htm.tm", "params": {"cells_per_column": cells, "match_threshold": 0.2,
                                                      **tm_params}},
            {"id": "tm_loss", "type": "loss.term", "params": {}},
        ],
        "edges": [
            {"from": "seq.onehot", "to": "sp.x"},
            {"from": "sp.columns", "to": "tm.columns"},
            {"from": "tm.cells", "to": "tm.context", "delay": 1},
            {"from": "tm.winners", "to": "tm.winner_context", "delay": 1},
            {"from": "tm.loss", "to": "tm_loss.value"},
        ],
        "training": {"steps": steps, "lr": 0.01, "seed": 0, "device": "cpu", "log_every": 100,
                     "checkpoint_every": 0},
    }


def replay_symbols(trainer, symbols: list[int]) -> list[dict]:
    """Feed symbols through a trained sequence graph's SP and TM (no learning); the TM's
    outputs of each step, plus the SP's 'columns'."""
    sp, tm = trainer.model.nodes["sp"], trainer.model.nodes["tm"]
    sp.eval()
    tm.eval()
    tm.used_outputs = {p.name for p in tm.outputs}
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    context, winners, steps = None, None, []
    with torch.no_grad():
        for s in symbols:
            one_hot = torch.nn.functional.one_hot(torch.tensor([s]), SEQUENCE_SYMBOLS).float()
            cols = sp(ctx, one_hot)["columns"]
            out = tm(ctx, cols, context=context, winner_context=winners)
            out["columns"] = cols
            context, winners = out["cells"], out["winners"]
            steps.append(out)
    return steps


def write(tmp_path, d, name="g.json") -> Path:
    p = tmp_path / name
    p.write_text(d if isinstance(d, str) else json.dumps(d))
    return p


class Densify(torch.autograd.Function):
    """Identity whose backward turns a row-sparse gradient dense: gradcheck compares dense
    gradients."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.to_dense()
