"""The run panel's two workers, with one interface: a training process (the default; the GUI
and the trainer then run on separate cores without sharing a GIL) or a QThread. Both run
deephtm.live.worker_process.TrainingJob - the CLI's Trainer - and report by the same Qt signals,
delivered on the GUI thread. Errors stop training, never the app."""
from __future__ import annotations

import os

from PyQt6.QtCore import QObject, QThread, pyqtSignal

from deephtm.graph.graphfile import Graph
from deephtm.live.probes import Probes
from deephtm.live.worker_process import RunOptions, TrainingJob, TrainingProcess  # noqa: F401 (RunOptions re-exported)

WORKER_ENV = "DEEPHTM_APP_WORKER"  # "process" (default) or "thread"
WORKER_KINDS = ("process", "thread")


def default_worker_kind() -> str:
    kind = os.environ.get(WORKER_ENV, "process").strip().lower()
    return kind if kind in WORKER_KINDS else "process"


class Signals(QObject):
    """Delivered on the GUI thread (queued from the training thread; emitted by poll() for a process)."""
    started = pyqtSignal(dict)  # Trainer's on_start info plus 'probes' (a Probes)
    sampled = pyqtSignal(object)  # a Sampler payload
    paused = pyqtSignal(int)
    resumed = pyqtSignal(int)
    checkpointed = pyqtSignal(int, str)
    finished = pyqtSignal(dict)  # the run's summary
    failed = pyqtSignal(str)  # one line for the user


def _deliver(signals: Signals, kind: str, args: tuple) -> None:
    getattr(signals, kind).emit(*args)


class TrainingThread(QThread):
    """The job on a QThread of this process (shares the GIL with the GUI)."""
    kind = "thread"

    def __init__(self, graph: Graph, options: RunOptions, parent=None):
        super().__init__(parent)
        self.options = options
        self.signals = Signals()
        # A copy: the editor may change its document meanwhile.
        self.job = TrainingJob(graph.copy(), options, lambda kind, *args: _deliver(self.signals, kind, args))

    @property
    def trainer(self):
        return self.job.trainer

    @property
    def error(self) -> str | None:
        return self.job.error

    @property
    def step(self) -> int:
        return self.job.step

    def request_stop(self) -> None:
        self.job.request_stop()

    def request_pause(self) -> None:
        self.job.request_pause()

    def request_resume(self) -> None:
        self.job.request_resume()

    def request_step(self, n: int = 1) -> None:
        self.job.request_step(n)

    def request_save(self) -> None:
        self.job.request_save()

    def watch_nodes(self, node_ids) -> None:
        self.job.request_watch(node_ids)

    def poll(self) -> None:
        """Signals arrive by themselves."""

    def release(self) -> None:
        """Done: let the model's memory go."""
        self.job.trainer = self.job.sampler = None

    def close(self, timeout_ms: int = 10000) -> None:
        if self.isRunning():
            self.request_stop()
            self.wait(timeout_ms)

    def deleteLater(self) -> None:
        # A QThread deleted while its run() goes on aborts the app. The panel lets an old
        # worker go after asking it to stop; one that is still training goes when it ends.
        if self.isRunning():
            self.finished.connect(super().deleteLater)
            if self.isRunning():
                return
        super().deleteLater()

    def run(self) -> None:
        self.job.run()  # never raises: an exception escaping QThread.run would abort the app


class TrainingProcessWorker(QObject):
    """The job in a spawned process (deephtm.live.worker_process.TrainingProcess). The panel's
    timer calls poll(), which turns the process's messages into the signals. The process
    ends with the app (close() on quit; daemonic; it stops itself if the app vanishes),
    and a crashed process reads as `failed`."""
    kind = "process"
    trainer = None  # the model lives in the other process

    def __init__(self, graph: Graph, options: RunOptions, parent=None):
        super().__init__(parent)
        self.options = options
        self.signals = Signals()
        self.process = TrainingProcess(graph, options)
        self.error: str | None = None
        self.summary: dict | None = None
        self._polling = False

    @property
    def step(self) -> int:
        return self.process.step

    def start(self) -> None:
        self.process.start()

    def isRunning(self) -> bool:
        return self.process.process.pid is not None and not self.process.done

    def wait(self, timeout_ms: int = 5000) -> bool:
        return self.process.join(timeout_ms / 1000)

    def request_stop(self) -> None:
        self.process.send("stop")

    def request_pause(self) -> None:
        self.process.send("pause")

    def request_resume(self) -> None:
        self.process.send("resume")

    def request_step(self, n: int = 1) -> None:
        self.process.send("step", int(n))

    def request_save(self) -> None:
        self.process.send("save")

    def watch_nodes(self, node_ids) -> None:
        self.process.send("watch", sorted(node_ids))

    def poll(self) -> None:
        """Deliver what the process sent since the last call (on the GUI thread)."""
        if self._polling:  # a slot below may refresh the panel, which polls again
            return
        self._polling = True
        try:
            for kind, *args in self.process.poll():
                if kind == "started":
                    info = dict(args[0])
                    info["probes"] = Probes(**info["probes"])
                    args = [info]
                elif kind == "finished":
                    self.summary = args[0]
                elif kind == "failed":
                    self.error = args[0]
                _deliver(self.signals, kind, tuple(args))
        finally:
            self._polling = False

    def release(self) -> None:
        self.process.close(timeout_s=5.0)

    def close(self, timeout_ms: int = 10000) -> None:
        self.process.close(timeout_s=timeout_ms / 1000)

    def deleteLater(self) -> None:
        self.process.close(timeout_s=5.0)
        super().deleteLater()


def make_worker(kind: str, graph: Graph, options: RunOptions, parent=None):
    cls = TrainingThread if kind == "thread" else TrainingProcessWorker
    return cls(graph, options, parent)
