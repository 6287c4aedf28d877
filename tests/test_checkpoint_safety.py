"""Checkpoints are checked before they are trusted: tensor checksums, range-checked metadata,
a plain word when the optimizer changed, and no memory map a change to the file can break."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from deephtm.cli import main
from deephtm.train.checkpoint import checkpoint_path

from helpers import small_sine_dict, write

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(tmp_path):
    d = small_sine_dict(steps=30, columns=32, cells=2, hidden=16)
    graph = write(tmp_path, d)
    out = tmp_path / "run"
    assert main(["train", str(graph), "--out", str(out), "--quiet"]) == 0
    return graph, out, d


def meta_of(path: Path) -> dict:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8:8 + n])["__metadata__"]["deephtm"])


def rewrite_meta(path: Path, change) -> None:
    meta = meta_of(path)
    change(meta)
    path.write_bytes(st_save(st_load(path.read_bytes()), metadata={"deephtm": json.dumps(meta)}))


def resume_fails(graph, out, capsys, *extra) -> str:
    before = checkpoint_path(out).read_bytes()
    assert main(["train", str(graph), "--resume", str(out), "--steps", "40", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert checkpoint_path(out).read_bytes() == before  # never overwritten by a refused resume
    return err


def test_flipped_bytes_in_the_tensor_data_are_refused(run, capsys):
    graph, out, _ = run
    path = checkpoint_path(out)
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    middle = 8 + n + (len(data) - 8 - n) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))
    assert "fails its checksum" in resume_fails(graph, out, capsys)


@pytest.mark.parametrize("step", [-50, 10**12, 2.5, "7"])
def test_a_step_out_of_range_is_refused(run, capsys, step):
    graph, out, _ = run
    rewrite_meta(checkpoint_path(out), lambda m: m.update(step=step))
    assert "checkpoint step" in resume_fails(graph, out, capsys)


def test_a_missing_optimizer_state_is_refused(run, capsys):
    graph, out, _ = run
    rewrite_meta(checkpoint_path(out), lambda m: m.pop("optimizer"))
    assert "no optimizer state" in resume_fails(graph, out, capsys)


def test_a_changed_optimizer_is_named_not_called_damage(run, capsys, tmp_path):
    _, out, d = run
    d["training"]["optimizer"] = "sgd"
    graph = write(tmp_path, d, name="sgd.json")
    err = resume_fails(graph, out, capsys)
    assert "trained with optimizer 'adam' and this graph uses 'sgd'" in err and "damaged" not in err


def test_changing_the_checkpoint_file_during_a_resumed_run_does_not_kill_it(run):
    graph, out, d = run
    d["training"].update(steps=10**6, checkpoint_every=0, checkpoint_every_s=0)
    long_graph = write(graph.parent, d, name="long.json")
    proc = subprocess.Popen([sys.executable, "-m", "deephtm", "train", str(long_graph), "--resume", str(out),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while (out / "metrics.jsonl").read_text().count("\n") <= 3:  # the first run's 3 reports, then new ones
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.2)
    path = checkpoint_path(out)
    path.write_bytes(path.read_bytes()[:100])  # truncated under the running trainer
    time.sleep(2)
    assert proc.poll() is None  # still training (a memory map would have died of SIGBUS here)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert json.loads((out / "summary.json").read_text())["interrupted"]
