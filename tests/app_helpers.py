"""Helpers for the editor tests: a main window with throwaway settings and recovery folder."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QPoint, QSettings

from app.autosave import RecoveryStore
from app.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
SINE = ROOT / "graphs" / "sine.json"


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
