"""A live view of one node's outputs while it trains: scalars (and one-value vectors) as
curves, vectors as rasters (units x time), images as pictures. Opened by clicking a node in
the editor; the run panel shows it as a tab beside its plots."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .buffers import Ring
from .plots import to_display_image
from deephtm.live.probes import MAX_RASTER_UNITS, Probes

VIEW_STEPS = 200


class NodeActivityView(QWidget):
    closed = pyqtSignal(str)  # node id

    def __init__(self, node_id: str, parent=None):
        super().__init__(parent)
        self.node_id = node_id
        self.setWindowTitle(f"{node_id}: live activity")
        self.note = QLabel("waiting for training to start")
        self.note.setWordWrap(True)
        self.error: str | None = None  # the first failure of a plot, shown in the note
        self.plots = pg.GraphicsLayoutWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.note)
        lay.addWidget(self.plots, 1)
        self.ports: dict = {}  # key -> (kind, item, buffer)
        self.frames = 0
        self._dirty: set = set()

    def configure(self, probes: Probes | None) -> None:
        """Build one plot per output port of this node in the running graph."""
        self.plots.clear()
        self.ports = {}
        self.error = None
        self.note.setStyleSheet("")
        keys = [k for k in (probes.shapes if probes else {}) if k[0] == self.node_id]
        if probes is None:
            self.note.setText("waiting for training to start")
            return
        if not keys:
            self.note.setText(f"node '{self.node_id}' has no outputs in the graph being trained")
            return
        self.note.setText(f"last {VIEW_STEPS} steps of stream 0")
        for i, key in enumerate(keys):
            shape = probes.shapes[key]
            plot = self.plots.addPlot(row=i, col=0, title=f"{key[1]}  {list(shape)}")
            if len(shape) == 0 or (len(shape) == 1 and int(shape[0]) == 1):  # one value: a curve
                self.ports[key] = ("scalar", plot.plot(pen=pg.mkPen((255, 160, 40), width=1.5)), Ring(VIEW_STEPS))
            elif len(shape) == 1:
                units = min(int(shape[0]), MAX_RASTER_UNITS)
                img = pg.ImageItem(axisOrder="row-major")
                plot.addItem(img)
                plot.setLabel("left", "unit")
                self.ports[key] = ("raster", img, Ring(VIEW_STEPS, (units,)))
            else:
                img = pg.ImageItem(axisOrder="row-major")
                plot.addItem(img)
                plot.setAspectLocked(True)
                plot.invertY(True)
                self.ports[key] = ("image", img, None)

    def feed(self, payload: dict) -> None:
        steps = payload.get("steps")
        for key, (kind, item, buf) in list(self.ports.items()):
            try:
                if kind != "image" and key in payload.get("series", {}) and steps is not None and len(steps):
                    buf.extend(steps, payload["series"][key])
                    self._dirty.add(key)
                elif kind == "image" and key in payload.get("snapshots", {}):
                    self.ports[key] = (kind, item, payload["snapshots"][key])
                    self._dirty.add(key)
            except Exception as exc:  # noqa: BLE001 - one bad port must not stop the others or the panel
                self._port_failed(key, exc)

    def refresh(self) -> None:
        if not self._dirty or not self.isVisible():
            return
        for key in self._dirty:
            kind, item, buf = self.ports.get(key, (None, None, None))
            try:
                if kind == "scalar":
                    x, y = buf.view()
                    item.setData(x, y.reshape(len(x)))
                elif kind == "raster" and len(buf):
                    x, rows = buf.view()
                    item.setImage(rows.T, autoLevels=True)
                    item.setRect(pg.QtCore.QRectF(float(x[0]), 0.0, float(len(x)), float(rows.shape[1])))
                elif kind == "image" and isinstance(buf, np.ndarray):
                    item.setImage(to_display_image(buf), autoLevels=True)
            except Exception as exc:  # noqa: BLE001
                self._port_failed(key, exc)
        self._dirty = set()
        self.frames += 1

    def _port_failed(self, key, exc: Exception) -> None:
        """Stop drawing that port and say why, once, in the view (not a traceback per sample)."""
        self.ports.pop(key, None)
        self._dirty.discard(key)
        if self.error is None:
            self.error = f"{key[0]}.{key[1]}: can't be shown: {type(exc).__name__}: {exc}"
            self.note.setText(self.error)
            self.note.setStyleSheet("color: #ff6b5e;")

    def closeEvent(self, event):
        self.closed.emit(self.node_id)
        super().closeEvent(event)
