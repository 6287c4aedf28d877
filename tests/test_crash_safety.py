"""A crash loses at most the work since the last checkpoint. `deephtm train` is killed with
SIGKILL at random points; `--resume` continues every time and, on the CPU with the same
seed, ends with exactly the weights (and optimizer state, and logged metrics) of a run
that was never interrupted. A kill during a graph or checkpoint save leaves the old or the
new file, never a truncated one."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import torch

from deephtm.train.checkpoint import checkpoint_path, load_checkpoint
from deephtm.graph.graphfile import load_graph

from helpers import ROOT, small_sine_dict, write

KILLS_REQUIRED = 10
STEPS = 400
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def crash_graph() -> dict:
    """A small seed network; checkpoints and reports at different, co-prime cadences so
    kills land between, before and during both."""
    d = small_sine_dict(steps=STEPS, columns=32, cells=4, hidden=16)
    d["training"].update({"device": "cpu", "seed": 7, "log_every": 5, "checkpoint_every": 7})
    for n in d["nodes"]:
        if n["type"] == "metric.nrmse":
            n["params"]["window"] = 50
    return d


def train(graph, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deephtm", "train", str(graph), "--quiet", *map(str, args)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged_step(run_dir) -> int:
    """The last step written to metrics.jsonl (0 when none)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (ValueError, KeyError):
            continue
    return 0


def kill_when(proc, run_dir, step: int | None, delay_s: float, timeout_s: float = 120) -> bool:
    """SIGKILL proc once it has logged `step` (None: at once) and delay_s more seconds have
    passed. Returns False if it finished first."""
    t_end = time.monotonic() + timeout_s
    while step is not None and logged_step(run_dir) < step:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < t_end, "training made no progress"
        time.sleep(0.005)
    time.sleep(delay_s)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def checkpoint_tensors(run_dir) -> dict:
    tensors, meta = load_checkpoint(run_dir)
    return tensors, meta


def test_sigkill_at_random_points_then_resume_matches_uninterrupted_run(tmp_path):
    rng = random.Random(int(os.environ.get("DEEPHTM_CRASH_SEED", time.time_ns() % 10**6)))
    graph = write(tmp_path, crash_graph())
    killed_dir, plain_dir = tmp_path / "killed", tmp_path / "plain"

    plain = train(graph, "--out", plain_dir)
    # Kill points: a few while the process starts (before any step), the rest at random
    # steps, each a little after the step was logged.
    points = [(None, rng.uniform(0.0, 1.5)) for _ in range(2)]
    points += [(s, rng.uniform(0.0, 0.05)) for s in sorted(rng.sample(range(5, STEPS - 40), KILLS_REQUIRED))]
    kills, resumed_from = 0, []
    for step, delay in points:
        # As a user would: the first start names the run directory, later ones resume it.
        proc = train(graph, *(("--resume", killed_dir) if killed_dir.exists() else ("--out", killed_dir)))
        if kill_when(proc, killed_dir, step, delay):
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()
        # Whatever moment the kill hit, the checkpoint on disk is whole.
        if checkpoint_path(killed_dir).exists():
            _, meta = checkpoint_tensors(killed_dir)
            resumed_from.append(meta["step"])
    assert kills >= KILLS_REQUIRED, kills
    assert resumed_from == sorted(resumed_from), resumed_from  # never went backwards

    final = train(graph, "--resume", killed_dir)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert "Traceback" not in err
    out, err = plain.communicate(timeout=300)
    assert plain.returncode == 0, err

    killed, killed_meta = checkpoint_tensors(killed_dir)
    clean, clean_meta = checkpoint_tensors(plain_dir)
    assert killed_meta["step"] == clean_meta["step"] == STEPS
    assert set(killed) == set(clean)
    assert any(k.startswith("optim/") for k in clean) and any(k.startswith("delayed/") for k in clean)
    for key in clean:
        assert torch.equal(killed[key], clean[key]), f"{key} differs after {kills} kills"
    # Each report appears once, with the same numbers as in the uninterrupted run.
    logs = []
    for run_dir in (killed_dir, plain_dir):
        lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
        logs.append([{k: v for k, v in l.items() if k != "steps_per_s"} for l in lines])
    assert [l["step"] for l in logs[0]] == list(range(5, STEPS + 1, 5))
    assert logs[0] == logs[1]
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert summary["steps"] == STEPS and not summary["interrupted"]
    print(f"survived {kills} kills; checkpoints resumed from steps {resumed_from}")


SAVER = textwrap.dedent('''
    import sys, torch
    from deephtm.train.checkpoint import save_checkpoint
    from deephtm.graph.graphfile import load_graph, save_graph
    graph_path, run_dir = sys.argv[1], sys.argv[2]
    versions = []
    for i in range(2):
        g = load_graph(graph_path)
        g.description = str(i) * 1_500_000  # big enough that a write takes a while
        versions.append((g, {"w": torch.full((2_000_000,), float(i))}, {"version": i, "step": i}))
    i = 0
    while True:
        g, tensors, meta = versions[i % 2]
        save_graph(g, graph_path)
        save_checkpoint(run_dir, tensors, meta)
        if i == 1:
            print("ready", flush=True)
        i += 1
''')


def test_kill_during_graph_and_checkpoint_saves_leaves_old_or_new(tmp_path):
    rng = random.Random(time.time_ns())
    graph_path = write(tmp_path, small_sine_dict())
    run_dir = tmp_path / "run"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    seen_versions, leftovers = set(), 0
    for _ in range(KILLS_REQUIRED):
        proc = subprocess.Popen([sys.executable, str(script), str(graph_path), str(run_dir)], cwd=ROOT, env=ENV,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        g = load_graph(graph_path)  # raises on a truncated file
        assert g.description in ("0" * 1_500_000, "1" * 1_500_000)
        tensors, meta = load_checkpoint(run_dir)
        version = int(tensors["w"][0])
        assert torch.equal(tensors["w"], torch.full((2_000_000,), float(version)))
        seen_versions.add((g.description[0], version))
        leftovers += sum(1 for p in list(tmp_path.iterdir()) + list((run_dir / "checkpoint").iterdir())
                         if p.name.endswith(".tmp"))
    # The temp files a kill leaves behind show kills landed mid-write; they are never read.
    print(f"{KILLS_REQUIRED} kills during saves; versions seen {sorted(seen_versions)}; temp files left {leftovers}")


def _tbptt_graph(tmp_path):
    from deephtm.graph.graphfile import Graph

    d = small_sine_dict(steps=60, columns=32, cells=4, hidden=16)
    d["training"].update({"device": "cpu", "seed": 1, "mode": "tbptt", "bptt": 4, "checkpoint_every": 10,
                          "log_every": 5})
    g = Graph.from_dict(d)
    g.path = str(write(tmp_path, d))
    return g


def test_tbptt_checkpoints_fall_at_window_ends_so_resume_is_exact(tmp_path):
    """checkpoint_every=10 with bptt=4: a checkpoint at step 30 would cut the window 29-32 in
    two, and its first half's gradient would be lost on resume. Checkpoints go to the first
    window end on or after each multiple of 10 instead (12, 20, 32, ...)."""
    from deephtm.events import TrainerListener
    from deephtm.train.trainer import Trainer

    class Saves(TrainerListener):
        def __init__(self):
            self.steps = []

        def on_checkpoint(self, step, path):
            self.steps.append(step)

    full = Trainer(_tbptt_graph(tmp_path))
    full.run()
    saves = Saves()
    crashed = Trainer(_tbptt_graph(tmp_path), out=tmp_path / "run", listeners=[saves])
    crashed.train_until(35)  # then "killed": no final save
    assert saves.steps == [12, 20, 32]
    resumed = Trainer(_tbptt_graph(tmp_path), out=tmp_path / "run", resume=True)
    assert resumed.step == 32
    resumed.run()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
