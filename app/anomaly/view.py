"""AnomalyView: the series on top, the anomaly score beneath, flagged points and labelled
windows shaded; opens a CSV and runs the detector live on a worker thread."""
from __future__ import annotations

import calendar
import math
from pathlib import Path

import pyqtgraph as pg
from PyQt6.QtCore import Qt, QThread, pyqtSignal
from PyQt6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QScrollBar, QVBoxLayout,
                             QWidget)

from deephtm.anomaly.timestamps import parse_timestamp

from .worker import DetectWorker

DEFAULT_GRAPH = Path(__file__).resolve().parents[2] / "graphs" / "anomaly.json"
WINDOW_BRUSH = (255, 170, 0, 60)
FLAG_BRUSH = (220, 30, 30, 220)
VISIBLE_ROWS = 2000  # rows shown at once; the scroll bar moves through the rest


class AnomalyView(QWidget):
    detection_finished = pyqtSignal(dict)
    detection_failed = pyqtSignal(str)

    def __init__(self, parent=None, graph: str | Path = DEFAULT_GRAPH):
        super().__init__(parent)
        self.graph = str(graph)
        self.csv_path: str | None = None
        self.windows: list[tuple] = []  # (start datetime, end datetime)
        self.summary: dict | None = None
        self._thread: QThread | None = None
        self._worker: DetectWorker | None = None
        self._clear_data()
        self._build()

    # ---- layout ----------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open CSV…")
        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.status = QLabel("Open a CSV file with a timestamp and a value column.")
        self.open_button.clicked.connect(self._ask_open)
        self.run_button.clicked.connect(self.start_detection)
        self.stop_button.clicked.connect(self.stop_detection)
        bar = QHBoxLayout()
        for w in (self.open_button, self.run_button, self.stop_button):
            bar.addWidget(w)
        bar.addWidget(self.status, 1)

        self.plots = pg.GraphicsLayoutWidget()
        self.series_plot = self.plots.addPlot(row=0, col=0)
        self.score_plot = self.plots.addPlot(row=1, col=0)
        self.series_plot.setLabel("left", "value")
        self.score_plot.setLabel("left", "anomaly score")
        self.score_plot.setXLink(self.series_plot)
        self.score_plot.setYRange(0, 1.05)
        self.score_plot.setMouseEnabled(y=False)
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 2)
        self.series_curve = self.series_plot.plot(pen=pg.mkPen((40, 90, 200), width=1))
        self.score_curve = self.score_plot.plot(pen=pg.mkPen((60, 60, 60), width=1))
        self.flag_points = pg.ScatterPlotItem(size=8, brush=pg.mkBrush(*FLAG_BRUSH), pen=None)
        self.flag_marks = pg.ScatterPlotItem(size=8, brush=pg.mkBrush(*FLAG_BRUSH), pen=None)
        self.series_plot.addItem(self.flag_points)
        self.score_plot.addItem(self.flag_marks)
        self.threshold_line = pg.InfiniteLine(angle=0, pos=0.5, pen=pg.mkPen((220, 30, 30), style=Qt.PenStyle.DashLine))
        self.score_plot.addItem(self.threshold_line)
        self.window_items: list = []

        self.scroll = QScrollBar(Qt.Orientation.Horizontal)
        self.scroll.setRange(0, 0)
        self.scroll.valueChanged.connect(self._scroll_to)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.scroll)

    # ---- data ------------------------------------------------------------------------
    def _clear_data(self) -> None:
        self.x: list[float] = []
        self.values: list[float] = []
        self.scores: list[float] = []
        self.likelihood: list[float] = []
        self.flagged: list[int] = []
        self.timestamps: list[str] = []
        self.uses_time = None  # decided by the first row: epoch seconds or row numbers

    @property
    def rows(self) -> int:
        return len(self.scores)

    def clear(self) -> None:
        self._clear_data()
        self._redraw()

    def append_rows(self, chunk: dict) -> None:
        """Add detector rows (the worker's chunk dicts; also usable directly)."""
        for i, text in enumerate(chunk["timestamps"]):
            self.x.append(self._x_of(text))
            v = chunk["values"][i]
            self.values.append(math.nan if v is None else v)
            lik = chunk["likelihood"][i]
            self.likelihood.append(math.nan if lik is None else lik)
            self.scores.append(chunk["score"][i])
            self.flagged.append(chunk["flagged"][i])
            self.timestamps.append(text)
        if "threshold" in chunk:
            self.threshold_line.setPos(chunk["threshold"])
        self._redraw(follow=self._worker is not None)

    def set_windows(self, windows: list[tuple]) -> None:
        """Labelled anomaly windows as (start, end) datetimes, drawn as shaded bands."""
        self.windows = list(windows)
        self._redraw_windows()

    def load_windows_file(self, path: str, csv_path: str) -> None:
        from deephtm.anomaly.nab_score import load_windows, match_series

        table = load_windows(path)
        self.set_windows(table[match_series(csv_path, list(table))])

    def _x_of(self, text: str) -> float:
        if self.uses_time is None:
            self.uses_time = _epoch(text) is not None
            if self.uses_time:
                for plot in (self.series_plot, self.score_plot):
                    plot.setAxisItems({"bottom": pg.DateAxisItem(utcOffset=0)})
        if self.uses_time:
            t = _epoch(text)
            if t is not None:
                return t
            return self.x[-1] if self.x else 0.0  # a skipped row with a bad timestamp
        return float(len(self.x))

    # ---- drawing -----------------------------------------------------------------------
    def _redraw(self, follow: bool = False) -> None:
        n = self.rows
        self.series_curve.setData(self.x, self.values, connect="finite")
        self.score_curve.setData(self.x, self.scores)
        idx = [i for i in range(n) if self.flagged[i]]
        self.flag_points.setData([self.x[i] for i in idx], [self.values[i] for i in idx])
        self.flag_marks.setData([self.x[i] for i in idx], [self.scores[i] for i in idx])
        self.scroll.blockSignals(True)
        self.scroll.setRange(0, max(0, n - VISIBLE_ROWS))
        self.scroll.setPageStep(VISIBLE_ROWS)
        if follow:
            self.scroll.setValue(self.scroll.maximum())
        self.scroll.blockSignals(False)
        self._scroll_to(self.scroll.value())
        self._redraw_windows()

    def _redraw_windows(self) -> None:
        for item in self.window_items:
            self.series_plot.removeItem(item)
        self.window_items = []
        if not self.windows or not self.x:
            return
        for start, end in self.windows:
            a, b = self._window_x(start, end)
            if a is None:
                continue
            region = pg.LinearRegionItem((a, b), movable=False, brush=pg.mkBrush(*WINDOW_BRUSH), pen=None)
            region.setZValue(-10)
            self.series_plot.addItem(region)
            self.window_items.append(region)

    def _window_x(self, start, end):
        if self.uses_time:
            return float(calendar.timegm(start.timetuple())), float(calendar.timegm(end.timetuple()))
        return None, None  # windows need timestamps

    def _scroll_to(self, first: int) -> None:
        if not self.x:
            return
        last = min(len(self.x) - 1, first + VISIBLE_ROWS - 1)
        self.series_plot.setXRange(self.x[first], self.x[last], padding=0.01)

    # ---- running ----------------------------------------------------------------------
    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a CSV stream", "", "CSV files (*.csv);;All files (*)")
        if path:
            self.open_csv(path, run=True)

    def open_csv(self, path: str, windows: str | None = None, run: bool = True) -> None:
        self.csv_path = str(path)
        self.clear()
        if windows:
            self.load_windows_file(windows, self.csv_path)
        self.status.setText(f"{Path(path).name}")
        if run:
            self.start_detection()

    def start_detection(self, **options) -> None:
        if self.csv_path is None or self._thread is not None:
            return
        self.clear()
        self.summary = None
        thread = QThread(self)
        worker = DetectWorker(self.graph, self.csv_path, **options)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.chunk.connect(self.append_rows)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        # Qt's order of teardown: the worker is deleted on its own thread as that thread ends,
        # then the thread object here. Left to Python, the worker would outlive its thread
        # (PyQt can only post its deletion to a thread that has ended) and every run leak one.
        thread.finished.connect(worker.deleteLater)
        thread.finished.connect(thread.deleteLater)
        self._thread, self._worker = thread, worker
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"{Path(self.csv_path).name}: detecting…")
        thread.start()

    def stop_detection(self) -> None:
        if self._worker is not None:
            self._worker.request_stop()

    def _end_thread(self) -> None:
        """Let the worker's thread end and wait for it: the worker is deleted there before wait()
        returns; the thread object goes by its deleteLater. Only then are our references dropped."""
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
        self._thread, self._worker = None, None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def _on_finished(self, summary: dict) -> None:
        self._end_thread()
        self.summary = summary
        stopped = " (stopped)" if summary.get("stopped") else ""
        self.status.setText(f"{Path(self.csv_path).name}: {summary['rows']} rows, {summary['rows_per_s']:.0f} rows/s, "
                            f"{summary['flagged']} flagged, {len(summary['skipped_rows'])} skipped{stopped}")
        self.detection_finished.emit(summary)

    def _on_failed(self, message: str) -> None:
        self._end_thread()
        self.status.setText(f"error: {message}")
        self.detection_failed.emit(message)

    def closeEvent(self, event) -> None:
        self.stop_detection()
        self._end_thread()
        super().closeEvent(event)


def _epoch(text: str) -> float | None:
    try:
        return float(calendar.timegm(parse_timestamp(text).timetuple()))
    except ValueError:
        return None
