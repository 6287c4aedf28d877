"""The run panel's default worker: training in a separate process, driven from the GUI by
messages. Transitions, live data, checkpoints and resume, errors and a crashed or orphaned
worker. Each test starts one or two training processes (about 2 s each)."""
import json
import os
import signal

import numpy as np
import pytest
from safetensors.torch import load_file

from app.run.panel import IDLE, PAUSED, RUNNING
from deephtm.train.checkpoint import checkpoint_path
from tests.failing_nodes import register_failing, unregister_failing
from tests.test_run_panel import WAIT_MS, graph_with, open_panel, small_graph, wait_state


@pytest.fixture
def panel(qtbot, tmp_path):
    p = open_panel(qtbot, tmp_path, "process")
    yield p
    p.shutdown()
    if p.thread is not None:
        assert p.thread.process.process.exitcode is not None  # never outlives the panel


def worker_step(panel) -> int:
    return panel.thread.step


def test_process_start_pause_step_resume_stop_with_live_plots(qtbot, panel, tmp_path):
    assert panel.worker_kind == "process"
    panel.set_graph(small_graph(tmp_path))
    view = panel.show_node_view("sp")
    enc_view = panel.show_node_view("encoder")  # its output is sampled only while watched
    panel.tabs.setCurrentWidget(panel.plots)  # the plots' tab in front (hidden tabs are fed, not drawn)
    assert panel.start_training()
    pid = panel.thread.process.process.pid
    assert pid != os.getpid()
    wait_state(qtbot, panel, RUNNING)
    qtbot.waitUntil(lambda: worker_step(panel) >= 60 and panel.plots.frames > 0, timeout=WAIT_MS)

    panel.pause()
    wait_state(qtbot, panel, PAUSED)
    held = worker_step(panel)
    samples = panel.plots.samples
    qtbot.wait(300)
    assert worker_step(panel) == held and panel.plots.samples == samples  # really held
    meta = tmp_path / "run" / "checkpoint" / "meta.json"
    panel.save_checkpoint()  # served by the held trainer in the other process
    qtbot.waitUntil(lambda: meta.exists() and json.loads(meta.read_text())["step"] == held, timeout=WAIT_MS)

    panel.step()  # exactly one step, then held again
    qtbot.waitUntil(lambda: panel.plots.last_step == held + 1 and panel.state == PAUSED, timeout=WAIT_MS)
    qtbot.wait(200)
    assert worker_step(panel) == held + 1

    # The plots got the process's data: prediction, SP raster, TM cells, duty cycles, loss.
    plots = panel.plots
    steps, pred = plots.pred.view()
    assert steps[-1] == held + 1 and np.isfinite(pred).all()
    _, raster = plots.raster.view()
    assert raster.shape[1] == 64 and (raster.sum(1) == 4).all()
    assert plots.tm_state.shape == (4, 64) and (plots.tm_state >= 2).sum() >= 4
    assert abs(plots.duty.sum() - 4) < 0.5
    assert list(plots.loss.view()[0])[:1] == [50]
    _, rows = view.ports[("sp", "columns")][2].view()  # the node view's snapshot stream
    assert len(rows) >= 20 and ((rows != 0).sum(1) == 4).all()
    _, enc = enc_view.ports[("encoder", "y")][2].view()
    assert len(enc) >= 20 and enc.shape[1] == 32 and np.isfinite(enc).all() and enc.std() > 0

    panel.resume()
    wait_state(qtbot, panel, RUNNING)
    qtbot.waitUntil(lambda: worker_step(panel) >= held + 5, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS) as sig:
        panel.stop()
    summary = sig.args[0]
    assert panel.state == IDLE and summary["interrupted"] and summary["steps"] > held + 1
    assert json.loads(meta.read_text())["step"] == summary["steps"]  # Stop left a checkpoint
    assert panel.thread.process.process.exitcode == 0  # the process ended with the session
    assert panel.train_btn.isEnabled() and panel.resume_btn.isEnabled() and not panel.stop_btn.isEnabled()


def test_process_stop_leaves_checkpoint_and_resume_continues(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path, steps=200))
    panel.start_training(paused_after=120)
    wait_state(qtbot, panel, PAUSED)
    assert worker_step(panel) == 120
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.stop()
    run = tmp_path / "run"
    assert json.loads((run / "checkpoint" / "meta.json").read_text())["step"] == 120
    first = load_file(str(checkpoint_path(run)))

    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS) as sig:
        panel.resume()  # idle: a new process continues the run directory's checkpoint
    assert sig.args[0]["steps"] == 200 and not sig.args[0]["interrupted"]
    assert panel.plots.samples == 80  # only the 80 new steps were trained
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [50, 100, 150, 200]
    assert list(panel.plots.loss.view()[0]) == [50, 100, 150, 200]  # earlier history put back
    later = load_file(str(checkpoint_path(run)))
    weights = [k for k in first if k.startswith("model/")]
    assert weights and any(not (first[k] == later[k]).all() for k in weights)  # it trained on


def test_process_failures_show_in_the_ui_and_the_app_survives(qtbot, panel, tmp_path):
    register_failing()  # registered in this process only: the panel names them to the worker
    try:
        for node_type, message in (("test.nan_after", "NaN"), ("test.shape_fail_after", "RuntimeError"),
                                   ("test.oom_after", "out of memory")):
            panel.set_graph(graph_with(tmp_path, node_type))
            with qtbot.waitSignal(panel.training_failed, timeout=WAIT_MS) as sig:
                panel.start_training()
            assert message in sig.args[0] and "step 30" in sig.args[0]
            assert panel.state == IDLE and message in panel.error_label.text()
            assert panel.train_btn.isEnabled() and not panel.stop_btn.isEnabled()
    finally:
        unregister_failing()
    panel.set_graph(small_graph(tmp_path, steps=60))  # still alive: the next graph trains
    with qtbot.waitSignal(panel.training_finished, timeout=WAIT_MS):
        panel.start_training()
    assert not panel.error_label.isVisible() and panel.last_summary["steps"] == 60


def test_a_crashed_worker_process_is_an_error_in_the_ui(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path))
    panel.start_training()
    qtbot.waitUntil(lambda: panel.state == RUNNING and worker_step(panel) > 0, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.training_failed, timeout=WAIT_MS) as sig:
        os.kill(panel.thread.process.process.pid, signal.SIGKILL)
    assert "killed by signal 9" in sig.args[0]
    assert panel.state == IDLE and panel.error_label.isVisible() and panel.train_btn.isEnabled()


def test_shutdown_ends_a_running_worker_and_saves(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path))
    panel.start_training()
    qtbot.waitUntil(lambda: panel.state == RUNNING and worker_step(panel) > 0, timeout=WAIT_MS)
    process = panel.thread.process.process
    panel.shutdown()  # what the app does on quit
    assert process.exitcode == 0  # stopped, not killed
    assert json.loads((tmp_path / "run" / "checkpoint" / "meta.json").read_text())["step"] > 0


def test_clicking_a_node_in_the_editor_while_it_trains_opens_its_live_view(qtbot, tmp_path):
    from tests.app_helpers import fixture_file, make_window

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    panel = w.run_panel
    assert panel.worker_kind == "process"  # the editor's default
    panel.set_run_dir(str(tmp_path / "run"))
    panel.steps_box.setValue(100_000)
    try:
        panel.start_training()
        wait_state(qtbot, panel, RUNNING)
        w.scene.select_ids(["sp"])
        assert set(panel.node_views) == {"sp"}
        view = panel.node_views["sp"]
        qtbot.waitUntil(lambda: view.frames > 0 and len(view.ports[("sp", "columns")][2]) >= 5, timeout=WAIT_MS)
        w.editor.set_param("sp", "columns", 128)  # the document stays editable while it trains
        w.editor.validate_now()
        assert panel.graph.node("sp").params["columns"] == 128 and panel.state == RUNNING
    finally:
        panel.shutdown()
    assert panel.thread.process.process.exitcode == 0
