"""deephtm.train.ctrl_c: the first Ctrl-C stops training at a step boundary, a second one interrupts."""
import os
import signal

import pytest

from deephtm.train.checkpoint import load_checkpoint
from deephtm.train.ctrl_c import StopOnCtrlC
from deephtm.events import TrainerListener
from deephtm.graph.graphfile import Graph
from deephtm.train.trainer import Trainer
from helpers import small_sine_dict


class PressCtrlC(TrainerListener):
    """Sends this process SIGINT at the given reports."""

    def __init__(self, at_steps):
        self.at_steps = set(at_steps)

    def on_log(self, step, metrics):
        if step in self.at_steps:
            os.kill(os.getpid(), signal.SIGINT)


def trainer(tmp_path, press_at):
    d = small_sine_dict(steps=2000)
    d["training"].update({"log_every": 10, "checkpoint_every": 0})
    return Trainer(Graph.from_dict(d), out=tmp_path / "run", listeners=[PressCtrlC(press_at)])


def test_first_press_stops_at_a_step_boundary_and_saves(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    t = trainer(tmp_path, press_at=[100])
    with StopOnCtrlC(t) as ctrl_c:
        summary = t.run()
    assert ctrl_c.pressed and summary["interrupted"]
    assert summary["steps"] == t.step == 100  # the step that was running finished, no more
    _, meta = load_checkpoint(tmp_path / "run")
    assert meta["step"] == 100
    assert signal.getsignal(signal.SIGINT) is before  # restored on the way out
    assert ctrl_c not in t.listeners


def test_a_press_before_the_loop_begins_is_not_lost(tmp_path):
    t = trainer(tmp_path, press_at=[])
    with StopOnCtrlC(t) as ctrl_c:
        signal.raise_signal(signal.SIGINT)
        summary = t.run()  # run() clears earlier stop requests; the press still counts
    assert ctrl_c.pressed and summary["interrupted"] and t.step == 0


def test_second_press_interrupts_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    t = trainer(tmp_path, press_at=[])
    with pytest.raises(KeyboardInterrupt):
        with StopOnCtrlC(t):
            signal.raise_signal(signal.SIGINT)  # the first press only asks for a stop
            signal.raise_signal(signal.SIGINT)  # the second raises here
    assert signal.getsignal(signal.SIGINT) is before
