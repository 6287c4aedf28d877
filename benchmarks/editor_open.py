"""How long the editor takes to open and fit a 300-node graph, and to redraw while panning
and zooming. Prints one JSON object.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/editor_open.py [--nodes 300]

open_fit_s is what the user waits for: load_graph + validation (deephtm.graph.resolve) + building
the scene + fit to view + the first paint of the canvas. The reference, measured in the same
run, is the same for graphs/sine.json (11 nodes) and the engine's resolve() alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One HTM stack: sine -> encoder -> sp -> tm (recurrent) -> decoder -> mse, plus the TM's
# loss term and an NRMSE metric: 8 nodes, 10 edges, graphs/sine.json's training path (the
# file adds scalar bits before the encoder and two more metrics: 11 nodes, 14 edges).
CHAIN = [("sine", "source.sine", {}), ("enc", "encoder.mlp", {"hidden": 32, "layers": 1}),
         ("sp", "htm.sp", {"columns": 64, "winners": 3}), ("tm", "htm.tm", {"cells_per_column": 2}),
         ("dec", "decoder.mlp", {"hidden": 16, "layers": 1, "outputs": 1}), ("mse", "loss.mse", {}),
         ("tml", "loss.term", {"weight": 0.1}), ("nrmse", "metric.nrmse", {})]
WIRES = [("sine.value", "enc.x", 0), ("enc.y", "sp.x", 0), ("sp.columns", "tm.columns", 0),
         ("tm.cells", "tm.context", 1), ("tm.cells", "dec.x", 0), ("dec.y", "mse.pred", 0),
         ("sine.target", "mse.target", 0), ("tm.loss", "tml.value", 0), ("dec.y", "nrmse.pred", 0),
         ("sine.target", "nrmse.target", 0)]


def big_graph(n_nodes: int) -> dict:
    nodes, edges, groups = [], [], []
    stacks = max(1, n_nodes // len(CHAIN))
    for s in range(stacks):
        for col, (name, type_name, params) in enumerate(CHAIN):
            nodes.append({"id": f"{name}{s}", "type": type_name, "params": params,
                          "ui": {"x": col * 240, "y": s * 190}})
        for a, b, delay in WIRES:
            (an, ap), (bn, bp) = a.split("."), b.split(".")
            edges.append({"from": f"{an}{s}.{ap}", "to": f"{bn}{s}.{bp}", "delay": delay})
        if s % 4 == 0:  # some hierarchy too: every fourth stack's HTM core is a collapsed group
            groups.append({"id": f"core{s}", "title": f"core {s}", "nodes": [f"sp{s}", f"tm{s}"],
                           "collapsed": s % 8 == 0})
    for i in range(n_nodes - len(nodes)):  # top up to exactly n_nodes with more metrics
        nodes.append({"id": f"extra{i}", "type": "metric.nrmse", "params": {},
                      "ui": {"x": len(CHAIN) * 240, "y": i * 120}})
        edges.append({"from": "dec0.y", "to": f"extra{i}.pred", "delay": 0})
        edges.append({"from": "sine0.target", "to": f"extra{i}.target", "delay": 0})
    return {"format_version": 1, "name": f"bench{n_nodes}", "nodes": nodes, "edges": edges, "groups": groups,
            "training": {"steps": 10}}


def measure_open(window, path: str, app) -> dict:
    t0 = time.perf_counter()
    ok = window.open_file(path, ask=False)
    window.view.fit()
    app.processEvents()
    t1 = time.perf_counter()
    window.view.viewport().grab()  # the first frame the user sees
    t2 = time.perf_counter()
    assert ok, window.last_error
    return {"open_fit_s": round(t2 - t0, 4), "open_s": round(t1 - t0, 4), "first_paint_s": round(t2 - t1, 4)}


def measure_frames(window, app, frames: int = 30) -> dict:
    """Milliseconds to redraw the canvas after each zoom or pan step."""
    view = window.view
    times = []
    for i in range(frames):
        factor = 1.12 if (i // 5) % 2 == 0 else 1 / 1.12
        if i % 3 == 2:
            view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 40)
        else:
            view.scale(factor, factor)
        t = time.perf_counter()
        view.viewport().grab()
        times.append((time.perf_counter() - t) * 1000)
    return {"frame_ms_median": round(statistics.median(times), 2), "frame_ms_max": round(max(times), 2)}


def measure_edits(window, app, n: int = 10) -> dict:
    """Milliseconds from one param edit (or its undo) to the updated canvas and validation."""
    edit, undo = [], []
    for i in range(n):
        t = time.perf_counter()
        window.editor.set_param("sp0", "winners", 3 + (i % 2))
        window.editor.validate_now()
        app.processEvents()
        edit.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        window.editor.stack.undo()
        window.editor.validate_now()
        app.processEvents()
        undo.append((time.perf_counter() - t) * 1000)
    return {"edit_ms_median": round(statistics.median(edit), 1), "undo_ms_median": round(statistics.median(undo), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=300)
    args = ap.parse_args()
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from app.autosave import RecoveryStore
    from app.main_window import MainWindow
    from deephtm.graph.graphfile import load_graph
    from deephtm.graph.resolve import resolve

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.json")
        Path(path).write_text(json.dumps(big_graph(args.nodes)))
        window = MainWindow(QSettings(os.path.join(tmp, "s.ini"), QSettings.Format.IniFormat), RecoveryStore(tmp))
        window._autosave_timer.stop()
        window.resize(1400, 860)
        window.show()
        app.processEvents()
        reference = measure_open(window, str(ROOT / "graphs" / "sine.json"), app)
        big = measure_open(window, path, app)
        again = measure_open(window, path, app)  # a second open: warm caches, items replaced
        t = time.perf_counter()
        resolve(load_graph(path))
        resolve_s = time.perf_counter() - t
        frames = measure_frames(window, app)
        edits = measure_edits(window, app)
        graph = window.editor.doc.graph
        result = {
            "benchmark": "editor_open",
            "nodes": len(graph.nodes), "edges": len(graph.edges), "groups": len(graph.groups),
            "open_fit_s": big["open_fit_s"], "open_fit_s_second": again["open_fit_s"],
            "open_s": big["open_s"], "first_paint_s": big["first_paint_s"],
            "engine_resolve_s": round(resolve_s, 4),
            "reference_sine_open_fit_s": reference["open_fit_s"],
            "under_1s": big["open_fit_s"] < 1.0,
            **frames,
            **edits,
            "valid": window.editor.analysis.ok,
            "platform": app.platformName(),
        }
        window.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
