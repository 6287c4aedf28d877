"""How htm.tm picks the winner cell of a bursting column."""
import torch

from deephtm.node import Context
from deephtm.nodes.htm_tm import TemporalMemory


def make_tm(match_threshold: float) -> TemporalMemory:
    p = {prm.name: prm.default for prm in TemporalMemory.params}
    p.update(cells_per_column=3, init_std=0.0, match_threshold=match_threshold)
    tm = TemporalMemory(p, {"columns": (4,), "context": (12,), "winner_context": None, "apical": None})
    tm.setup(1, torch.Generator().manual_seed(0))
    return tm


def winner_cells(tm, columns, context):
    ctx = Context(step=0, batch=1, device=torch.device("cpu"), generator=torch.Generator())
    out = tm(ctx, columns=columns, context=context)
    return out["winners"][0].nonzero().flatten().tolist()


def test_unmatched_bursts_take_the_least_used_cell_in_turn():
    tm = make_tm(0.2)
    col0 = torch.tensor([[1.0, 0, 0, 0]])
    novel = torch.zeros(1, 12)
    picks = [winner_cells(tm, col0, novel) for _ in range(3)]
    # Every unmatched burst takes a cell nobody has used yet: three bursts, three cells.
    assert sorted(c for pick in picks for c in pick) == [0, 1, 2]
    assert tm.usage[0].tolist() == [1.0, 1.0, 1.0] and tm.usage[1:].sum() == 0


def test_a_matching_cell_wins_over_the_least_used_one():
    tm = make_tm(0.2)
    with torch.no_grad():
        tm.distal[7, 2] = 0.3  # cell 7 (column 2) has learned to depolarize cell 2 (column 0)
        tm.usage[0, 2] = 5.0  # and cell 2 is the most used one of column 0
    context = torch.zeros(1, 12)
    context[0, 7] = 1.0
    assert winner_cells(tm, torch.tensor([[1.0, 0, 0, 0]]), context) == [2]
    with torch.no_grad():
        tm.distal[7, 2] = 0.1  # below the match threshold: a fresh cell instead
    assert winner_cells(tm, torch.tensor([[1.0, 0, 0, 0]]), context) in ([0], [1])


def test_without_a_match_threshold_the_best_cell_always_wins():
    tm = make_tm(0.0)
    with torch.no_grad():
        tm.distal[7, 1] = 0.01
    context = torch.zeros(1, 12)
    context[0, 7] = 1.0
    for _ in range(3):
        assert winner_cells(tm, torch.tensor([[1.0, 0, 0, 0]]), context) == [1]
    assert tm.usage.sum() == 0
