"""benchmarks/nab_dev.py --set: a variant of the anomaly graph, its folder name, and the
one-line errors for a malformed or unknown override."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import nab_dev  # noqa: E402

GRAPH = ROOT / "graphs" / "anomaly.json"


def load():
    return json.loads(GRAPH.read_text(encoding="utf-8"))


def params(graph, node):
    return next(n for n in graph["nodes"] if n["id"] == node)["params"]


def test_overrides_apply_to_a_copy_with_json_values():
    graph = load()
    before = json.dumps(graph)
    variant = nab_dev.with_params(graph, ["sp.columns=1024", "tm.cells_per_column=8",
                                          "encoder.bandwidth=0.75", "likelihood.range_tolerance=0.05"], "g.json")
    assert json.dumps(graph) == before  # the original is untouched
    assert params(variant, "sp")["columns"] == 1024 and isinstance(params(variant, "sp")["columns"], int)
    assert params(variant, "tm")["cells_per_column"] == 8
    assert params(variant, "encoder")["bandwidth"] == 0.75
    assert params(variant, "likelihood")["range_tolerance"] == 0.05
    # everything not named keeps its value
    assert params(variant, "sp")["winners"] == params(graph, "sp")["winners"]
    assert params(variant, "likelihood")["threshold"] == params(graph, "likelihood")["threshold"]


def test_a_value_that_is_not_json_is_kept_as_text():
    variant = nab_dev.with_params(load(), ["source.normalize=none"], "g.json")
    assert params(variant, "source")["normalize"] == "none"


@pytest.mark.parametrize("item, message", [
    ("sp.columns", "expected NODE.PARAM=VALUE"),
    ("columns=1024", "expected NODE.PARAM=VALUE"),
    ("spx.columns=1024", "g.json has no node 'spx'"),
])
def test_bad_overrides_are_one_line_errors(item, message):
    with pytest.raises(SystemExit) as err:
        nab_dev.with_params(load(), [item], "g.json")
    text = str(err.value)
    assert message in text and "\n" not in text and item in text


def test_variant_names_are_distinct_and_folder_safe():
    a = nab_dev.variant_name(["sp.columns=1024", "sp.winners=40"])
    b = nab_dev.variant_name(["sp.columns=1024", "sp.winners=20"])
    assert a == "sp.columns-1024_sp.winners-40" and a != b
    assert "/" not in nab_dev.variant_name(["source.path=../x/y.csv"])


def test_held_out_scores_each_category_with_what_the_others_chose():
    from deephtm.anomaly.nab_corpus import Series
    n = 1000  # probation: the first 150 rows

    def series(key, window, hit_rows, noise_rows=()):
        values = [0.0] * n
        for row in hit_rows:
            values[row] = 0.9
        for row in noise_rows:
            values[row] = 0.95  # above the hits
        return Series(key, values, [window])

    # "good" hits each window on its first row; "noisy" does too but raises false alarms above
    # its hits in every category but the last, so the other categories always choose "good".
    cats = ["a", "b", "c"]
    good = [series(f"{c}/s.csv", (500, 550), [500]) for c in cats]
    noisy = [series(f"{c}/s.csv", (500, 550), [500], [] if c == "c" else range(300, 340)) for c in cats]
    out = nab_dev.held_out({"good": good, "noisy": noisy})
    assert out["standard_chosen"] == {"a": "good", "b": "good", "c": "good"}
    assert out["standard"] == pytest.approx(100.0)  # every held-out window found on its first row, no alarm
    alone = nab_dev.held_out({"noisy": noisy})
    # Alone, "noisy"'s threshold sits above its false alarms only where the others have none.
    assert "standard_chosen" not in alone and alone["standard"] < 100.0
