"""Every node type resumes exactly: N steps in one run equal N/2 steps, a checkpoint, and a
resumed run to N, in every checkpointed tensor and in every metric of summary.json.

Each registered type is trained in the smallest graph that holds it: of the example graphs in
graphs/ that use the type, the one whose part that trains and judges the node has the fewest
nodes, with its sizes shrunk so a run takes a fraction of a second. A
registered type that no example graph uses fails here: add it to an example graph, or give it
a graph in EXTRA_GRAPHS.
"""
import json
from pathlib import Path

import pytest
import torch

from deephtm.graph import registry
from deephtm.events import TrainerListener
from deephtm.graph.graphfile import Graph
from deephtm.train.checkpoint import load_checkpoint
from deephtm.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "graphs").glob("*.json"))
STEPS = 24  # resumed at STEPS // 2; windows and periods below are shorter, so state wraps around
BATCH = 2  # more than one stream, so per-stream state is exercised

# Node types used in no example graph: (graph dict, node id). Relative paths are resolved
# from graphs/.
EXTRA_GRAPHS: dict[str, tuple[dict, str]] = {
    # The digit classes in a fixed order, images to the next image through a conv encoder.
    "source.digits": ({
        "format_version": 1, "name": "digits_in_order",
        "nodes": [{"id": "digits", "type": "source.digits", "params": {}},
                  {"id": "encoder", "type": "encoder.conv", "params": {"channels": 4, "layers": 1}},
                  {"id": "decoder", "type": "decoder.deconv", "params": {"height": 8, "width": 8, "channels": 4,
                                                                          "layers": 1}},
                  {"id": "loss", "type": "loss.mse", "params": {}}],
        "edges": [{"from": "digits.image", "to": "encoder.x"}, {"from": "encoder.y", "to": "decoder.x"},
                  {"from": "decoder.y", "to": "loss.pred"}, {"from": "digits.target", "to": "loss.target"}],
        "training": {"steps": STEPS}}, "digits"),
    # A sine's next value from an SDR of it, read by an online softmax over value buckets.
    "decoder.sdr_classifier": ({
        "format_version": 1, "name": "sdr_classifier",
        "nodes": [{"id": "sine", "type": "source.sine", "params": {}},
                  {"id": "encoder", "type": "encoder.scalar", "params": {}},
                  {"id": "classifier", "type": "decoder.sdr_classifier", "params": {"min": -1.0, "max": 1.0,
                                                                                     "buckets": 8}},
                  {"id": "nrmse", "type": "metric.nrmse", "params": {}}],
        "edges": [{"from": "sine.value", "to": "encoder.x"}, {"from": "encoder.code", "to": "classifier.x"},
                  {"from": "sine.value", "to": "classifier.observed"},
                  {"from": "classifier.y", "to": "nrmse.pred"}, {"from": "sine.target", "to": "nrmse.target"}],
        "training": {"steps": STEPS}}, "classifier"),
}
# encoder.conv: the digits graph above is smaller than the example that holds it.
EXTRA_GRAPHS["encoder.conv"] = (EXTRA_GRAPHS["source.digits"][0], "encoder")
# encoder.prototypes: the same digits, coded by competing prototypes instead.
_prototypes = json.loads(json.dumps(EXTRA_GRAPHS["source.digits"][0]))
_prototypes["nodes"][1] = {"id": "encoder", "type": "encoder.prototypes", "params": {}}
_prototypes["edges"][1]["from"] = "encoder.code"
EXTRA_GRAPHS["encoder.prototypes"] = (_prototypes, "encoder")

# Smaller sizes, and shorter windows and periods, per node type.
SHRINK = {
    "htm.sp": {"columns": 32, "winners": 4},
    "htm.tm": {"cells_per_column": 4},
    "htm.tm_segments": {"cells_per_column": 4, "segments_per_cell": 2, "synapses_per_segment": 8,
                        "sample_size": 4, "match_threshold": 2},
    "encoder.mlp": {"hidden": 16},
    "decoder.mlp": {"hidden": 16},
    "encoder.fourier": {"features": 16},
    "encoder.conv": {"channels": 4},
    "encoder.prototypes": {"units": 32, "winners": 4},
    "decoder.deconv": {"channels": 4},
    "gridcell.module": {"modules": 2},
    "util.history": {"length": 4},
    "source.random_walk": {"steps": 5},
    "source.objects": {"touches": 4},
    "source.sequence": {"length": 4},
    # Windows that fill up before the end (so they wrap) but hold items from before the
    # resume at the end (so losing them would show), for the items each metric sees per step.
    "metric.touch_accuracy": {"max_touches": 4, "report": 2, "window": 8},
    "metric.accuracy": {"window": 5},
    "metric.anomaly": {"window": 16, "start": STEPS // 4},
    "metric.nrmse": {"window": 16, "start": STEPS // 4},
    "metric.mape": {"start": STEPS // 4},
    "metric.digits": {"window": 30},
    "metric.position_error": {"window": 5},
    "anomaly.likelihood": {"learning_period": 6, "estimation_samples": 4, "history": 10,
                           "averaging_window": 3, "range_warmup": 4, "calibration_quantile": 0.8,
                           "calibration_level": 0.2, "alarm_surprise": 0.5},
}


def _part_for(d: dict, nid: str) -> dict:
    """The part of graph d that trains and judges node nid: the losses and metrics nid feeds
    (directly or not), everything they and nid read from (delayed edges included), and the
    losses fed only by those nodes (e.g. a TM's own loss)."""
    sources: dict[str, set[str]] = {n["id"]: set() for n in d["nodes"]}
    for e in d["edges"]:
        sources[e["to"].split(".")[0]].add(e["from"].split(".")[0])
    types = {n["id"]: n["type"] for n in d["nodes"]}
    judges = {n for n in sources if registry.get(types[n]).is_loss or registry.get(types[n]).is_metric}
    downstream = _closure({nid}, {n: {m for m in sources if n in sources[m]} for n in sources})
    keep = _closure({nid} | (downstream & judges), sources)
    grown = True
    while grown:
        losses = {n for n in sources if n not in keep and registry.get(types[n]).is_loss
                  and sources[n] and sources[n] <= keep}
        keep |= losses
        grown = bool(losses)
    part = dict(d, nodes=[n for n in d["nodes"] if n["id"] in keep],
                edges=[e for e in d["edges"] if e["from"].split(".")[0] in keep
                       and e["to"].split(".")[0] in keep])
    part.pop("groups", None)
    return part


def _closure(start: set[str], links: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(links[n])
    return seen


def smallest_graph(type_name: str) -> tuple[dict, str]:
    """(graph dict, id of a node of type_name) of the smallest graph that holds the type."""
    best = None
    if type_name in EXTRA_GRAPHS:
        graph, nid = EXTRA_GRAPHS[type_name]
        best = (json.loads(json.dumps(graph)), nid)
    for path in EXAMPLES if best is None else ():
        d = json.loads(path.read_text())
        for n in d["nodes"]:
            if n["type"] == type_name:
                part = _part_for(d, n["id"])
                if best is None or len(part["nodes"]) < len(best[0]["nodes"]):
                    best = (part, n["id"])
    if best is None:
        pytest.fail(f"node type '{type_name}' is in no example graph and has no entry in EXTRA_GRAPHS, "
                    "so nothing checks that it resumes exactly")
    d, nid = best
    for n in d["nodes"]:
        for name, value in SHRINK.get(n["type"], {}).items():
            if n["params"].get(name) != 0:  # 0 is a mode (off, or every step), not a size
                n["params"][name] = value
    d["training"].update({"steps": STEPS, "batch_size": BATCH, "device": "cpu", "log_every": STEPS // 4,
                          "checkpoint_every": 0, "threads": 1, "lr_schedule": "cosine"})
    return d, nid


def _graph(d: dict) -> Graph:
    g = Graph.from_dict(d)
    g.path = str(ROOT / "graphs" / "resume_test.json")  # relative data paths resolve from graphs/
    return g


def _differing(a: dict, b: dict) -> list[str]:
    """Keys whose tensors differ in dtype, shape or any bit, or that only one dict has."""
    differ = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(_bits(x), _bits(y)):
            differ.append(k)
    return differ


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


class Outputs(TrainerListener):
    """Every output of every node at each step after the resume point: a node whose state
    reaches only its outputs (nothing trains on them, no metric reads them) is compared too."""

    wants_values = True

    def __init__(self):
        self.steps: dict[int, dict] = {}

    def on_step(self, step, values):
        if step > STEPS // 2:
            self.steps[step] = {f"{nid}.{port}": v.clone() for (nid, port), v in values.items()}


@pytest.mark.parametrize("type_name", sorted(registry.types()))
def test_resumed_run_equals_straight_run(type_name, tmp_path):
    d, nid = smallest_graph(type_name)
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    outputs_a, outputs_b = Outputs(), Outputs()
    Trainer(_graph(d), out=straight, listeners=[outputs_a]).run()
    Trainer(_graph(d), out=halves).run(STEPS // 2)
    resumed = Trainer(_graph(d), out=halves, resume=True, listeners=[outputs_b])
    assert resumed.step == STEPS // 2
    resumed.run()

    assert sorted(outputs_a.steps) == sorted(outputs_b.steps) == list(range(STEPS // 2 + 1, STEPS + 1))
    for step, values in outputs_a.steps.items():
        differ = _differing(values, outputs_b.steps[step])
        assert not differ, f"{type_name}: outputs {differ} differ at step {step} after resuming"

    tensors_a, meta_a = load_checkpoint(straight)
    tensors_b, meta_b = load_checkpoint(halves)
    assert meta_a["step"] == meta_b["step"] == STEPS
    differ = _differing(tensors_a, tensors_b)
    assert not differ, f"{type_name}: checkpoint tensors {differ} differ after resuming"
    assert meta_a.get("nodes") == meta_b.get("nodes"), f"{type_name}: node state differs after resuming"
    metrics_a = json.loads((straight / "summary.json").read_text())["metrics"]
    metrics_b = json.loads((halves / "summary.json").read_text())["metrics"]
    assert metrics_a, f"{type_name}: the graph reports no metric, so nothing compares"
    assert metrics_a == metrics_b, f"{type_name}: metrics differ after resuming"
