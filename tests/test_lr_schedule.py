"""Learning-rate schedules and per-node rate multipliers reach the optimizer."""

import pytest

from deephtm.graph.graphfile import Graph
from deephtm.graph.training import TrainingConfig, lr_factor
from deephtm.train.trainer import Trainer

from helpers import SINE, small_sine_dict


def trainer_for(d) -> Trainer:
    g = Graph.from_dict(d)
    g.path = str(SINE)
    return Trainer(g)


def test_factor_shapes():
    cos = TrainingConfig(lr_schedule="cosine", steps=100)
    assert lr_factor(cos, 0) == 1.0
    assert lr_factor(cos, 50) == pytest.approx(0.5)
    assert lr_factor(cos, 100) == pytest.approx(0.0)
    assert lr_factor(cos, 500) == pytest.approx(0.0)  # training on past 'steps' keeps the floor
    lin = TrainingConfig(lr_schedule="linear", steps=100, min_lr_ratio=0.1)
    assert lr_factor(lin, 50) == pytest.approx(0.55)
    assert lr_factor(lin, 100) == pytest.approx(0.1)
    warm = TrainingConfig(warmup_steps=10, steps=100)
    assert lr_factor(warm, 0) == pytest.approx(0.1)
    assert lr_factor(warm, 9) == pytest.approx(1.0)
    assert lr_factor(warm, 60) == 1.0  # constant after the warm-up
    assert lr_factor(TrainingConfig(), 12345) == 1.0


def test_trainer_decays_every_group_and_keeps_node_scales():
    d = small_sine_dict(steps=40)
    d["training"].update({"lr": 0.01, "lr_schedule": "linear", "min_lr_ratio": 0.25})
    for n in d["nodes"]:
        if n["id"] == "encoder":
            n["params"]["lr_scale"] = 0.5
    t = trainer_for(d)
    start = [g["lr"] for g in t.optimizer.param_groups]
    assert 0.005 in start and 0.01 in start  # the encoder's scale and the graph's rate
    t.run()
    end = [g["lr"] for g in t.optimizer.param_groups]
    # The last step ran at step 39 of 40: factor 0.25 + 0.75 * (1 - 39/40).
    factor = 0.25 + 0.75 * (1 - 39 / 40)
    for s, e in zip(start, end):
        assert e == pytest.approx(s * factor), (s, e)


def test_schedule_params_are_validated():
    d = small_sine_dict()
    d["training"]["lr_schedule"] = "exponential"
    with pytest.raises(Exception, match="lr_schedule"):
        Graph.from_dict(d)
