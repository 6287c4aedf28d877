"""benchmarks/speed.py --quick runs and prints one JSON object with its same-run references."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_speed_quick_prints_one_json_object_with_its_references():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--quick"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    on = out["online"]
    for k in ("engine", "reference", "manual"):
        assert on["contenders"][k]["steps_per_cpu_s"] > 0
    assert on["engine_over_reference"] == round(on["engine_steps_per_s"] / on["reference_steps_per_s"], 2)
    det = out["detect"]
    assert det["rows"] == 150 and det["rows_per_cpu_s"] > 0
    assert out["targets"]["online_steps_per_s"] == 1500


def test_scaling_split_gives_the_parts_of_one_network_step():
    # a fan-out TM has a hand-derived backward: the network steps without autograd
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--split", "64", "4", "16",
                          "--steps", "5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    parts = out["parts_us"]
    assert {"forward tm", "forward sp", "forward decoder", "backward (hand-derived, in reverse order)",
            "optimizer step"} <= parts.keys()
    assert all(v > 0 for v in parts.values())
    assert abs(sum(parts.values()) - out["step_us"]) < 1.0
