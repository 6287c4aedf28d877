"""Headless check mode: train a graph with the live panel on screen (offscreen is fine),
write the run directory and a screenshot of the window, exit 0.

    QT_QPA_PLATFORM=offscreen deephtm-app GRAPH --train-steps N --out DIR --screenshot OUT.png
"""
from __future__ import annotations

import os
import sys
import tempfile
from deephtm.train import rundir
from pathlib import Path

EXIT_FAILED = 1
EXIT_USER_ERROR = 2
WINDOW_SIZE = (1600, 1000)


def _editor_window(graph_path: str):
    """The editor with the run panel docked, or None when the editor is not available."""
    try:
        from PyQt6.QtCore import QSettings

        from app.autosave import RecoveryStore
        from app.main_window import MainWindow
    except ImportError:
        return None
    scratch = tempfile.TemporaryDirectory(prefix="deephtm-app-")  # leave the user's settings alone
    window = MainWindow(QSettings(os.path.join(scratch.name, "settings.ini"), QSettings.Format.IniFormat),
                        RecoveryStore(scratch.name))
    window.scratch = scratch  # removed when the window goes
    timer = getattr(window, "_autosave_timer", None)
    if timer is not None:
        timer.stop()
    if getattr(window, "run_panel", None) is None or not window.open_file(graph_path, ask=False):
        window.close()
        return None
    from PyQt6.QtCore import Qt

    window.resize(*WINDOW_SIZE)
    window.run_dock.raise_()
    window.resizeDocks([window.run_dock], [int(WINDOW_SIZE[1] * 0.62)], Qt.Orientation.Vertical)
    return window


def _panel_window(graph):
    from PyQt6.QtWidgets import QMainWindow

    from .panel import RunPanel

    window = QMainWindow()
    window.setWindowTitle(f"{Path(graph.path or 'graph').name} — DeepHTM training")
    window.run_panel = RunPanel(window)
    window.setCentralWidget(window.run_panel)
    window.resize(*WINDOW_SIZE)
    return window


def run_headless_training(graph_path: str, steps: int, out: str | None, screenshot: str | None,
                          editor: bool = True) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import QEventLoop
    from PyQt6.QtWidgets import QApplication

    from deephtm.errors import DeepHTMError
    from deephtm.graph.graphfile import load_graph
    from deephtm.graph.resolve import resolve

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if steps is None or steps < 1:
        print("deephtm-app: error: --train-steps must be at least 1", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        graph = load_graph(graph_path)
        resolve(graph)  # a graph that cannot train: one line and exit 2, as the CLI
    except DeepHTMError as exc:
        print(f"deephtm-app: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    out = out or str(Path("runs") / Path(graph_path).stem)
    window = (_editor_window(graph_path) if editor else None) or _panel_window(graph)
    panel = window.run_panel
    panel.set_graph(graph)  # the file as saved: what the CLI would train
    panel.set_run_dir(out)
    panel.steps_box.setValue(steps)
    window.show()
    app.processEvents()

    done = QEventLoop()
    panel.training_finished.connect(lambda _s: done.quit())
    panel.training_failed.connect(lambda _m: done.quit())
    if not panel.start_training():
        print(f"deephtm-app: error: {panel.last_error or 'training did not start'}", file=sys.stderr)
        return EXIT_FAILED
    done.exec()
    app.processEvents()
    out = panel.run_dir()  # where the run went: beside an earlier run, never over it
    panel._tick()  # the last frame, with everything the run sent
    code = 0
    if panel.last_error:
        print(f"deephtm-app: error: {panel.last_error}", file=sys.stderr)
        code = EXIT_FAILED
    if screenshot:
        view = getattr(window, "view", None)
        if view is not None and hasattr(view, "fit"):
            view.fit()  # the editor's canvas: show the whole graph
            app.processEvents()
        if not window.grab().save(screenshot):
            print(f"deephtm-app: error: {screenshot}: could not write the image", file=sys.stderr)
            code = code or EXIT_FAILED
    if code == 0:
        summary = rundir.read_summary(out) or {}
        print(f"trained {summary.get('steps')} steps in the app at {summary.get('steps_per_s', 0):.1f} steps/s "
              f"on {summary.get('device')}; {panel.plots.frames} plot frames; run in {out}"
              + (f"; screenshot {screenshot}" if screenshot else ""))
    panel.shutdown()
    window.close()
    return code
