"""Helpers for the editor tests: a main window with throwaway settings and recovery folder,
and a fixed graph to edit (graphs/sine.json may change as the product grows)."""
from __future__ import annotations

import json
from pathlib import Path

from PyQt6.QtCore import QPoint, QSettings

from app.autosave import RecoveryStore
from app.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
SINE = ROOT / "graphs" / "sine.json"

# The seed network, frozen for these tests: 8 nodes, a recurrent (delayed) TM edge.
HTM_GRAPH = {
    "format_version": 1, "name": "htm", "description": "test graph",
    "nodes": [
        {"id": "sine", "type": "source.sine", "params": {"step_size": 0.25}, "ui": {"x": 0, "y": 0}},
        {"id": "encoder", "type": "encoder.mlp", "params": {"hidden": 256, "layers": 2}, "ui": {"x": 220, "y": 0}},
        {"id": "sp", "type": "htm.sp", "params": {"columns": 256, "winners": 5}, "ui": {"x": 440, "y": 0}},
        {"id": "tm", "type": "htm.tm", "params": {"cells_per_column": 5}, "ui": {"x": 660, "y": 0}},
        {"id": "decoder", "type": "decoder.mlp", "params": {"hidden": 256, "layers": 1, "outputs": 1},
         "ui": {"x": 880, "y": 0}},
        {"id": "loss", "type": "loss.mse", "params": {}, "ui": {"x": 1100, "y": 0}},
        {"id": "tm_loss", "type": "loss.term", "params": {"weight": 0.1}, "ui": {"x": 880, "y": 160}},
        {"id": "nrmse", "type": "metric.nrmse", "params": {"window": 1000}, "ui": {"x": 1100, "y": 160}},
    ],
    "edges": [
        {"from": "sine.value", "to": "encoder.x", "delay": 0},
        {"from": "encoder.y", "to": "sp.x", "delay": 0},
        {"from": "sp.columns", "to": "tm.columns", "delay": 0},
        {"from": "tm.cells", "to": "tm.context", "delay": 1},
        {"from": "tm.cells", "to": "decoder.x", "delay": 0},
        {"from": "decoder.y", "to": "loss.pred", "delay": 0},
        {"from": "sine.target", "to": "loss.target", "delay": 0},
        {"from": "tm.loss", "to": "tm_loss.value", "delay": 0},
        {"from": "decoder.y", "to": "nrmse.pred", "delay": 0},
        {"from": "sine.target", "to": "nrmse.target", "delay": 0},
    ],
    "training": {"steps": 100},
}


def fixture_file(tmp_path) -> Path:
    path = Path(tmp_path) / "htm.json"
    path.write_text(json.dumps(HTM_GRAPH, indent=1))
    return path


def make_window(qtbot, tmp_path) -> MainWindow:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings, RecoveryStore(tmp_path / "recovery"))
    w._autosave_timer.stop()
    w.ask_unsaved = lambda: "discard"
    w.ask_group_title = lambda default: "region"
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.windowHandle().requestActivate()  # shortcuts (Del, Ctrl+Z) need the active window
    qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    return w


def port_view_pos(window, node_id: str, direction: str, port: str) -> QPoint:
    """Where a port is on the view's viewport, in pixels."""
    scene = window.scene
    item = scene.nodes.get(node_id)
    if item is None or not item.isVisible():
        item = next(c for c in scene.collapsed.values() if (direction, node_id, port) in c.ports)
    p = item.ports[(direction, node_id, port)]
    return window.view.mapFromScene(p.scenePos())
