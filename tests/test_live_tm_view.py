"""The live TM cell view works for both temporal memories: trained on the high-order task,
the sampler's cell states show cells that were predicted and fired (code 2)."""
import json
from pathlib import Path

import pytest
import torch

from deephtm.graph.graphfile import Graph
from deephtm.live.probes import Probes
from deephtm.live.sampler import Sampler
from deephtm.train.trainer import Trainer

HIGH_ORDER = Path(__file__).resolve().parent.parent / "graphs" / "high_order.json"


@pytest.mark.parametrize("tm_type", ["htm.tm_segments", "htm.tm"])
def test_tm_cell_view_shows_predicted_active_cells(tm_type):
    d = json.loads(HIGH_ORDER.read_text())
    tm = next(n for n in d["nodes"] if n["id"] == "tm")
    if tm["type"] != tm_type:  # htm.tm with its own defaults
        tm["type"], tm["params"] = tm_type, {"cells_per_column": 8, "match_threshold": 0.2}
    d["training"].update(steps=800, log_every=400)
    g = Graph.from_dict(d)
    g.path = str(HIGH_ORDER)
    trainer = Trainer(g)
    payloads = []
    sampler = Sampler(Probes.find(trainer.resolved), payloads.append, interval_s=0.0)
    sampler.model = trainer.model
    trainer.listeners.append(sampler)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    states = [p["tm_state"] for p in payloads if "tm_state" in p]
    assert len(states) > 100
    K = int(tm["params"]["cells_per_column"])
    assert states[-1].shape == (K, 256)
    late = states[-100:]
    # Some steps show predicted cells firing (the learned transitions), each step at most
    # the SP's 8 active columns fire, and predicted-only cells (code 1) appear too.
    assert sum(int((s == 2).any()) for s in late) > 50
    assert all(((s >= 2).any(0)).sum() <= 8 for s in late)
    assert any((s == 1).any() for s in late)
