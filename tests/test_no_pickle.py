"""Checkpoints never unpickle. A pickle that creates a file when loaded, offered as a
checkpoint in every form the code accepts, is refused with one clear line and the file is
never created. No code in the repository can unpickle."""
import ast
import io
import json
import pickle  # only to build the hostile payloads below
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from deephtm.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
from deephtm.errors import CheckpointError, DeepHTMError
from deephtm.graph.graphfile import Graph
from deephtm.train.trainer import Trainer

from helpers import ROOT, small_sine_dict, write


class CreatesFile:
    """Unpickling this calls open(path, 'w'): the file appears if anything unpickles it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def payloads(marker: Path) -> dict[str, bytes]:
    raw = pickle.dumps({"model/w": CreatesFile(marker)}, protocol=pickle.HIGHEST_PROTOCOL)
    buf = io.BytesIO()
    torch.save({"model/w": CreatesFile(marker)}, buf)  # torch's zip format with a data.pkl inside
    return {"pickle": raw, "pickle_protocol0": pickle.dumps(CreatesFile(marker), protocol=0),
            "torch_save": buf.getvalue()}


def test_the_payloads_really_run_code_when_unpickled(tmp_path):
    """The control: a naive loader would create the marker file."""
    for name, data in payloads(tmp_path / "marker").items():
        marker = tmp_path / "marker"
        assert not marker.exists()
        if name == "torch_save":
            assert zipfile.is_zipfile(io.BytesIO(data))
            torch.load(io.BytesIO(data), weights_only=False)
        else:
            pickle.loads(data)
        assert marker.exists(), name
        marker.unlink()


def graph(tmp_path) -> Graph:
    d = small_sine_dict(steps=20)
    d["training"]["device"] = "cpu"
    g = Graph.from_dict(d)
    g.path = str(write(tmp_path, d))
    return g


def cli(*args):
    return subprocess.run([sys.executable, "-m", "deephtm", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("deephtm: error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("kind", ["pickle", "pickle_protocol0", "torch_save"])
def test_pickle_as_model_safetensors_is_refused(tmp_path, kind):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "checkpoint" / CHECKPOINT_FILE).write_bytes(payloads(marker)[kind])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(run_dir)
    assert "safetensors" in str(info.value) and CHECKPOINT_FILE in str(info.value)
    with pytest.raises(CheckpointError):
        Trainer(graph(tmp_path), out=run_dir, resume=True)
    line = one_line_error(cli("train", graph(tmp_path).path, "--resume", run_dir, "--quiet"))
    assert "not a readable safetensors checkpoint" in line
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "pytorch_model.bin", "model.ckpt", "weights.pkl"])
def test_pickle_under_another_name_is_refused_not_read(tmp_path, name):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "checkpoint" / name).write_bytes(payloads(marker)["torch_save"])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(run_dir)
    assert name in str(info.value) and "safetensors" in str(info.value)
    line = one_line_error(cli("train", graph(tmp_path).path, "--resume", run_dir, "--quiet"))
    assert name in line
    assert not marker.exists()
    assert not (run_dir / "metrics.jsonl").exists()  # refused before the run started


def test_pickle_given_where_a_run_directory_or_graph_goes_is_refused(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(payloads(marker)["torch_save"])
    line = one_line_error(cli("train", graph(tmp_path).path, "--resume", evil, "--quiet"))
    assert "run directory" in line
    for data in payloads(marker).values():
        evil.write_bytes(data)
        assert str(evil) in one_line_error(cli("validate", evil))
        assert str(evil) in one_line_error(cli("train", evil, "--quiet", "--out", tmp_path / "r"))
    assert not marker.exists()


def test_meta_json_is_never_read(tmp_path):
    """checkpoint/meta.json is a readable copy only; replace it with a pickle and resume still
    works from the safetensors file."""
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    Trainer(graph(tmp_path), out=run_dir, steps=10).run()
    (run_dir / "checkpoint" / "meta.json").write_bytes(payloads(marker)["pickle"])
    resumed = Trainer(graph(tmp_path), out=run_dir, resume=True)
    assert resumed.step == 10
    resumed.run()
    assert resumed.step == 20
    assert not marker.exists()


def test_a_checkpoint_with_hostile_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    run_dir = tmp_path / "run"
    (run_dir / "checkpoint").mkdir(parents=True)
    path = run_dir / "checkpoint" / CHECKPOINT_FILE
    for meta in ["[1, 2]", "not json", "[" * 100_000, json.dumps({"checkpoint_format": 1})]:
        save_file({"model/w": torch.zeros(2)}, str(path), metadata={"deephtm": meta})
        with pytest.raises(DeepHTMError) as info:
            Trainer(graph(tmp_path), out=run_dir, resume=True)
        assert "\n" not in str(info.value)


# ---- nothing in the repository can unpickle ---------------------------------------

UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
THIS_FILE = Path(__file__).resolve()


def python_files():
    for folder in ("deephtm", "app", "tests", "benchmarks", "scripts", "examples"):
        root = ROOT / folder
        if root.is_dir():
            yield from (p for p in root.rglob("*.py") if ".venv" not in p.parts)


def unpickling_uses(path: Path) -> list[str]:
    """Imports of pickle-like modules, torch.load without weights_only=True, numpy loads
    with allow_pickle=True, pandas read_pickle, and yaml.load without a safe loader."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append("from torch import load")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            safe_torch = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            if name.endswith("torch.load") or name in ("torch.serialization.load",):
                if not safe_torch:
                    found.append(f"line {node.lineno}: {name}(...) without weights_only=True")
            elif name.endswith(("np.load", "numpy.load")) and isinstance(kw.get("allow_pickle"), ast.Constant) \
                    and kw["allow_pickle"].value:
                found.append(f"line {node.lineno}: {name}(allow_pickle=True)")
            elif name.endswith(("read_pickle", "yaml.load", "yaml.unsafe_load", "torch.jit.load")):
                found.append(f"line {node.lineno}: {name}(...)")
    return found


def test_no_code_in_the_repository_can_unpickle():
    files = list(python_files())
    assert len(files) > 20
    offenders = {}
    for path in files:
        uses = unpickling_uses(path)
        if path.resolve() == THIS_FILE:
            # This file builds payloads with pickle and runs the one unsafe load on purpose.
            assert [u.split(": ")[-1] for u in uses] == ["import pickle", "torch.load(...) without weights_only=True"]
            continue
        if uses:
            offenders[str(path.relative_to(ROOT))] = uses
    assert not offenders, offenders


def test_the_scanner_finds_unsafe_loads(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch, pickle\nimport numpy as np\nfrom dill import loads\n"
                   "torch.load('x')\ntorch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\n"
                   "np.load('x', allow_pickle=True)\n")
    uses = unpickling_uses(bad)
    assert "import pickle" in uses and "from dill import ..." in uses
    assert sum("torch.load" in u for u in uses) == 2 and any("allow_pickle" in u for u in uses)
