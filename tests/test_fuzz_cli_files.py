"""Fuzzing the files the CLI reads besides graphs: the CSV that `detect` scores, the scores
CSV and windows JSON that `score` reads, and the checkpoint that `train --resume` loads. Every generated case must end in exit 0 or
exit 2 with one line on stderr, within a few seconds, in bounded memory, and leave its input
files as they were."""
import json
import resource
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deephtm.cli import main

ROOT = Path(__file__).resolve().parent.parent
def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=10_000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_GROWTH_LIMIT_MB = 300


def tiny_detector(folder: Path) -> Path:
    """graphs/anomaly.json's structure at a tiny size, so each case runs in a fraction of a second."""
    g = json.loads((ROOT / "graphs" / "anomaly.json").read_text())
    for n in g["nodes"]:
        if n["type"] == "htm.sp":
            n["params"].update(columns=32, winners=2)
        elif n["type"] == "htm.tm":
            n["params"].update(cells_per_column=2)
        elif n["type"] == "encoder.fourier":
            n["params"]["features"] = 8
    path = folder / "g.json"
    path.write_text(json.dumps(g))
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(args: list[str], inputs: list[Path], capsys) -> tuple[int, str]:
    before = {p: p.read_bytes() for p in inputs if p.exists()}
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code in (0, 2), (code, out.err)
    if code == 2:
        assert out.err.startswith("deephtm: error: ") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err
    assert {p: p.read_bytes() for p in inputs if p.exists()} == before
    return code, out.out


def refuse_nan(constant: str):
    raise ValueError(f"{constant} is not JSON")


# ---- detect's CSV -----------------------------------------------------------------------

timestamps = st.one_of(
    st.integers(0, 10_000).map(lambda i: f"2020-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d}:00"),
    st.sampled_from(["", "not a time", "2020-13-01 00:00:00", "2020-01-01T00:00:00+05:30", "2020-01-01T00:00:00Z",
                     "0001-01-01T00:00:00+05:00", "9999-12-31 23:59:59", "2020-01-01", "\x00"]),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "abc", '"3"', " 7 ", "1,5", "0x10"]),
)
rows = st.lists(st.tuples(timestamps, values), max_size=60)
headers = st.sampled_from(["timestamp,value", "\ufefftimestamp,value", "value,timestamp", "timestamp",
                           "time,value", "timestamp,value,extra", ""])
junk = st.text(alphabet=string.printable + "\x00\u00e9\u2028", max_size=200)


@st.composite
def csv_texts(draw):
    header = draw(headers)
    body = "".join(f"{t},{v}\n" for t, v in draw(rows))
    if draw(st.booleans()):
        body += draw(junk)
    return header + "\n" + body


@fuzz(300)
@given(text=csv_texts(), raw=st.booleans(), raw_bytes=st.binary(max_size=300))
def test_detect_on_fuzzed_csv_files(tmp_path_factory, capsys, text, raw, raw_bytes):
    folder = tmp_path_factory.mktemp("detect")
    graph = tiny_detector(folder)
    csv_path = folder / "in.csv"
    if raw:
        csv_path.write_bytes(raw_bytes)
    else:
        csv_path.write_text(text, encoding="utf-8")
    start = peak_rss_mb()
    code, _ = run_case(["detect", graph, "--input", csv_path, "--out", folder / "out.csv"], [csv_path, graph], capsys)
    if code == 0:
        assert (folder / "out.csv").read_text().startswith("timestamp,value,")
    else:
        assert not (folder / "out.csv").exists()  # no partial output
    assert peak_rss_mb() - start < MEMORY_GROWTH_LIMIT_MB



# ---- score's scores CSV and windows JSON ----------------------------------------------------

scores = st.one_of(st.floats(0, 1).map(lambda v: f"{v:.4f}"), st.floats().map(repr),
                   st.sampled_from(["", "nan", "x", "1e999", "-0"]))
score_rows = st.lists(st.tuples(timestamps, scores, st.sampled_from(["0", "1", "", "2", "nan"])), max_size=80)
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), timestamps,
                        st.text(max_size=20))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=20)


@st.composite
def windows_texts(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:  # well formed, with windows drawn from the same times as the rows
        pairs = draw(st.lists(st.tuples(timestamps, timestamps).map(list), max_size=4))
        return json.dumps({"cat/s.csv": pairs, "cat/other.csv": []})
    if kind == 1:
        return json.dumps({"cat/s.csv": draw(json_values)}, allow_nan=True)
    if kind == 2:
        return json.dumps(draw(json_values), allow_nan=True)
    depth = draw(st.integers(1, 50_000))
    return "[" * depth + "]" * draw(st.integers(0, depth))


@st.composite
def score_files(draw):
    header = draw(st.sampled_from(["timestamp,anomaly_score,flagged", "\ufefftimestamp,anomaly_score",
                                   "timestamp,flagged", "anomaly_score,timestamp,flagged"]))
    body = "".join(f"{t},{s},{f}\n" for t, s, f in draw(score_rows))
    return header + "\n" + body + (draw(junk) if draw(st.booleans()) else "")


@fuzz(1800)
@given(scores_text=score_files(), windows_text=windows_texts(), corpus=st.booleans(),
       threshold=st.one_of(st.none(), st.floats(-1, 2)), as_json=st.booleans())
def test_score_on_fuzzed_scores_and_windows(tmp_path_factory, capsys, scores_text, windows_text, corpus,
                                             threshold, as_json):
    folder = tmp_path_factory.mktemp("score")
    (folder / "results" / "cat").mkdir(parents=True)
    scores_path = folder / "results" / "cat" / "s.csv"
    scores_path.write_text(scores_text, encoding="utf-8")
    (folder / "results" / "cat" / "other.csv").write_text("timestamp,anomaly_score\n2020-01-01 00:00:00,0.5\n")
    windows_path = folder / "w.json"
    windows_path.write_text(windows_text, encoding="utf-8")
    args = ["score", folder / "results" if corpus else scores_path, "--windows", windows_path]
    if threshold is not None and not corpus:
        args += ["--threshold", repr(threshold)]
    if as_json:
        args.append("--json")
    code, out = run_case(args, [scores_path, windows_path], capsys)
    if code == 0 and as_json:
        json.loads(out, parse_constant=refuse_nan)  # strict JSON: no NaN or Infinity



# ---- checkpoints for --resume ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from tests.helpers import small_sine_dict, write

    folder = tmp_path_factory.mktemp("ckpt")
    graph = write(folder, small_sine_dict(steps=20, columns=16, cells=2, hidden=8))
    assert main(["train", str(graph), "--out", str(folder / "run"), "--quiet"]) == 0
    return graph, (folder / "run" / "checkpoint" / "model.safetensors").read_bytes()


mutations = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "zero"]), st.floats(0, 1),
                               st.integers(1, 64)), min_size=1, max_size=3)


def mutate(data: bytes, steps) -> bytes:
    b = bytearray(data)
    for kind, where, n in steps:
        i = int(where * max(len(b) - 1, 0))
        if kind == "flip":
            b[i:i + n] = bytes(x ^ 0x5A for x in b[i:i + n])
        elif kind == "cut":
            del b[i:]
        elif kind == "insert":
            b[i:i] = bytes(range(n))
        else:
            b[i:i + n] = bytes(len(b[i:i + n]))
    return bytes(b)


@fuzz(150)
@given(steps=mutations)
def test_resume_from_fuzzed_checkpoints(tmp_path_factory, capsys, trained_run, steps):
    graph, good = trained_run
    run = tmp_path_factory.mktemp("resume") / "run"
    (run / "checkpoint").mkdir(parents=True)
    ckpt = run / "checkpoint" / "model.safetensors"
    ckpt.write_bytes(mutate(good, steps))
    code, _ = run_case(["train", graph, "--resume", run, "--steps", "21", "--quiet"], [graph], capsys)
    if code == 2:
        assert ckpt.read_bytes() == mutate(good, steps)  # a refused checkpoint stays as it was
