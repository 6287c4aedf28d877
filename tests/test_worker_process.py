"""deephtm.live.worker_process without Qt: a training process never outlives the app that
started it, even when that app is killed and cannot clean up."""
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT

# The "app": starts a training process, prints its pid once it trains, then waits to be killed.
PARENT = """
import sys, time
from deephtm.graph.graphfile import Graph
from deephtm.live.worker_process import RunOptions, TrainingProcess
from tests.helpers import small_sine_dict

if __name__ == "__main__":
    graph = Graph.from_dict(small_sine_dict(steps=10**6))
    worker = TrainingProcess(graph, RunOptions(out=sys.argv[1], steps=10**6))
    worker.start()
    while True:
        if any(m[0] == "started" for m in worker.poll()):
            print(worker.process.pid, flush=True)
        time.sleep(0.05)
"""


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited; only waiting for its new parent to reap it


def test_the_worker_stops_and_saves_when_its_app_is_killed(tmp_path):
    run = tmp_path / "run"
    app = subprocess.Popen([sys.executable, "-c", PARENT, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(app.stdout.readline())
        assert not gone(pid)
        app.kill()  # SIGKILL: no atexit, no close(); the worker must notice by itself
        app.wait()
        deadline = time.monotonic() + 30
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(pid)
        assert (run / "checkpoint" / "model.safetensors").exists()  # it stopped the CLI's way
    finally:
        app.kill()


def test_close_finishes_the_session_even_when_the_app_stopped_reading(tmp_path, monkeypatch):
    """The worker blocks on a full events queue for its last messages; close() drains it, so
    the worker stops the normal way (checkpoint, summary, exit 0) instead of being terminated."""
    import deephtm.live.worker_process as wp
    from deephtm.graph.graphfile import Graph
    from tests.helpers import small_sine_dict

    monkeypatch.setattr(wp, "EVENT_QUEUE_SIZE", 2)
    worker = wp.TrainingProcess(Graph.from_dict(small_sine_dict(steps=10**6)),
                                wp.RunOptions(out=str(tmp_path / "run"), steps=10**6))
    worker.start()
    log, deadline = tmp_path / "run" / "metrics.jsonl", time.monotonic() + 60
    while not (log.exists() and log.stat().st_size > 0):  # until it has trained a while, unread
        assert time.monotonic() < deadline
        time.sleep(0.1)
    worker.close(timeout_s=30)
    assert worker.process.exitcode == 0
    assert (tmp_path / "run" / "summary.json").exists()
