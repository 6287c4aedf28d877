"""Runs from the editor are kept: Train starts a new run directory beside an earlier run, the
Run dock lists the graph's runs with their final metrics, and an earlier run's curves can be
drawn under the live ones."""
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from app.run.panel import IDLE
from tests.test_run_panel import WAIT_MS, open_panel, small_graph


@pytest.fixture
def panel(qtbot, tmp_path):
    p = open_panel(qtbot, tmp_path, "thread")
    yield p
    p.shutdown()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def train_once(qtbot, panel) -> dict:
    assert panel.train_btn.isEnabled()
    qtbot.mouseClick(panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.state == IDLE and panel.last_summary is not None, timeout=WAIT_MS)
    summary, panel.last_summary = panel.last_summary, None
    return summary


def test_train_twice_keeps_the_first_run_and_lists_both(qtbot, panel, tmp_path):
    panel.set_graph(small_graph(tmp_path, steps=60, log_every=10))
    first_dir = Path(panel.run_dir())
    train_once(qtbot, panel)
    first = snapshot(first_dir)
    assert (first_dir / "summary.json").exists()
    train_once(qtbot, panel)
    second_dir = Path(panel.run_dir())
    assert second_dir == first_dir.with_name(first_dir.name + "-2")
    assert snapshot(first_dir) == first  # the earlier run is untouched
    assert (second_dir / "summary.json").exists()
    items = [panel.runs_box.itemText(i) for i in range(1, panel.runs_box.count())]
    assert len(items) == 2 and items[0].startswith(first_dir.name + " · 60 steps")
    assert items[1].startswith(second_dir.name + " · 60 steps")
    # Choosing the first run (with the keyboard, as a user may) draws its curves dashed
    # under the live ones; going back to the first entry removes them.
    panel.runs_box.setFocus()
    qtbot.keyClick(panel.runs_box, Qt.Key.Key_Down)
    assert panel.runs_box.currentIndex() == 1
    xs, ys = panel.plots.overlay_loss_curve.getData()
    assert xs is not None and list(xs) == [10, 20, 30, 40, 50, 60] and all(y > 0 for y in ys)
    qtbot.keyClick(panel.runs_box, Qt.Key.Key_Up)
    xs, _ = panel.plots.overlay_loss_curve.getData()
    assert xs is None or len(xs) == 0


def test_a_training_thread_let_go_while_it_trains_is_deleted_once_it_ends(qtbot, tmp_path):
    # the panel lets an old worker go after asking it to stop (another file opened, a new run);
    # a thread still inside a long step must not be deleted under its own feet
    from PyQt6 import sip
    from PyQt6.QtCore import QObject

    from app.run.worker import RunOptions, TrainingThread

    owner = QObject()
    t = TrainingThread(small_graph(tmp_path), RunOptions(out=str(tmp_path / "run"), steps=100_000), owner)
    t.start()
    qtbot.waitUntil(lambda: t.step > 0, timeout=WAIT_MS)
    t.deleteLater()
    qtbot.wait(200)  # deferred deletions run here
    assert not sip.isdeleted(t) and t.isRunning()
    t.request_stop()
    qtbot.waitUntil(lambda: sip.isdeleted(t), timeout=WAIT_MS)
    assert owner.children() == []
