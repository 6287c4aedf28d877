"""`deephtm train --distributed` under torchrun: 2 CPU processes (gloo) with 2 streams each
end with the weights of one process training the same 4 streams."""
import json
import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from deephtm.graph.graphfile import Graph
from deephtm.train.trainer import Trainer

from helpers import SINE, small_sine_dict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_combined_batch(tmp_path):
    d = small_sine_dict(steps=30, columns=32, cells=4, hidden=16)
    d["training"].update(batch_size=4, checkpoint_every=0, device="cpu")
    gfile = tmp_path / "g.json"
    gfile.write_text(json.dumps(d))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "deephtm", "train", str(gfile), "--distributed",
           "--out", str(out), "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]

    g = Graph.from_dict(d)
    g.path = str(SINE)
    single = Trainer(g)
    single.run()
    saved = load_file(str(out / "checkpoint" / "model.safetensors"))
    params = dict(single.model.named_parameters())
    assert params
    for name, p in params.items():
        other = saved[f"model/{name}"]
        assert torch.allclose(p.detach(), other, atol=1e-5, rtol=1e-4), name
    # and the weights really moved: the ranks trained, not just copied the initial weights
    fresh = dict(Trainer(g).model.named_parameters())
    assert any(not torch.allclose(fresh[n].detach(), saved[f"model/{n}"]) for n in params)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30


def test_a_fan_out_tm_is_refused_before_training():
    """Synapse growth is per process: data-parallel copies would drift, so --distributed says so."""
    import pytest
    from deephtm.train.distributed import DataParallel
    from deephtm.errors import TrainingError

    d = small_sine_dict(steps=10, columns=32, cells=4, hidden=16)
    for n in d["nodes"]:
        if n["id"] == "tm":
            n["params"]["fan_out"] = 8
    g = Graph.from_dict(d)
    g.path = str(SINE)
    dp = DataParallel.__new__(DataParallel)  # the check runs before any process group is needed
    with pytest.raises(TrainingError, match="node 'tm' cannot train with --distributed: fan_out"):
        Trainer(g, distributed=dp)
