"""A live view of one node's outputs while it trains: scalars as curves, vectors as
rasters (units x time), images as pictures. Opened by clicking a node in the editor."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .buffers import Ring
from .plots import to_display_image
from deephtm.live.probes import MAX_RASTER_UNITS, Probes

VIEW_STEPS = 200


class NodeActivityView(QWidget):
    closed = pyqtSignal(str)  # node id

    def __init__(self, node_id: str, parent=None):
        super().__init__(parent, Qt.WindowType.Window)
        self.node_id = node_id
        self.setWindowTitle(f"{node_id}: live activity")
        self.resize(640, 420)
        self.note = QLabel("waiting for training to start")
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
            if len(shape) == 0:
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
        for key, (kind, item, buf) in self.ports.items():
            if kind != "image" and key in payload.get("series", {}) and steps is not None and len(steps):
                buf.extend(steps, payload["series"][key])
                self._dirty.add(key)
            elif kind == "image" and key in payload.get("snapshots", {}):
                self.ports[key] = (kind, item, payload["snapshots"][key])
                self._dirty.add(key)

    def refresh(self) -> None:
        if not self._dirty or not self.isVisible():
            return
        for key in self._dirty:
            kind, item, buf = self.ports.get(key, (None, None, None))
            if kind == "scalar":
                item.setData(*buf.view())
            elif kind == "raster" and len(buf):
                x, rows = buf.view()
                item.setImage(rows.T, autoLevels=True)
                item.setRect(pg.QtCore.QRectF(float(x[0]), 0.0, float(len(x)), float(rows.shape[1])))
            elif kind == "image" and isinstance(buf, np.ndarray):
                item.setImage(to_display_image(buf), autoLevels=True)
        self._dirty = set()
        self.frames += 1

    def closeEvent(self, event):
        self.closed.emit(self.node_id)
        super().closeEvent(event)
