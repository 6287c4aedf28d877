"""NaN/inf, running out of memory and a failing data source stop training with one clear
line naming the step (TrainingError; exit 2 from the CLI), and the last good checkpoint
stays exactly as it was saved, with finite weights."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deephtm.graph import registry
from deephtm.train.checkpoint import checkpoint_path, load_checkpoint
from deephtm.errors import TrainingError
from deephtm.events import TrainerListener
from deephtm.graph.graphfile import Graph
from deephtm.node import Node
from deephtm.nodes.source_sine import SineSource
from deephtm.graph.spec import Param, Port
from deephtm.train.trainer import Trainer

from helpers import ROOT, small_sine_dict, write

FAIL_AT = 13  # the step (0-based) that fails; checkpoints every 5 steps, so the last good one is 10


class FlakySine(SineSource):
    """A sine source that fails at one step: raises, or emits NaN or inf."""
    type_name = "test.flaky_sine"
    params = SineSource.params + (
        Param("fail_at", "int", 10**6, "step that fails", min=0, max=10**6),
        Param("failure", "str", "raise", "how it fails", choices=("raise", "nan", "inf", "eof")),
    )

    def forward(self, ctx):
        out = super().forward(ctx)
        if ctx.step == self.p["fail_at"]:
            kind = self.p["failure"]
            if kind == "raise":
                raise ConnectionError("sensor feed closed")
            if kind == "eof":
                raise EOFError()
            bad = float("nan") if kind == "nan" else float("inf")
            out["value"] = torch.full_like(out["value"], bad)
        return out


class Hungry(Node):
    """Passes its input on; at one step asks for far more memory than exists (a real
    allocation, so torch's own out-of-memory error is what the trainer sees)."""
    type_name = "test.hungry"
    category = "util"
    doc = "identity that allocates too much at one step"
    inputs = (Port("x", "tensor", "input"),)
    outputs = (Port("y", "tensor", "the input"),)
    params = (Param("fail_at", "int", 10**6, "step that allocates", min=0, max=10**6),)

    @classmethod
    def infer(cls, p, shapes):
        return {"y": shapes["x"]}

    def forward(self, ctx, x):
        if ctx.step == self.p["fail_at"]:
            torch.empty(2**50, dtype=torch.uint8)
        return {"y": x}


class GradBomb(Node):
    """Identity forward; from one step on its backward pass gives NaN gradients, so the
    loss stays finite that step but the weights become NaN after the optimizer step."""
    type_name = "test.grad_bomb"
    category = "util"
    doc = "identity with NaN gradients from one step"
    inputs = (Port("x", "tensor", "input"),)
    outputs = (Port("y", "tensor", "the input"),)
    params = (Param("fail_at", "int", 10**6, "first step with NaN gradients", min=0, max=10**6),)

    @classmethod
    def infer(cls, p, shapes):
        return {"y": shapes["x"]}

    def forward(self, ctx, x):
        if ctx.step >= self.p["fail_at"]:
            return {"y": x + 0 * torch.sqrt(x * 0)}  # d sqrt(0) = inf; 0 * inf = NaN
        return {"y": x}


TEST_NODES = (FlakySine, Hungry, GradBomb)


def register_test_nodes():
    for cls in TEST_NODES:
        registry.types()[cls.type_name] = cls


@pytest.fixture(autouse=True)
def test_nodes(monkeypatch):
    for cls in TEST_NODES:
        monkeypatch.setitem(registry.types(), cls.type_name, cls)


def failing_graph(tmp_path, failure: str, fail_at: int = FAIL_AT) -> Graph:
    d = small_sine_dict(steps=40, columns=32, cells=4, hidden=16)
    d["training"].update({"device": "cpu", "seed": 3, "log_every": 5, "checkpoint_every": 5})
    sine = next(n for n in d["nodes"] if n["id"] == "sine")
    if failure in ("raise", "nan", "inf", "eof"):
        sine["type"] = "test.flaky_sine"
        sine["params"].update(fail_at=fail_at, failure=failure)
    elif failure in ("oom", "grad_nan"):
        # Splice the node into sine.value -> bits.x or decoder.y -> loss.pred.
        src, dst, ntype = ("sine.value", "bits.x", "test.hungry") if failure == "oom" else \
            ("decoder.y", "loss.pred", "test.grad_bomb")
        d["nodes"].append({"id": "probe", "type": ntype, "params": {"fail_at": fail_at}})
        edge = next(e for e in d["edges"] if e["from"] == src and e["to"] == dst)
        edge["to"] = "probe.x"
        d["edges"].append({"from": "probe.y", "to": dst, "delay": 0})
    g = Graph.from_dict(d)
    g.path = str(write(tmp_path, d))
    return g


class KeepCheckpointBytes(TrainerListener):
    """Copies the checkpoint file each time one is written."""

    def __init__(self):
        self.saved: dict[int, bytes] = {}
        self.path = None

    def on_checkpoint(self, step, path):
        self.path = Path(path)
        self.saved[step] = self.path.read_bytes()


def assert_last_good_checkpoint_kept(run_dir: Path, kept: KeepCheckpointBytes, step: int):
    assert max(kept.saved) == step, sorted(kept.saved)
    assert checkpoint_path(run_dir).read_bytes() == kept.saved[step]  # unchanged, byte for byte
    tensors, meta = load_checkpoint(run_dir)
    assert meta["step"] == step
    for key, t in tensors.items():
        if t.is_floating_point():
            assert torch.isfinite(t).all(), key
    # ... and it resumes.
    return tensors


CASES = {
    # failure: (words the message must hold, step named, last good checkpoint)
    "nan": ("NaN or infinite", FAIL_AT, 10),
    "inf": ("NaN or infinite", FAIL_AT, 10),
    "raise": ("data source 'sine' failed", FAIL_AT, 10),
    "eof": ("data source 'sine' failed", FAIL_AT, 10),
    "oom": ("out of memory", FAIL_AT, 10),
    # NaN gradients at step 14 (0-based) poison the weights just before the step-15 checkpoint.
    "grad_nan": ("NaN or infinite", 15, 10),
}


@pytest.mark.parametrize("failure", list(CASES))
def test_failure_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, failure):
    words, step, good = CASES[failure]
    fail_at = 14 if failure == "grad_nan" else FAIL_AT
    run_dir = tmp_path / "run"
    kept = KeepCheckpointBytes()
    trainer = Trainer(failing_graph(tmp_path, failure, fail_at), out=run_dir, listeners=[kept])
    with pytest.raises(TrainingError) as info:
        trainer.run()
    message = str(info.value)
    assert words in message and f"at step {step}" in message, message
    assert "\n" not in message
    assert str(run_dir) in message  # says where the last checkpoint is
    assert_last_good_checkpoint_kept(run_dir, kept, good)
    assert not (run_dir / "summary.json").exists()  # the run did not pretend to finish

    # The kept checkpoint resumes: with the failure moved past the end, training completes.
    fixed = Trainer(failing_graph(tmp_path, failure, fail_at=10**6), out=run_dir, resume=True)
    assert fixed.step == good
    fixed.run()
    assert fixed.step == 40 and math.isfinite(fixed.last_metrics["loss"])


def test_a_bug_in_a_non_source_node_is_not_disguised(tmp_path):
    """Only out-of-memory and data-source failures become TrainingError; a programming error
    elsewhere keeps its traceback (hiding it would hide the bug)."""

    class Broken(GradBomb):
        type_name = "test.grad_bomb"

        def forward(self, ctx, x):
            if ctx.step == 3:
                raise IndexError("bug")
            return {"y": x}

    registry.types()["test.grad_bomb"] = Broken
    with pytest.raises(IndexError):
        Trainer(failing_graph(tmp_path, "grad_nan", 3), out=tmp_path / "run").run()


CLI = """
import sys
sys.path.insert(0, {tests!r})
import test_training_errors as t
t.register_test_nodes()
from deephtm.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("failure", ["nan", "raise", "oom"])
def test_cli_exits_2_with_one_line_naming_the_step(tmp_path, failure):
    graph = failing_graph(tmp_path, failure)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CLI.format(tests=str(Path(__file__).parent)), "train",
                           graph.path, "--out", str(run_dir), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deephtm: error: "), proc.stderr
    assert f"at step {FAIL_AT}" in lines[0] and CASES[failure][0] in lines[0]
    tensors, meta = load_checkpoint(run_dir)
    assert meta["step"] == 10
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
