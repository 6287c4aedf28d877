"""Runs are never lost: a new run never replaces an earlier one, a run directory is locked
while a run writes it, and a mistaken --resume is an error, not a fresh start."""
import json

from deephtm.cli import main
from deephtm.train.rundir import RunLock

from helpers import small_sine_dict, write


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def graph(tmp_path, steps=20):
    return write(tmp_path, small_sine_dict(steps=steps, columns=32, cells=2, hidden=16))


def test_a_new_run_goes_beside_an_earlier_one(tmp_path, capsys):
    g = graph(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", str(g), "--out", str(run), "--quiet", "--seed", "3"]) == 0
    assert f"{run} holds an earlier run, kept; this run goes to {run}-2" in capsys.readouterr().err
    assert snapshot(run) == before
    assert json.loads((tmp_path / "run-2" / "summary.json").read_text())["seed"] == 3
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    assert (tmp_path / "run-3" / "summary.json").exists()


def test_overwrite_trains_into_the_named_folder(tmp_path):
    g = graph(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    assert main(["train", str(g), "--out", str(run), "--quiet", "--overwrite", "--seed", "5"]) == 0
    assert json.loads((run / "summary.json").read_text())["seed"] == 5
    assert not (tmp_path / "run-2").exists()


def test_a_failed_start_leaves_the_earlier_log_alone(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        return  # the failure needs a machine without CUDA
    g = graph(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    before = snapshot(run)
    assert main(["train", str(g), "--out", str(run), "--quiet", "--overwrite", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k.name != ".lock"} == {k: v for k, v in before.items() if k.name != ".lock"}


def test_resume_of_a_missing_folder_or_checkpoint_is_an_error(tmp_path, capsys):
    g = graph(tmp_path)
    assert main(["train", str(g), "--resume", str(tmp_path / "nosuchdir")]) == 2
    err = capsys.readouterr().err
    assert "nosuchdir: no such run directory to resume" in err and err.count("\n") == 1
    assert not (tmp_path / "nosuchdir").exists()
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    (run / "checkpoint" / "model.safetensors").unlink()
    before = snapshot(run)
    assert main(["train", str(g), "--resume", str(run), "--steps", "40", "--quiet"]) == 2
    assert "has no model.safetensors" in capsys.readouterr().err
    assert snapshot(run) == before


def test_resume_with_out_is_refused(tmp_path, capsys):
    g = graph(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    assert main(["train", str(g), "--resume", str(run), "--out", str(tmp_path / "b")]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_locked_run_directory_is_refused(tmp_path, capsys):
    g = graph(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(g), "--out", str(run), "--quiet"]) == 0
    before = snapshot(run)
    with RunLock(run):  # another run is writing it
        assert main(["train", str(g), "--resume", str(run), "--steps", "40", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another run is writing this run directory" in err and err.count("\n") == 1
    assert snapshot(run) == before
    assert main(["train", str(g), "--resume", str(run), "--steps", "40", "--quiet"]) == 0  # free again


def test_checkpoints_come_by_time_as_well_as_by_steps(tmp_path):
    """With checkpoint_every 0 (no step-based checkpoints), a run still checkpoints every
    checkpoint_every_s seconds of training, so a kill loses at most about that much."""
    import time

    from deephtm.events import TrainerListener
    from deephtm.graph.graphfile import Graph
    from deephtm.train.trainer import Trainer

    class SlowReports(TrainerListener):  # each report takes 0.2 s: time passes between steps
        def __init__(self):
            self.saved = []

        def on_log(self, step, metrics):
            time.sleep(0.2)

        def on_checkpoint(self, step, path):
            self.saved.append(step)

    d = small_sine_dict(steps=60, columns=32, cells=2, hidden=16)
    d["training"].update(checkpoint_every=0, checkpoint_every_s=0.5, log_every=5)
    listener = SlowReports()
    Trainer(Graph.from_dict(d), out=tmp_path / "run", listeners=[listener]).run()
    mid_run = [s for s in listener.saved if s < 60]
    assert len(mid_run) >= 3, listener.saved  # about 12 reports of 0.2 s: a save every ~3rd
    d["training"]["checkpoint_every_s"] = 0
    listener = SlowReports()
    Trainer(Graph.from_dict(d), out=tmp_path / "run-off", listeners=[listener]).run()
    assert listener.saved == [60]  # only the final one
