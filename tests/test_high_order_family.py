"""The high-order task over generated sets whose middles share one pool of symbols
(source.sequence's middle_pool), as benchmarks/high_order_family.py runs it: the generator
really shares symbols, and graphs/high_order.json's settings learn such sets."""
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from deephtm.errors import GraphError
from deephtm.graph.graphfile import parse_text
from deephtm.graph.registry import get
from deephtm.graph.resolve import check_params
from deephtm.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from high_order_family import Diagnosis, family_graph, first_order_baseline  # noqa: E402


def generated(**params) -> list[list[int]]:
    cls = get("source.sequence")
    node = cls(check_params(cls, "seq", params), {})
    node.node_id = "seq"
    node.setup(1, torch.Generator().manual_seed(0))
    return node.sequences


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pooled_sets_share_symbols_that_only_earlier_context_disambiguates(seed):
    seqs = generated(symbols=20, pairs=4, length=8, middle_pool=8, seed=seed)
    assert len(seqs) == 8 and all(len(s) == 8 for s in seqs)
    # Each pair shares its middle; its firsts and its lasts differ, so only the first element
    # (7 steps back) tells which last follows.
    for a, b in zip(seqs[0::2], seqs[1::2]):
        assert a[1:-1] == b[1:-1] and a[0] != b[0] and a[-1] != b[-1]
    # Middle symbols recur across pairs, with different successors.
    successors = defaultdict(set)
    for s in seqs:
        for x, y in zip(s, s[1:]):
            successors[x].add(y)
    middles = {x for s in seqs for x in s[1:-1]}
    assert len(middles) <= 8
    assert any(len(successors[x]) >= 3 for x in middles), successors
    # Some symbol follows the same predecessor in two places but is itself followed by
    # different symbols: two steps of context are not enough there either.
    after_bigram = defaultdict(set)
    for s in seqs:
        for x, y, z in zip(s, s[1:], s[2:]):
            after_bigram[(x, y)].add(z)
    assert any(len(v) >= 2 for v in after_bigram.values()), after_bigram


def test_pooled_sets_differ_by_seed_and_repeat_for_one_seed():
    a = generated(symbols=20, pairs=3, length=10, middle_pool=8, seed=5)
    assert a == generated(symbols=20, pairs=3, length=10, middle_pool=8, seed=5)
    assert a != generated(symbols=20, pairs=3, length=10, middle_pool=8, seed=6)
    assert all(x != y for s in a for x, y in zip(s[1:-1], s[2:-1]))  # no symbol twice in a row


def test_pooled_sets_need_room_for_the_pool_and_the_ends():
    with pytest.raises(GraphError, match="middle_pool"):
        generated(symbols=10, pairs=2, length=6, middle_pool=7)
    with pytest.raises(GraphError, match="middle_pool"):  # 2 symbols allow only 2 middles of length 4
        generated(symbols=20, pairs=3, length=6, middle_pool=2)


def test_swap_exchanges_the_endings_of_pooled_pairs():
    cls = get("source.sequence")
    node = cls(check_params(cls, "seq", dict(symbols=20, pairs=3, length=6, middle_pool=6, swap_step=100)), {})
    node.setup(1, torch.Generator().manual_seed(0))
    before, after = node.sequences_at(99), node.sequences_at(100)
    for i in range(0, 6, 2):
        assert after[i][:-1] == before[i][:-1] and after[i][-1] == before[i + 1][-1]


@pytest.mark.parametrize("pairs,length,seed", [(4, 6, 11), (3, 8, 12)])
def test_graph_settings_learn_a_pooled_set_far_above_the_first_order_baseline(pairs, length, seed):
    """A shortened run of the family: no swap, 3,000 steps; the last elements need the whole
    sequence as context, yet the moving accuracy must be far above a first-order model's and
    above the 0.5 of guessing a pair's ending."""
    steps = 3000
    d = family_graph(pairs, length, seed, swap=0, steps=steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = Trainer(parse_text(json.dumps(d))).run()["metrics"]
    finally:
        torch.set_num_threads(threads)
    seq_params = next(n["params"] for n in d["nodes"] if n["type"] == "source.sequence")
    baseline = first_order_baseline(seq_params, steps, swap=0)["before_swap"]
    assert baseline <= 0.6, baseline  # the set really is high-order
    assert m["accuracy"] >= 0.85 and m["accuracy"] >= baseline + 0.4, (m, baseline)


def test_the_diagnosis_sees_unlearned_bursts_early_and_classifies_every_scored_answer():
    """Bursts inside sequences are far more frequent before the transitions are learned than
    after; every scored step is counted once, as right or wrong; column fallbacks are counted."""
    d = family_graph(4, 6, 11, swap=0, steps=1500)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(parse_text(json.dumps(d)))
        early, late = Diagnosis(trainer, 0, 500), Diagnosis(trainer, 1000, 1500)
        trainer.listeners += [early, late]
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    e, l = early.report(), late.report()
    assert sum(e["bursts_inside_sequences"].values()) > 2 * sum(l["bursts_inside_sequences"].values()), (e, l)
    scored = l["wrong"]["n"] + l["right"]["n"]
    assert 500 / 6 / 2 < scored < 500 / 6, l  # one scored step per sequence and its noise element
    for part in ("wrong", "right"):
        assert 0.0 <= l[part]["winners_shared_with_pair"] <= 1.0
        assert sum(l[part]["first_burst_at_position"].values()) == l[part]["n"]
    # The graph's TM has column_fallback on: unpredicted columns inside sequences that fired
    # only some of their cells are counted apart from bursts.
    assert l["column_fallbacks_inside_sequences"] > 0, l
