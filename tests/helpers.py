"""Small graph builders shared by the engine tests."""
import copy
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SINE = ROOT / "graphs" / "sine.json"


def sine_dict() -> dict:
    return json.loads(SINE.read_text())


def small_sine_dict(steps: int = 300, columns: int = 64, cells: int = 4, hidden: int = 32) -> dict:
    """The seed network, shrunk so a test trains it in about a second."""
    d = copy.deepcopy(sine_dict())
    sizes = {"encoder": {"hidden": hidden}, "sp": {"columns": columns, "winners": 4},
             "tm": {"cells_per_column": cells}, "decoder": {"hidden": hidden}}
    for n in d["nodes"]:
        n["params"].update(sizes.get(n["id"], {}))
    d["training"].update({"steps": steps, "log_every": 50, "checkpoint_every": 100})
    return d


def write(tmp_path, d, name="g.json") -> Path:
    p = tmp_path / name
    p.write_text(d if isinstance(d, str) else json.dumps(d))
    return p
