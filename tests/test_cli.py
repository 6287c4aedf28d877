"""The deephtm command end to end, in subprocesses."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT, small_sine_dict, write


def deephtm(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "deephtm", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_train_then_resume(tmp_path):
    path = write(tmp_path, small_sine_dict(steps=200))
    out = tmp_path / "run"
    first = deephtm("train", path, "--steps", 100, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["device"] == "cpu"
    for key in ("wall_s", "steps_per_s", "metrics"):
        assert key in summary
    assert "nrmse" in summary["metrics"] and "loss" in summary["metrics"]
    assert (out / "checkpoint" / "model.safetensors").exists()

    second = deephtm("train", path, "--resume", out)
    assert second.returncode == 0, second.stderr
    assert "trained 200 steps" in second.stdout
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [50, 100, 150, 200]
    assert json.loads((out / "summary.json").read_text())["steps"] == 200


def test_progress_bar_shows_rate_loss_and_metric(tmp_path):
    path = write(tmp_path, small_sine_dict(steps=100))
    proc = deephtm("train", path, "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "step/s" in proc.stderr and "loss=" in proc.stderr and "nrmse=" in proc.stderr


def test_nodes_lists_every_type_with_ports_and_params():
    proc = deephtm("nodes", "--json")
    assert proc.returncode == 0
    types = {d["type"]: d for d in json.loads(proc.stdout)}
    for name in ("source.sine", "source.csv", "encoder.mlp", "htm.sp", "htm.tm", "decoder.mlp", "loss.mse"):
        assert name in types
    sp = types["htm.sp"]
    assert {p["name"] for p in sp["params"]} >= {"columns", "winners"}
    assert all("doc" in p and "default" in p for p in sp["params"])
    assert [p["name"] for p in sp["outputs"]] == ["columns"]
    text = deephtm("nodes").stdout
    assert "htm.tm" in text and "cells_per_column" in text


def test_validate_ok_and_python_m_entry(tmp_path):
    proc = deephtm("validate", ROOT / "graphs" / "sine.json")
    assert proc.returncode == 0 and "ok" in proc.stdout


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, signame, code):
    """Ctrl-C, a scheduler's SIGTERM and a closed terminal's SIGHUP all stop at a whole step
    with a checkpoint, a summary marked interrupted and a message; exit 128 + the signal."""
    import signal
    import time

    d = small_sine_dict(steps=10**6)
    d["training"]["checkpoint_every"] = 0  # only the interrupt can write it
    path = write(tmp_path, d)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "deephtm", "train", str(path), "--out", str(out),
                             "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs: faulthandler prints every thread's stack
        proc.send_signal(signal.SIGABRT)
        pytest.fail(f"still running 60 s after {signame}:\n{proc.communicate()[1][-4000:]}")
    assert proc.returncode == code
    assert "Traceback" not in err and "checkpoint saved" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["steps"] > 0
    assert f"interrupted at step {summary['steps']};" in err
    # The checkpoint holds whole steps, so the run continues from it.
    again = deephtm("train", path, "--resume", out, "--steps", summary["steps"] + 20, "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == summary["steps"] + 20


def test_a_double_ctrl_c_says_truthfully_what_was_saved(tmp_path):
    """Two presses a few ms apart may cut the checkpoint write short: whatever happened, the
    message must match the checkpoint on disk."""
    import re
    import signal
    import time

    d = small_sine_dict(steps=10**6)
    d["training"].update(checkpoint_every=0, checkpoint_every_s=0)
    path = write(tmp_path, d)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deephtm", "train", str(path), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.003)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    step = int(re.search(r"interrupted at step (\d+);", err).group(1))
    meta = out / "checkpoint" / "meta.json"
    saved = json.loads(meta.read_text())["step"] if meta.exists() else None
    if "checkpoint saved in" in err:
        assert saved == step
    elif "no checkpoint saved for it" in err:
        assert saved is not None and saved != step and f"step {saved}" in err
    else:
        assert "no checkpoint was saved" in err and saved is None
