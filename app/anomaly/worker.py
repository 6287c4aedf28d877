"""Runs deephtm detect on a worker thread and hands the rows over in chunks."""
from __future__ import annotations

from PyQt6.QtCore import QObject, pyqtSignal

from deephtm.anomaly.detect import Detector
from deephtm.errors import DeepHTMError


class DetectWorker(QObject):
    """Lives on a QThread; run() streams the file through the detector. Signals carry plain
    Python data, so the GUI thread never touches the detector's tensors."""

    chunk = pyqtSignal(dict)  # new rows: timestamps, values, raw, likelihood, score, flagged
    finished = pyqtSignal(dict)  # the detect summary
    failed = pyqtSignal(str)  # a one-line error

    def __init__(self, graph, csv_path: str, **options):
        super().__init__()
        self.graph, self.csv_path, self.options = graph, csv_path, options
        self._stop = False
        self._sent = 0

    def request_stop(self) -> None:
        self._stop = True  # read by the worker between chunks

    def run(self) -> None:
        try:
            det = Detector(self.graph, self.csv_path, **self.options)
            if not det.source.lines:
                raise DeepHTMError("no usable rows", file=self.csv_path)
            result = det.run(chunk=256, on_chunk=self._emit, should_stop=lambda: self._stop)
            self._emit(result, result.rows)
            summary = result.summary(self.csv_path, det.graph_path)
            summary["stopped"] = self._stop
            self.finished.emit(summary)
        except DeepHTMError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a worker must never die silently
            self.failed.emit(f"{type(exc).__name__}: {exc}")

    def _emit(self, result, rows_done: int) -> None:
        a, b = self._sent, result.rows
        if b <= a:
            return
        self._sent = b
        self.chunk.emit({
            "timestamps": result.timestamps[a:b], "values": result.values[a:b], "raw": result.raw[a:b],
            "likelihood": result.likelihood[a:b], "score": result.score[a:b], "flagged": result.flagged[a:b],
            "threshold": result.threshold,
        })
