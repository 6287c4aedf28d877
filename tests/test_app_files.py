"""Files in the editor: open/save round trip, bad files, the modified mark, the unsaved
prompt, recent files, crash recovery and the screenshot mode."""
import os
import subprocess
import sys

from PyQt6.QtGui import QImage

from app.autosave import RecoveryStore
from app_helpers import ROOT, SINE, fixture_file, make_window
from deephtm.errors import GraphError
from deephtm.graph.graphfile import load_graph


def without_layout(d: dict) -> dict:
    d = dict(d)
    d.pop("ui", None)
    d["nodes"] = [{k: v for k, v in n.items() if k != "ui"} for n in d["nodes"]]
    return d


def test_open_then_save_gives_the_same_graph(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    assert w.open_file(str(SINE))
    assert w.editor.doc.graph.to_dict() == load_graph(SINE).to_dict()
    out = tmp_path / "copy.json"
    assert w.save_as(str(out))
    saved = load_graph(out).to_dict()
    assert without_layout(saved) == without_layout(load_graph(SINE).to_dict())
    # node positions are kept too; the file's top-level "ui" holds the view
    assert [n["ui"] for n in saved["nodes"]] == [n["ui"] for n in load_graph(SINE).to_dict()["nodes"]]
    assert set(saved["ui"]["view"]) == {"zoom", "center"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic: no temp left


def test_a_bad_file_leaves_the_open_graph_untouched(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(SINE))
    w.editor.set_param("sp", "columns", 300)  # unsaved work that must survive
    before = w.editor.doc.graph.to_dict()
    steps = w.editor.stack.count()
    bad_files = {
        "broken.json": '{"format_version": 1, "nodes": [',
        "future.json": '{"format_version": 99, "nodes": []}',
        "extra.json": '{"format_version": 1, "nodes": [], "layers": []}',
        "badid.json": '{"format_version": 1, "nodes": [{"id": "9 lives", "type": "htm.sp"}]}',
    }
    for name, text in bad_files.items():
        path = tmp_path / name
        path.write_text(text)
        try:
            load_graph(path)
        except GraphError as exc:
            expected = str(exc)
        assert not w.open_file(str(path))
        assert w.last_error == expected  # the engine's own one-line message
        assert "\n" not in w.last_error and str(path) in w.last_error
        assert w.editor.doc.graph.to_dict() == before
        assert w.path == str(SINE) and w.editor.stack.count() == steps and w.is_modified()
    assert not w.open_file(str(tmp_path / "missing.json"))
    assert w.editor.doc.graph.to_dict() == before


def test_title_shows_name_and_modified_mark(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    assert w.windowTitle().startswith("untitled")
    w.open_file(str(fixture_file(tmp_path)))
    assert "htm.json" in w.windowTitle() and not w.isWindowModified()
    w.editor.set_param("tm", "cells_per_column", 4)
    assert w.isWindowModified()
    w.editor.stack.undo()
    assert not w.isWindowModified()  # back where the file was
    w.editor.set_param("tm", "cells_per_column", 4)
    assert w.save_as(str(tmp_path / "other.json"))
    assert "other.json" in w.windowTitle() and not w.isWindowModified()


def test_unsaved_changes_prompt(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    w.editor.set_param("tm", "cells_per_column", 4)
    w.ask_unsaved = lambda: "cancel"
    w.new_file()
    assert w.editor.doc.node("tm") is not None  # cancelled: nothing dropped
    assert not w.close() and w.isVisible()  # closing the window asks too
    w.path = str(tmp_path / "kept.json")
    w.ask_unsaved = lambda: "save"
    w.new_file()
    assert load_graph(tmp_path / "kept.json").node("tm").params["cells_per_column"] == 4
    assert w.editor.doc.graph.nodes == [] and w.path is None and not w.is_modified()


def test_recent_files_are_remembered(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path)
    w.open_file(str(SINE))
    assert w._recent()[0] == str(SINE)
    assert [a.text() for a in w.recent_menu.actions()] == [str(SINE)]
    w2 = make_window(qtbot, tmp_path)  # same settings file: a later session
    assert w2._recent() == [str(SINE)]


def test_autosave_is_offered_back_after_a_crash(qtbot, tmp_path):
    recovery_dir = tmp_path / "recovery"
    w = make_window(qtbot, tmp_path)
    graph_file = fixture_file(tmp_path)
    w.recovery = RecoveryStore(recovery_dir, pid=2**22 + 12345)  # stands in for an editor that died
    w.open_file(str(graph_file))
    assert not w.autosave()  # nothing unsaved, nothing written
    w.editor.set_param("tm", "cells_per_column", 3)
    assert w.autosave()
    lost = w.editor.doc.graph.to_dict()
    w2 = make_window(qtbot, tmp_path)
    w2.recovery = RecoveryStore(recovery_dir)
    asked = []
    w2.ask_recover = lambda original, when: asked.append(original) or True
    assert w2.offer_recovery()
    assert asked == [str(graph_file)]
    assert w2.editor.doc.graph.to_dict() == lost and w2.path == str(graph_file) and w2.is_modified()
    assert not RecoveryStore(recovery_dir).orphans()  # offered once only
    assert w2.save()
    assert load_graph(graph_file).node("tm").params["cells_per_column"] == 3


def test_screenshot_mode(qapp, tmp_path):
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "app.main", str(SINE), "--screenshot", str(out), "--size", "900x600"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    image = QImage(str(out))
    assert image.width() == 900 and 600 <= image.height() < 700  # docks may ask for a little more
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = subprocess.run([sys.executable, "-m", "app.main", str(bad), "--screenshot", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "malformed JSON" in r.stderr


def test_grouped_file_trains_exactly_like_the_ungrouped_one(qtbot, tmp_path):
    """Groups are editor hierarchy only: the trainer gives the same numbers with or without."""
    from deephtm.train.trainer import Trainer

    w = make_window(qtbot, tmp_path)
    w.open_file(str(fixture_file(tmp_path)))
    for key, value in (("hidden", 16), ("layers", 1)):
        w.editor.set_param("encoder", key, value)
    w.editor.set_param("sp", "columns", 32)
    w.editor.set_param("decoder", "hidden", 8)
    w.editor.set_training("device", "cpu")
    assert w.save_as(str(tmp_path / "plain.json"))
    outer = w.editor.group(["sp", "tm"], "core")
    w.editor.group([outer, "decoder"], "model")
    w.editor.set_collapsed(outer, True)
    assert w.save_as(str(tmp_path / "grouped.json"))
    grouped = load_graph(tmp_path / "grouped.json")
    assert len(grouped.groups) == 2
    results = [Trainer(load_graph(tmp_path / name), steps=8, seed=3).run()["metrics"]
               for name in ("plain.json", "grouped.json")]
    assert results[0] == results[1] and results[0]["loss"] > 0
