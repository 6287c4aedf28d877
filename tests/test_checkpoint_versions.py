"""Checkpoints keep each node's version and extra state: an older version of a node is migrated
by the node's migrate_state or refused, a newer one is refused, and either way the message names
the node, its type and both versions."""
import json
import subprocess
import sys

import pytest
import torch

from deephtm.errors import CheckpointError
from deephtm.graph import registry
from deephtm.graph.graphfile import Graph, load_graph
from deephtm.graph.spec import Param, Port
from deephtm.node import Node
from deephtm.train.checkpoint import load_checkpoint, save_checkpoint
from deephtm.train.trainer import Trainer

from helpers import ROOT, SINE, small_sine_dict, write


class CounterV1(Node):
    """Counts the steps it has seen, in its extra state (version 1 calls the count 'n')."""
    type_name = "test.counter"
    category = "metric"
    is_metric = True
    version = 1
    inputs = (Port("x", "tensor", "anything"),)
    params = (Param("name", "str", "count", "metric name"),)

    @classmethod
    def infer(cls, p, shapes):
        return {}

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.count = 0

    def forward(self, ctx, x):
        self.count += 1
        return {}

    def value(self):
        return float(self.count)

    def get_extra_state(self):
        return {"n": self.count}

    def set_extra_state(self, state):
        self.count = state["n"]


class CounterV2(CounterV1):
    """Version 2 calls the count 'count' and keeps the steps seen as a tensor too."""
    version = 2

    def get_extra_state(self):
        return {"count": self.count, "seen": torch.arange(self.count, dtype=torch.int64)}

    def set_extra_state(self, state):
        self.count = state["count"]
        assert torch.equal(state["seen"], torch.arange(self.count))

    @classmethod
    def migrate_state(cls, old_version, tensors, extra):
        if old_version != 1:
            return None
        return tensors, {"count": extra["n"], "seen": torch.arange(extra["n"], dtype=torch.int64)}


class CounterV2NoMigration(CounterV2):
    @classmethod
    def migrate_state(cls, old_version, tensors, extra):
        return Node.migrate_state(old_version, tensors, extra)


@pytest.fixture
def counter_type():
    """Registers a counter class under 'test.counter' (the test picks which), then removes it."""
    def use(cls):
        registry.register(cls)
    yield use
    registry.types().pop("test.counter", None)


def counter_graph(steps: int = 20) -> Graph:
    d = small_sine_dict(steps=steps, columns=16, hidden=8)
    d["nodes"].append({"id": "c", "type": "test.counter", "params": {}})
    d["edges"].append({"from": "sine.value", "to": "c.x"})
    d["training"].update({"log_every": 5, "checkpoint_every": 0})
    g = Graph.from_dict(d)
    g.path = str(SINE)
    return g


def test_extra_state_is_saved_as_json_and_tensors(tmp_path, counter_type):
    counter_type(CounterV2)
    Trainer(counter_graph(), out=tmp_path).run(7)
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["nodes"]["c"] == {"type": "test.counter", "version": 2, "extra": {"count": 7}}
    assert torch.equal(tensors["extra/c/seen"], torch.arange(7))
    # A node with buffers only keeps no extra state.
    assert meta["nodes"]["tm"] == {"type": "htm.tm", "version": registry.get("htm.tm").version}
    assert not any("_extra_state" in k for k in tensors)
    # The readable copy next to the checkpoint says the same.
    assert json.loads((tmp_path / "checkpoint" / "meta.json").read_text())["nodes"] == meta["nodes"]


def test_extra_state_resumes(tmp_path, counter_type):
    counter_type(CounterV2)
    Trainer(counter_graph(), out=tmp_path).run(7)
    resumed = Trainer(counter_graph(), out=tmp_path, resume=True)
    assert resumed.model.nodes["c"].count == 7
    assert resumed.run()["metrics"]["count"] == 20.0


def test_older_version_is_migrated(tmp_path, counter_type):
    counter_type(CounterV1)
    Trainer(counter_graph(), out=tmp_path).run(7)
    counter_type(CounterV2)
    resumed = Trainer(counter_graph(), out=tmp_path, resume=True)
    assert resumed.model.nodes["c"].count == 7
    assert resumed.run()["metrics"]["count"] == 20.0
    _, meta = load_checkpoint(tmp_path)
    assert meta["nodes"]["c"] == {"type": "test.counter", "version": 2, "extra": {"count": 20}}


def test_older_version_without_migration_is_refused(tmp_path, counter_type):
    counter_type(CounterV1)
    Trainer(counter_graph(), out=tmp_path).run(7)
    counter_type(CounterV2NoMigration)
    with pytest.raises(CheckpointError) as err:
        Trainer(counter_graph(), out=tmp_path, resume=True)
    assert err.value.message == ("node 'c' (test.counter): checkpoint has version 1, "
                                 "this DeepHTM has version 2; no migration")
    assert err.value.file.endswith("model.safetensors")


def test_newer_version_is_refused(tmp_path, counter_type):
    counter_type(CounterV2)
    Trainer(counter_graph(), out=tmp_path).run(7)
    counter_type(CounterV1)
    with pytest.raises(CheckpointError) as err:
        Trainer(counter_graph(), out=tmp_path, resume=True)
    assert err.value.message == ("node 'c' (test.counter): checkpoint has version 2, "
                                 "this DeepHTM has version 1; a newer DeepHTM wrote it")


def test_a_node_of_another_type_is_refused(tmp_path, counter_type):
    counter_type(CounterV2)
    Trainer(counter_graph(), out=tmp_path).run(7)
    tensors, meta = load_checkpoint(tmp_path)
    meta["nodes"]["c"]["type"] = "test.other"
    save_checkpoint(tmp_path, tensors, meta)
    with pytest.raises(CheckpointError, match="node 'c' is a test.other in the checkpoint, a test.counter"):
        Trainer(counter_graph(), out=tmp_path, resume=True)


def test_extra_state_that_is_not_json_is_not_saved(tmp_path, counter_type, monkeypatch):
    counter_type(CounterV2)
    monkeypatch.setattr(CounterV2, "get_extra_state", lambda self: {"count": {self.count}})
    with pytest.raises(TypeError, match="node 'c' \\(test.counter\\): extra state is not JSON"):
        Trainer(counter_graph(), out=tmp_path).run(3)


def _as_before_versions(run_dir, drop=()) -> None:
    """Rewrite a checkpoint as DeepHTM wrote it before node versions were saved: no 'nodes'
    metadata, and without the tensors named in drop."""
    tensors, meta = load_checkpoint(run_dir)
    del meta["nodes"]
    save_checkpoint(run_dir, {k: v for k, v in tensors.items() if k not in drop}, meta)


def seed_graph_before_versions(d: dict) -> dict:
    """The seed graph as it was before node versions were saved: without the column-usage
    metric it gained since."""
    usage = {n["id"] for n in d["nodes"] if n["type"] == "metric.sp_entropy"}
    d["nodes"] = [n for n in d["nodes"] if n["id"] not in usage]
    d["edges"] = [e for e in d["edges"] if e["to"].split(".")[0] not in usage]
    return d


def test_checkpoint_from_before_versions_of_the_seed_graph_resumes(tmp_path):
    d = seed_graph_before_versions(small_sine_dict(steps=40, columns=16, hidden=8))
    d["training"].update({"log_every": 10, "checkpoint_every": 0})
    path = write(tmp_path, d)
    Trainer(load_graph(path), out=tmp_path / "run").run(20)
    # metric.nrmse version 1 had no sums or series buffers; its migration starts them at zero.
    _as_before_versions(tmp_path / "run", drop=("model/nodes.nrmse.sums", "model/nodes.nrmse.series"))
    straight = Trainer(load_graph(path))
    straight.run()
    resumed = Trainer(load_graph(path), out=tmp_path / "run", resume=True)
    assert resumed.step == 20
    resumed.run()
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert straight.model.metric_values() == resumed.model.metric_values()


def test_cli_refuses_an_old_node_version_in_one_line(tmp_path):
    d = seed_graph_before_versions(small_sine_dict(steps=20, columns=16, hidden=8))
    d["nodes"].append({"id": "mape", "type": "metric.mape", "params": {}})
    d["edges"] += [{"from": "decoder.y", "to": "mape.pred"}, {"from": "sine.target", "to": "mape.target"}]
    d["training"].update({"log_every": 10, "checkpoint_every": 0})
    path = write(tmp_path, d)
    out = tmp_path / "run"
    run = lambda *args: subprocess.run([sys.executable, "-m", "deephtm", "train", str(path), *map(str, args)],
                                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    first = run("--steps", 10, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    _as_before_versions(out)  # metric.mape version 1 kept its sums in Python: they are lost
    again = run("--resume", out, "--quiet")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"deephtm: error: {out / 'checkpoint' / 'model.safetensors'}: node 'mape' (metric.mape): checkpoint has "
        "version 1, this DeepHTM has version 2; no migration"]


def test_a_node_without_a_valid_version_is_refused(tmp_path, counter_type):
    counter_type(CounterV2)
    Trainer(counter_graph(), out=tmp_path).run(7)
    tensors, meta = load_checkpoint(tmp_path)
    meta["nodes"]["c"]["version"] = "2"
    save_checkpoint(tmp_path, tensors, meta)
    with pytest.raises(CheckpointError, match="node 'c' \\(test.counter\\): checkpoint gives no valid version \\('2'\\)"):
        Trainer(counter_graph(), out=tmp_path, resume=True)
