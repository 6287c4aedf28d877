"""metric.nrmse and metric.sp_entropy queue their steps and fold them into their windows a
block at a time: what they report and what a checkpoint holds is what one step at a time
gives."""
import math

import torch

from deephtm.node import Context
from deephtm.nodes.metric_nrmse import NRMSE
from deephtm.nodes.metric_sp_entropy import SDREntropy, count_entropy_ratio

QUEUE_STEPS = NRMSE.QUEUE_STEPS


def params(cls, **kw):
    p = {prm.name: prm.default for prm in cls.params}
    p.update(kw)
    return p


def ctx(step):
    return Context(step=step, batch=2, device=torch.device("cpu"), generator=torch.Generator())


def test_nrmse_over_the_window_counts_every_queued_step():
    window, steps = 50, 2 * QUEUE_STEPS + 7  # several full blocks and a part of one, past the window
    m = NRMSE(params(NRMSE, window=window), {"pred": (3,), "target": (3,)})
    g = torch.Generator().manual_seed(0)
    preds, targets = torch.randn(steps, 2, 3, generator=g), torch.randn(steps, 2, 3, generator=g)
    for s in range(steps):
        m(ctx(s), pred=preds[s], target=targets[s])
    assert m._queued == steps % min(QUEUE_STEPS, window)  # the last part still waits
    last = slice(steps - window, steps)
    err = (preds[last] - targets[last]).pow(2).mean()
    t = targets[last]
    std = math.sqrt(t.pow(2).mean() - t.mean() ** 2)
    assert math.isclose(m.value(), math.sqrt(err) / std, rel_tol=1e-5)
    assert m._queued == 0 and int(m.count) == steps


def test_a_checkpoint_of_the_nrmse_holds_its_queued_steps():
    a = NRMSE(params(NRMSE, window=100), {"pred": (1,), "target": (1,)})
    for s in range(10):
        a(ctx(s), pred=torch.full((2, 1), float(s)), target=torch.full((2, 1), float(s % 3)))
    state = a.state_dict()
    assert int(state["count"]) == 10
    b = NRMSE(params(NRMSE, window=100), {"pred": (1,), "target": (1,)})
    b.load_state_dict(state)
    assert b.value() == a.value() and a.value() > 0


def test_sp_entropy_counts_wins_over_exactly_the_window():
    window, units, steps = 70, 12, 3 * QUEUE_STEPS + 5
    m = SDREntropy(params(SDREntropy, window=window), {"columns": (units,)})
    g = torch.Generator().manual_seed(1)
    cols = (torch.rand(steps, 2, units, generator=g) < 0.3).float() * torch.rand(steps, 2, units, generator=g)
    for s in range(steps):
        m(ctx(s), columns=cols[s])
    expected = (cols[steps - window:] != 0).sum((0, 1))
    values = m.values("e")
    assert torch.equal(m.counts, expected)
    assert values["e"] == count_entropy_ratio(expected)
    assert values["sp_active_columns"] == int((expected > 0).sum())
    # a checkpoint holds the queued steps too
    m(ctx(steps), columns=cols[0])
    assert int(m.state_dict()["steps"]) == steps + 1
