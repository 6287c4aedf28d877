"""The run panel: training from the editor, with live plots. These tests drive the thread
worker (they look into the trainer); tests/test_run_process.py covers the default, a process."""
import json

import numpy as np
import pytest
import torch

from app.run.buffers import DecimatingSeries, Ring
from app.run.panel import IDLE, PAUSED, RUNNING, RunPanel
from deephtm.graph.graphfile import Graph
from tests.failing_nodes import register_failing, unregister_failing
from tests.helpers import small_sine_dict, write

WAIT_MS = 60_000  # the CI machine is shared; the waits end as soon as the condition holds


def small_graph(tmp_path, steps=100_000, **changes) -> Graph:
    d = small_sine_dict(steps=steps)
    d["training"].update(changes)
    g = Graph.from_dict(d)
    g.path = str(write(tmp_path, d))
    return g


@pytest.fixture(autouse=True)
def one_torch_thread():
    """On a loaded 2-core machine, torch's second intra-op thread spins against the GUI
    thread and the other processes (tens of times slower); one thread keeps these short."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def open_panel(qtbot, tmp_path, worker: str) -> RunPanel:
    """A shown run panel with its training worker kind and a run directory in tmp_path."""
    p = RunPanel(worker=worker)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    p.set_run_dir(str(tmp_path / "run"))
    return p


@pytest.fixture
def panel(qtbot, tmp_path):
    p = open_panel(qtbot, tmp_path, "thread")
    yield p
    p.shutdown()


def wait_state(qtbot, panel, state):
    qtbot.waitUntil(lambda: panel.state == state, timeout=WAIT_MS)


def trainer_step(panel) -> int:
    return panel.thread.trainer.step


def test_start_pause_resume_stop(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path))
    assert panel.start_training()
    wait_state(qtbot, panel, RUNNING)
    qtbot.waitUntil(lambda: trainer_step(panel) >= 5, timeout=WAIT_MS)
    assert panel.stop_btn.isEnabled() and not panel.train_btn.isEnabled()

    panel.pause()
    wait_state(qtbot, panel, PAUSED)
    held = trainer_step(panel)
    qtbot.wait(300)
    assert trainer_step(panel) == held  # really held
    assert panel.resume_btn.isEnabled() and not panel.pause_btn.isEnabled()
    meta = tmp_path / "run" / "checkpoint" / "meta.json"
    panel.save_checkpoint()  # served by the held training thread
    qtbot.waitUntil(lambda: meta.exists() and json.loads(meta.read_text())["step"] == held, timeout=WAIT_MS)

    panel.step()  # exactly one step, then held again
    qtbot.waitUntil(lambda: trainer_step(panel) == held + 1 and panel.state == PAUSED, timeout=WAIT_MS)
    qtbot.wait(200)
    assert trainer_step(panel) == held + 1
    qtbot.waitUntil(lambda: panel.plots.last_step == held + 1, timeout=WAIT_MS)  # the plots show the held step

    panel.resume()
    wait_state(qtbot, panel, RUNNING)
    qtbot.waitUntil(lambda: trainer_step(panel) >= held + 5, timeout=WAIT_MS)

    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS) as sig:
        panel.stop()
    summary = sig.args[0]
    assert panel.state == IDLE and summary["interrupted"] and summary["steps"] > held + 1
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()
    assert panel.train_btn.isEnabled() and panel.resume_btn.isEnabled() and not panel.stop_btn.isEnabled()


def test_plots_receive_data(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path, steps=150))
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.start_training()
    plots = panel.plots
    assert plots.samples == 150 and plots.frames > 0
    steps, pred = plots.pred.view()
    assert len(pred) == 150 and steps[-1] == 150 and np.isfinite(pred).all()
    x, y = plots.pred_curve.getData()
    assert len(x) == 150  # drawn, not only buffered
    _, actual = plots.actual.view()
    assert np.abs(actual).max() <= 1.0 + 1e-6 and np.ptp(actual) > 1.0  # the sine's target
    _, raster = plots.raster.view()
    assert raster.shape == (150, 64) and (raster.sum(1) == 4).all()  # 4 winners of 64 columns each step
    assert plots.tm_state.shape == (4, 64) and (plots.tm_state >= 2).sum() >= 4  # active cells shown
    assert plots.duty.shape == (64,) and abs(plots.duty.sum() - 4) < 0.5
    lx, ly = plots.loss.view()
    assert list(lx) == [50, 100, 150] and (ly > 0).all()
    assert len(plots.metric.view()[0]) == 3  # nrmse, the graph's main metric
    assert "150 / 150" in panel.status.text()


def test_stop_leaves_checkpoint_and_resume_continues(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path, steps=200))
    panel.start_training(paused_after=120)  # Step's mechanism: train 120 steps, then hold
    wait_state(qtbot, panel, PAUSED)
    assert trainer_step(panel) == 120
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.stop()
    run = tmp_path / "run"
    meta = json.loads((run / "checkpoint" / "meta.json").read_text())
    assert meta["step"] == 120
    first_weights = {k: v.clone() for k, v in panel.thread.trainer.model.state_dict().items()}

    assert panel.resume_btn.isEnabled()
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS) as sig:
        panel.resume()  # idle: continue the run directory's checkpoint
    summary = sig.args[0]
    assert summary["steps"] == 200 and not summary["interrupted"]
    assert panel.thread.options.resume
    assert panel.plots.samples == 80  # only the 80 new steps were trained
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [50, 100, 150, 200]  # one log across both sessions, as the CLI's --resume
    assert list(panel.plots.loss.view()[0]) == [50, 100, 150, 200]  # earlier history put back
    assert json.loads((run / "summary.json").read_text())["steps"] == 200
    later = panel.thread.trainer.model.state_dict()
    assert any(not torch.equal(v, later[k]) for k, v in first_weights.items())  # it trained on


@pytest.fixture
def failing_nodes():
    """Registered for one test only: other tests list the node types."""
    register_failing()
    yield
    unregister_failing()


def graph_with(tmp_path, node_type: str) -> Graph:
    d = small_sine_dict(steps=200)
    d["nodes"].append({"id": "bad", "type": node_type, "params": {"after": 30}})
    d["edges"].append({"from": "decoder.y", "to": "bad.x", "delay": 0})
    g = Graph.from_dict(d)
    g.path = str(write(tmp_path, d, name=f"{node_type}.json"))
    return g


@pytest.mark.parametrize("node_type, message", [("test.nan_after", "NaN"),
                                                ("test.shape_fail_after", "RuntimeError"),
                                                ("test.oom_after", "out of memory")])
def test_app_survives_a_graph_that_fails_while_training(qtbot, panel, tmp_path, failing_nodes, node_type, message):
    panel.set_graph(graph_with(tmp_path, node_type))
    with qtbot.waitSignal(panel.training_failed, timeout=WAIT_MS) as sig:
        panel.start_training()
    assert message in sig.args[0] and "step 30" in sig.args[0]
    assert panel.state == IDLE and panel.error_label.isVisible() and message in panel.error_label.text()
    assert panel.train_btn.isEnabled() and not panel.stop_btn.isEnabled()
    # still alive: the next (good) graph trains
    panel.set_graph(small_graph(tmp_path, steps=60))
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.start_training()
    assert not panel.error_label.isVisible() and panel.last_summary["steps"] == 60


def test_bad_lr_override_is_refused_before_starting(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path))
    panel.lr_edit.setText("fast")
    assert not panel.start_training()
    assert panel.state == IDLE and "lr" in panel.error_label.text()
    panel.lr_edit.setText("50")
    assert not panel.start_training() and "10" in panel.error_label.text()  # above the param's max


def test_node_view_shows_live_activity(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path, steps=100_000))
    view = panel.show_node_view("sp")
    panel.node_activity_requested.emit("tm")  # the editor's way in
    assert set(panel.node_views) == {"sp", "tm"}
    assert panel.tabs.currentWidget() is panel.node_views["tm"]  # tabs in the panel, the newest in front
    assert panel.show_node_view("sp") is view and panel.tabs.currentWidget() is view  # only a shown tab is drawn
    panel.start_training()
    qtbot.waitUntil(lambda: view.frames > 0 and len(view.ports[("sp", "columns")][2]) >= 20, timeout=WAIT_MS)
    _, rows = view.ports[("sp", "columns")][2].view()
    assert rows.shape[1] == 64 and ((rows != 0).sum(1) == 4).all()
    tm_view = panel.node_views["tm"]
    qtbot.waitUntil(lambda: len(tm_view.ports[("tm", "anomaly")][2]) > 0, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.stop()


def test_headless_check_mode_writes_run_and_screenshot(qtbot, tmp_path, capsys):
    from app.main import main

    path = write(tmp_path, small_sine_dict(steps=50))
    out, shot = tmp_path / "run", tmp_path / "shot.png"
    assert main([str(path), "--train-steps", "80", "--out", str(out), "--screenshot", str(shot)]) == 0
    assert "trained 80 steps in the app" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 80 and summary["steps_per_s"] > 0
    assert (out / "checkpoint" / "model.safetensors").exists() and (out / "metrics.jsonl").exists()
    assert shot.stat().st_size > 10_000


def test_ring_and_decimating_buffers_stay_bounded():
    ring = Ring(5, (2,))
    ring.extend(np.arange(7), np.arange(14).reshape(7, 2))
    steps, rows = ring.view()
    assert list(steps) == [2, 3, 4, 5, 6] and rows[0].tolist() == [4, 5]
    ring.extend(np.arange(7, 20), np.zeros((13, 2)))  # more than the capacity at once
    assert list(ring.view()[0]) == list(range(15, 20))
    series = DecimatingSeries(64)
    for i in range(200_000):
        series.append(i, float(i))
    x, y = series.view()
    assert len(x) <= 64 and x[0] == 0 and x[-1] > 190_000 and (np.diff(x) > 0).all()


def test_headless_check_mode_reports_a_bad_graph_in_one_line(qtbot, tmp_path, capsys):
    from app.run.headless import run_headless_training

    d = small_sine_dict()
    d["nodes"][2]["params"]["columns"] = -3
    path = write(tmp_path, d)
    assert run_headless_training(str(path), 10, str(tmp_path / "run"), None, editor=False) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "columns" in err and "Traceback" not in err
