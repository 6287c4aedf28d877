"""The anomaly view: it draws what it is given, and runs the detector live on a thread."""
import json
import math
from datetime import datetime, timedelta

import pytest

pytest.importorskip("pyqtgraph")

from PyQt6 import sip  # noqa: E402
from PyQt6.QtCore import QThread  # noqa: E402

from app.anomaly import AnomalyView  # noqa: E402

START = datetime(2024, 1, 1)


def stamps(n):
    return [(START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def chunk(n, flagged=()):
    return {"timestamps": stamps(n), "values": [math.sin(i / 5) for i in range(n)], "raw": [0.0] * n,
            "likelihood": [0.5] * n, "score": [0.03] * n, "flagged": [int(i in flagged) for i in range(n)],
            "threshold": 0.4}


def test_view_draws_series_score_flags_and_windows(qtbot):
    view = AnomalyView()
    qtbot.addWidget(view)
    view.append_rows(chunk(3000, flagged=(100, 2500)))
    assert view.rows == 3000
    x, y = view.series_curve.getData()
    assert len(x) == 3000 and y[10] == pytest.approx(math.sin(2))
    assert len(view.score_curve.getData()[0]) == 3000
    assert len(view.flag_points.data) == 2 and len(view.flag_marks.data) == 2
    assert view.threshold_line.value() == pytest.approx(0.4)
    view.set_windows([(START + timedelta(hours=1), START + timedelta(hours=2))])
    assert len(view.window_items) == 1
    a, b = view.window_items[0].getRegion()
    assert b - a == pytest.approx(3600)


def test_view_scrolls_through_long_series(qtbot):
    view = AnomalyView()
    qtbot.addWidget(view)
    view.append_rows(chunk(5000))
    assert view.scroll.maximum() == 5000 - 2000
    view.scroll.setValue(view.scroll.maximum())
    lo, hi = view.series_plot.viewRange()[0]
    assert lo > view.x[2500] and hi >= view.x[4990]


def test_view_runs_the_detector_live(qtbot, tmp_path):
    n = 120
    lines = ["timestamp,value"] + [f"{t},{10 + math.sin(i / 4):.3f}" for i, t in enumerate(stamps(n))]
    lines[30] = "2024-01-01 02:25:00,oops"  # a bad row is skipped, not fatal
    csv_path = tmp_path / "stream.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    windows = tmp_path / "w.json"
    windows.write_text(json.dumps({"demo/stream.csv": [["2024-01-01 05:00:00", "2024-01-01 06:00:00"]]}))
    view = AnomalyView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.detection_finished, timeout=120_000) as done:
        view.open_csv(str(csv_path), windows=str(windows), run=True)
    summary = done.args[0]
    assert summary["rows"] == n and summary["skipped_rows"][0]["line"] == 31
    assert view.rows == n and len(view.series_curve.getData()[0]) == n
    assert all(0.0 <= s <= 1.0 for s in view.scores)
    assert len(view.window_items) == 1
    assert view.run_button.isEnabled() and "120 rows" in view.status.text()


def test_view_reports_a_bad_file(qtbot, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("when,what\n1,2\n")
    view = AnomalyView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.detection_failed, timeout=60_000) as failed:
        view.open_csv(str(path), run=True)
    assert "no column 'value'" in failed.args[0]
    assert view.status.text().startswith("error:")


def test_each_run_deletes_its_worker_and_its_thread_when_it_ends(qtbot, tmp_path):
    csv_path = tmp_path / "stream.csv"
    csv_path.write_text("timestamp,value\n" + "".join(f"{t},{i % 7}\n" for i, t in enumerate(stamps(40))))
    view = AnomalyView()
    qtbot.addWidget(view)
    view.csv_path = str(csv_path)
    for _ in range(2):  # a second run must start cleanly after the first
        with qtbot.waitSignal(view.detection_finished, timeout=120_000):
            view.start_detection()
            worker, thread = view._worker, view._thread
            assert worker.thread() is thread and thread is not QThread.currentThread()
        # the run is over: Qt deleted the worker as its thread ended (Python still holds a wrapper)
        assert sip.isdeleted(worker)
        assert view._worker is None and view._thread is None and view.run_button.isEnabled()
        qtbot.waitUntil(lambda t=thread: sip.isdeleted(t), timeout=5000)
    assert view.findChildren(QThread) == [] and view.rows == 40
