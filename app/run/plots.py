"""The live plots of a training run, in one pyqtgraph layout (one view: one paint).

`feed(payload)` only appends to bounded buffers; `refresh()` (on the panel's timer)
redraws what changed since the last frame."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from .buffers import DecimatingSeries, Ring
from deephtm.live.probes import MAX_RASTER_UNITS, Probes

RECENT_STEPS = 400  # prediction, anomaly and raster windows
TM_COLOURS = np.array([[24, 24, 28, 255],  # idle
                       [60, 120, 255, 255],  # predicted for the next step
                       [60, 210, 90, 255],  # active and predicted
                       [235, 70, 60, 255],  # bursting
                       [0, 0, 0, 255]], dtype=np.uint8)  # gap between rows of columns
RASTER_COLOURS = np.array([[20, 20, 24, 255], [255, 230, 90, 255]], dtype=np.uint8)  # idle, active
# Curves redrawn every frame use 1-pixel pens: Qt's raster engine draws wide lines far slower.
PRED_PEN = pg.mkPen((255, 160, 40), width=1)
ACTUAL_PEN = pg.mkPen((150, 200, 255), width=1)


def to_display_image(a: np.ndarray) -> np.ndarray:
    """[H, W], [C, H, W] or [H, W, C] -> [H, W] or [H, W, C] for a row-major ImageItem."""
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return np.ascontiguousarray(a)


def tm_grid(state: np.ndarray) -> np.ndarray:
    """[cells, columns] codes -> a near-square picture: columns side by side in rows,
    each column's cells stacked top to bottom, one gap row between rows of columns."""
    K, C = state.shape
    width = max(1, int(math.ceil(math.sqrt(C * (K + 1)))))
    rows = int(math.ceil(C / width))
    padded = np.zeros((K, rows * width), dtype=np.uint8)
    padded[:, :C] = state
    blocks = padded.reshape(K, rows, width).transpose(1, 0, 2)  # [rows, K, width]
    gap = np.full((rows, 1, width), 4, dtype=np.uint8)
    return np.concatenate([blocks, gap], axis=1).reshape(rows * (K + 1), width)[:-1]


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 2:
        return y
    window = max(1, min(window, len(y)))
    c = np.cumsum(np.insert(y.astype(np.float64), 0, 0.0))
    out = np.empty(len(y))
    out[window - 1:] = (c[window:] - c[:-window]) / window
    out[:window - 1] = c[1:window] / np.arange(1, window)
    return out


class IndexedImage(pg.QtWidgets.QGraphicsObject):
    """An indexed-colour picture stretched over a rectangle. Its paint is one C++ drawImage call:
    pyqtgraph's ImageItem spends milliseconds of Python (holding the GIL) per paint."""

    def __init__(self):
        super().__init__()
        self._image = None
        self._rect = pg.QtCore.QRectF(0, 0, 1, 1)
        self._scaled, self._scaled_key = None, None

    def set_image(self, codes: np.ndarray, colours: np.ndarray, rect: tuple | None = None) -> None:
        """codes: [H, W] small ints indexing colours ([N, 4] RGBA)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        h, w = codes.shape
        image = pg.QtGui.QImage(codes.data, w, h, codes.strides[0], pg.QtGui.QImage.Format.Format_Indexed8)
        image.setColorTable([pg.QtGui.qRgba(*map(int, c)) for c in colours])
        # Opaque RGB32 is what the raster engine blits fastest (no blending): convert once here,
        # not on every paint (an indexed image took ~3 ms a draw).
        self._image = image.convertToFormat(pg.QtGui.QImage.Format.Format_RGB32)
        new_rect = pg.QtCore.QRectF(*(rect or (0, 0, w, h)))
        if new_rect != self._rect:
            self.prepareGeometryChange()
            self._rect = new_rect
        self.update()

    def clear(self) -> None:
        self._image = None
        self.update()

    def boundingRect(self):
        return self._rect

    def paint(self, painter, option, widget=None):
        if self._image is None:
            return
        # Scale (and flip, for a y-up view) once in device pixels and blit untransformed:
        # drawImage through the view's flipped transform costs milliseconds a call.
        t = painter.worldTransform()
        target = t.mapRect(self._rect)
        w, h = round(target.width()), round(target.height())
        if w <= 0 or h <= 0 or w * h > 16_000_000:
            return
        key = (self._image.cacheKey(), w, h, t.m11() < 0, t.m22() < 0)
        if key != self._scaled_key:
            img = self._image.scaled(w, h, pg.QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
                                     pg.QtCore.Qt.TransformationMode.FastTransformation)
            if t.m11() < 0 or t.m22() < 0:
                img = img.mirrored(t.m11() < 0, t.m22() < 0)
            self._scaled, self._scaled_key = img, key
        painter.save()
        painter.resetTransform()
        painter.drawImage(pg.QtCore.QPointF(round(target.left()), round(target.top())), self._scaled)
        painter.restore()


class LogAxis(pg.AxisItem):
    """A log axis with ticks at 1, 2 and 5 per decade only (pyqtgraph labels all nine,
    which overlap on a short plot)."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        ticks = [(spacing, t) for spacing, t in stdTicks if spacing >= 1.0]
        if len(ticks) < 2:
            lo, hi = int(math.floor(minVal)), int(math.ceil(maxVal))
            per_decade = (1, 2, 5) if size / max(maxVal - minVal, 0.1) > 40 else (1,)
            minor = [v + math.log10(m) for v in range(lo, hi) for m in per_decade]
            ticks.append((None, [x for x in minor if minVal < x < maxVal]))
        return ticks


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v) -> bool:
    return _finite(v) and v > 0


def absent(title: str, probes: Probes | None, what: str) -> str:
    """A plot's title when the graph has nothing for it; unsaid while no graph is resolved."""
    return title if probes is None else f"{title} (no {what} in this graph)"


class LivePlots(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(600, 360)
        self.probes: Probes | None = None
        self.frames = 0  # redraws done (for tests and the status line)
        self.samples = 0  # steps received from the sampler
        self._dirty: set[str] = set()
        self._build_static()
        self.configure(None)

    # ---- layout ---------------------------------------------------------------------------
    # Painting, not sampling, is what live plots cost (pyqtgraph paints in Python, holding
    # the GIL the training thread needs). So: no grid lines (an axis with a grid repaints
    # whenever its plot does), and windows of recent steps drawn against "steps ago" on
    # fixed ranges, so their axes stay cached instead of being redrawn every frame.
    def _plot(self, row, col, title, **labels) -> pg.PlotItem:
        p = self.addPlot(row=row, col=col, title=title)
        for side, text in labels.items():
            p.setLabel(side, text)
        p.setMenuEnabled(False)
        return p

    @staticmethod
    def _freeze(p: pg.PlotItem, x=None, y=None) -> None:
        p.disableAutoRange()
        if x is not None:
            p.setXRange(*x, padding=0)
        if y is not None:
            p.setYRange(*y, padding=0)

    def _build_static(self):
        self.loss_plot = self.addPlot(row=0, col=0, title="loss", axisItems={"left": LogAxis("left")})
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setMenuEnabled(False)
        self.loss_plot.setLogMode(y=True)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((240, 90, 90), width=2))
        self.metric_plot = self._plot(0, 1, "metric", bottom="step")
        self.metric_curve = self.metric_plot.plot(pen=pg.mkPen((120, 220, 140), width=2))
        # An earlier run's curves, drawn under the live ones for comparison (set_overlay).
        overlay_pen = pg.mkPen((170, 170, 170), width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        self.overlay_loss_curve = self.loss_plot.plot(pen=overlay_pen)
        self.overlay_metric_curve = self.metric_plot.plot(pen=overlay_pen)
        self.pred_plot = self._plot(0, 2, "prediction vs actual", bottom="steps ago")
        self._freeze(self.pred_plot, x=(-RECENT_STEPS, 0), y=(-1, 1))
        self.pred_range = (-1.0, 1.0)
        self.pred_plot.addLegend(offset=(5, 5), brush=(0, 0, 0, 170))
        # Plain curve items: PlotDataItem's extra layers cost Python time on every frame.
        self.actual_curve = pg.PlotCurveItem(pen=ACTUAL_PEN, name="actual")
        self.pred_curve = pg.PlotCurveItem(pen=PRED_PEN, name="predicted")
        self.pred_plot.addItem(self.actual_curve)
        self.pred_plot.addItem(self.pred_curve)

        self.raster_plot = self._plot(1, 0, "SP columns", bottom="steps ago", left="column")
        self.raster_img = IndexedImage()
        self.raster_plot.addItem(self.raster_img, ignoreBounds=True)
        self.tm_plot = self._plot(1, 1, "TM cells")
        self.tm_plot.setAspectLocked(True)
        self.tm_plot.invertY(True)
        self.tm_plot.hideAxis("left")
        self.tm_plot.hideAxis("bottom")
        self.tm_img = IndexedImage()
        self.tm_plot.addItem(self.tm_img, ignoreBounds=True)
        self.tm_counts = pg.TextItem(color=(200, 200, 200), anchor=(0, 1))
        self.tm_plot.addItem(self.tm_counts, ignoreBounds=True)
        self.tm_counts.setPos(0, -0.3)
        self.duty_plot = self._plot(1, 2, "SP duty cycles", bottom="duty cycle", left="columns")
        self.duty_curve = pg.PlotCurveItem([0.0, 1.0], [0.0], stepMode="center", fillLevel=0, brush=(90, 160, 255, 150),
                                           pen=pg.mkPen((90, 160, 255)))
        self.duty_plot.addItem(self.duty_curve)
        self.duty_target = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255, 120), style=pg.QtCore.Qt.PenStyle.DashLine))
        self.duty_plot.addItem(self.duty_target)

        self.anomaly_plot = self._plot(2, 0, "anomaly score", bottom="steps ago")
        self.anomaly_plot.addLegend(offset=(5, 5), brush=(0, 0, 0, 170))
        self._freeze(self.anomaly_plot, x=(-RECENT_STEPS, 0), y=(0, 1.05))
        self.anomaly_curves: list = []
        self.image_plots: list[tuple[pg.PlotItem, pg.ImageItem]] = []
        for i in range(2):
            p = self._plot(2, 1 + i, "image")
            p.setAspectLocked(True)
            p.invertY(True)
            p.hideAxis("left")
            p.hideAxis("bottom")
            img = pg.ImageItem(axisOrder="row-major")
            p.addItem(img)
            self.image_plots.append((p, img))

    def _place_bottom_row(self, n_images: int) -> None:
        """The anomaly plot takes the columns that no image panel needs."""
        for item in [self.anomaly_plot] + [p for p, _ in self.image_plots]:
            if item in self.ci.items:
                self.removeItem(item)
        self.addItem(self.anomaly_plot, row=2, col=0, colspan=3 - n_images)
        for i in range(n_images):
            self.addItem(self.image_plots[i][0], row=2, col=3 - n_images + i)

    # ---- a new run --------------------------------------------------------------------------
    def configure(self, probes: Probes | None) -> None:
        """Start from empty buffers shaped for this graph's probes (None: nothing yet)."""
        self.probes = p = probes
        self.loss = DecimatingSeries()
        self.metric = DecimatingSeries()
        self.pred = Ring(RECENT_STEPS)
        self.actual = Ring(RECENT_STEPS)
        cols = min(p.sp_columns, MAX_RASTER_UNITS) if p and p.sp else 1
        self.raster = Ring(RECENT_STEPS, (cols,), dtype=np.uint8)
        self.anomalies = [Ring(RECENT_STEPS) for _ in (p.anomalies if p else [])]
        self.tm_state = None
        self.duty = None
        self.images: dict = {}
        self.last_step = 0
        self.samples = 0
        metric = (p.main_metric if p else "") or "metric"
        self.metric_plot.setTitle(metric)
        self.metric_name = p.main_metric if p else ""
        # without probes (nothing resolved yet) the titles say only what each plot is
        sp_title = f"SP columns ({p.sp}, {p.sp_columns})" if p and p.sp else absent("SP columns", p, "spatial pooler")
        if p and p.sp and p.sp_columns > MAX_RASTER_UNITS:
            sp_title += f", first {MAX_RASTER_UNITS} shown"
        self.raster_plot.setTitle(sp_title)
        self._freeze(self.raster_plot, x=(-RECENT_STEPS, 0), y=(0, cols))
        # Duty cycles average winners/columns exactly; the histogram spans 0 to 4x that.
        self.duty_mean = (p.sp_winners / p.sp_columns) if p and p.sp else 0.02
        self._freeze(self.duty_plot, x=(0, 4 * self.duty_mean), y=(0, max(cols, 1)))
        self.duty_target.setValue(self.duty_mean)
        self.pred_range = (-1.0, 1.0)
        self.pred_plot.setYRange(*self.pred_range, padding=0.05)
        self.tm_plot.setTitle(
            f"TM cells ({p.tm}): <span style='color:#3c78ff'>predicted</span> · "
            f"<span style='color:#3cd25a'>active-predicted</span> · <span style='color:#eb463c'>bursting</span>"
            if p and p.tm else absent("TM cells", p, "temporal memory"))
        self.tm_counts.setText("")
        self.duty_plot.setTitle("SP duty cycles" if p is None or p.sp else absent("SP duty cycles", p, "spatial pooler"))
        pred_title = f"prediction vs actual ({p.pred[0]}.{p.pred[1]})" if p and p.pred else "prediction vs actual"
        self.pred_plot.setTitle(pred_title)
        for c in self.anomaly_curves:
            self.anomaly_plot.removeItem(c)
        self.anomaly_plot.legend.clear()
        colours = [(255, 120, 200), (255, 220, 90)]
        self.anomaly_curves = [pg.PlotCurveItem(pen=pg.mkPen(colours[i % 2], width=1), name=label)
                               for i, (label, _) in enumerate(p.anomalies if p else [])]
        for c in self.anomaly_curves:
            self.anomaly_plot.addItem(c)
        self.anomaly_plot.setTitle("anomaly score (mean of 20 steps)" if p and p.anomalies
                                   else absent("anomaly score", p, "temporal memory or anomaly node"))
        n_images = min(len(p.images), len(self.image_plots)) if p else 0
        self._place_bottom_row(n_images)
        for i, (plot, img) in enumerate(self.image_plots):
            img.clear()
            if i < n_images:
                plot.setTitle(p.images[i][0])
        for curve in (self.loss_curve, self.metric_curve, self.pred_curve, self.actual_curve, self.duty_curve):
            curve.setData([], []) if curve is not self.duty_curve else curve.setData([0, 1], [0])
        self.raster_img.clear()
        self.tm_img.clear()
        self._dirty = set()

    def set_overlay(self, records: list[dict] | None) -> None:
        """Draw an earlier run's loss and metric (its metrics.jsonl records) dashed under the
        live curves; None removes them."""
        loss = [(r["step"], r["loss"]) for r in records or () if _positive(r.get("loss"))]
        name = getattr(self, "metric_name", "")
        metric = [(r["step"], r[name]) for r in records or () if name and _finite(r.get(name))]
        self.overlay_loss_curve.setData(*(zip(*loss) if loss else ([], [])))
        self.overlay_metric_curve.setData(*(zip(*metric) if metric else ([], [])))

    # ---- data in (GUI thread, cheap) ----------------------------------------------------------
    def feed(self, payload: dict) -> None:
        p = self.probes
        if p is None:
            return
        for step, metrics in payload.get("logs", ()):
            loss = metrics.get("loss")
            if loss is not None and math.isfinite(loss) and loss > 0:
                self.loss.append(step, loss)
            m = metrics.get(self.metric_name) if self.metric_name else None
            if isinstance(m, (int, float)) and math.isfinite(m):
                self.metric.append(step, m)
            self._dirty.add("log")
        steps = payload.get("steps")
        series = payload.get("series", {})
        if steps is not None and len(steps):
            self.samples += len(steps)
            self.last_step = int(steps[-1])
            if p.pred in series and p.target in series:
                self.pred.extend(steps, series[p.pred])
                self.actual.extend(steps, series[p.target])
                self._dirty.add("pred")
            if p.sp and (p.sp, "columns") in series:
                self.raster.extend(steps, series[(p.sp, "columns")])
                self._dirty.add("raster")
            for ring, (_, key) in zip(self.anomalies, p.anomalies):
                if key in series:
                    ring.extend(steps, series[key])
                    self._dirty.add("anomaly")
        if "tm_state" in payload:
            self.tm_state = payload["tm_state"]
            self._dirty.add("tm")
        if "duty" in payload:
            self.duty = payload["duty"]
            self._dirty.add("duty")
        snaps = payload.get("snapshots", {})
        for _, key in p.images:
            if key in snaps:
                self.images[key] = snaps[key]
                self._dirty.add("images")

    # ---- drawing (the panel's timer) -----------------------------------------------------------
    def refresh(self) -> None:
        if not self._dirty or not self.isVisible():  # a hidden dock costs nothing; data waits in the buffers
            return
        d, self._dirty = self._dirty, set()
        p = self.probes
        if "log" in d:
            self.loss_curve.setData(*self.loss.view())
            self.metric_curve.setData(*self.metric.view())
        now = self.last_step
        if "pred" in d:
            x, y = self.pred.view()
            _, actual = self.actual.view()
            self.pred_curve.setData(x - now, y)
            self.actual_curve.setData(x - now, actual)
            self._fit_pred_range(y, actual)
        if "raster" in d and len(self.raster):
            x, rows = self.raster.view()
            # Colours mapped here: pyqtgraph's lookup-table path rebuilds a big table each frame.
            self.raster_img.set_image(rows.T, RASTER_COLOURS,
                                      (float(x[0] - now - 1), 0.0, float(len(x)), float(rows.shape[1])))
        if "tm" in d and self.tm_state is not None:
            s = self.tm_state
            grid = tm_grid(s)
            if self.tm_img.boundingRect().size() != pg.QtCore.QSizeF(grid.shape[1], grid.shape[0]):
                # Room above the grid for the counts (the y axis points down here).
                self.tm_plot.setRange(xRange=(0, grid.shape[1]), yRange=(-0.2 * grid.shape[0], grid.shape[0]),
                                      padding=0.02)
            self.tm_img.set_image(grid, TM_COLOURS)
            counts = np.bincount(s.ravel(), minlength=4)
            # Counts go in a text item inside the view: a title that changes width would
            # re-lay out (and repaint) every plot.
            self.tm_counts.setText(f"{counts[1]} predicted · {counts[2]} active-predicted · {counts[3]} bursting")
        if "duty" in d and self.duty is not None and len(self.duty):
            top = 4 * self.duty_mean
            counts, edges = np.histogram(np.minimum(self.duty, top), bins=32, range=(0.0, top))
            self.duty_curve.setData(edges, counts)
        if "anomaly" in d:
            for ring, curve in zip(self.anomalies, self.anomaly_curves):
                x, y = ring.view()
                curve.setData(x - now, smooth(y, 20) if len(y) else y)
        if "images" in d:
            for i, (_, key) in enumerate(p.images):
                if key in self.images:
                    if i < len(self.image_plots):
                        self.image_plots[i][1].setImage(to_display_image(self.images[key]), autoLevels=True)
        self.frames += 1

    def _fit_pred_range(self, *series) -> None:
        """Grow the y range when the data leaves it; shrink only when it is 4x too wide.
        A steady range keeps the axis cached."""
        finite = [a[np.isfinite(a)] for a in series if len(a)]
        finite = [a for a in finite if len(a)]
        if not finite:
            return
        lo = min(float(a.min()) for a in finite)
        hi = max(float(a.max()) for a in finite)
        cur_lo, cur_hi = self.pred_range
        span = max(hi - lo, 1e-6)
        if lo < cur_lo or hi > cur_hi or (cur_hi - cur_lo) > 4 * span:
            self.pred_range = (lo - 0.1 * span, hi + 0.1 * span)
            self.pred_plot.setYRange(*self.pred_range, padding=0)
