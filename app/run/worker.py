"""The training thread: builds a deephtm Trainer (the CLI's) and runs it off the GUI
thread. Everything reaches the GUI through Qt signals; errors stop training, not the app."""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from PyQt6.QtCore import QObject, QThread, pyqtSignal

from deephtm.cli import _drop_log_lines_after
from deephtm.errors import DeepHTMError
from deephtm.graphfile import Graph
from deephtm.progress import RunLogger
from deephtm.trainer import Trainer

from .probes import Probes
from .sampler import Sampler


@dataclass
class RunOptions:
    out: str  # run directory, as the CLI's --out
    steps: int  # train until this many steps in total
    device: str = "auto"
    lr: float | None = None
    resume: bool = False  # continue the checkpoint in `out`
    start_paused_after: int | None = None  # Step from idle: run this many steps, then hold


class Signals(QObject):
    """Emitted on the training thread, delivered (queued) on the GUI thread."""
    started = pyqtSignal(dict)  # Trainer's on_start info plus 'probes'
    sampled = pyqtSignal(object)  # a Sampler payload
    paused = pyqtSignal(int)
    resumed = pyqtSignal(int)
    checkpointed = pyqtSignal(int, str)
    finished = pyqtSignal(dict)  # the run's summary
    failed = pyqtSignal(str)  # one line for the user


class _QtSampler(Sampler):
    def __init__(self, probes: Probes, signals: Signals, thread: "TrainingThread"):
        super().__init__(probes, signals.sampled.emit)
        self.signals = signals
        self.thread = thread

    def on_start(self, info):
        super().on_start(info)
        if self.thread.stop_requested:  # a Stop that came while the trainer was being built
            self.thread.trainer.request_stop()
        self.signals.started.emit(dict(info, probes=self.probes))

    def on_pause(self, step):
        super().on_pause(step)
        self.signals.paused.emit(step)

    def on_resume(self, step):
        self.signals.resumed.emit(step)

    def on_checkpoint(self, step, path):
        self.signals.checkpointed.emit(step, path)


class TrainingThread(QThread):
    def __init__(self, graph: Graph, options: RunOptions, parent=None):
        super().__init__(parent)
        self.graph = graph.copy()  # the editor may change its document meanwhile
        self.options = options
        self.signals = Signals()
        self.trainer: Trainer | None = None
        self.sampler: _QtSampler | None = None
        self.stop_requested = False
        self.pause_requested = False
        self.summary: dict | None = None
        self.error: str | None = None
        self._watched: frozenset[str] = frozenset()

    # ---- requests from the GUI thread (the trainer acts on them between steps) -----------
    def request_stop(self) -> None:
        self.stop_requested = True
        trainer = self.trainer  # read once: the worker may drop it meanwhile
        if trainer is not None:
            trainer.request_stop()

    def request_pause(self) -> None:
        self.pause_requested = True  # applied once the trainer exists, if it does not yet
        trainer = self.trainer
        if trainer is not None:
            trainer.request_pause()

    def request_resume(self) -> None:
        trainer = self.trainer
        if trainer is not None:
            trainer.request_resume()

    def request_step(self, n: int = 1) -> None:
        trainer = self.trainer
        if trainer is not None:
            trainer.request_step(n)

    def request_save(self) -> None:
        trainer = self.trainer
        if trainer is not None:
            trainer.request_save()

    def watch_nodes(self, node_ids) -> None:
        self._watched = frozenset(node_ids)
        sampler = self.sampler
        if sampler is not None:
            sampler.watch_nodes(self._watched)

    # ---- the thread --------------------------------------------------------------------------
    def run(self) -> None:
        o = self.options
        try:
            logger = RunLogger(o.out, append=o.resume)
            trainer = Trainer(self.graph, out=o.out, steps=o.steps, device=o.device, lr=o.lr,
                              resume=o.resume, listeners=[logger])
            if o.resume:  # as `deephtm train --resume`: reports after the checkpoint are made again
                _drop_log_lines_after(Path(o.out) / "metrics.jsonl", trainer.step)
            sampler = _QtSampler(Probes.find(trainer.resolved), self.signals, self)
            sampler.model = trainer.model
            sampler.watch_nodes(self._watched)
            trainer.listeners.append(sampler)
            if self.pause_requested:
                trainer.request_pause()
            elif o.start_paused_after is not None:
                trainer.request_pause(after=o.start_paused_after)
            self.sampler = sampler
            self.trainer = trainer
            if self.stop_requested:
                self.summary = trainer.finish(interrupted=True)
            else:
                self.summary = trainer.run()
        except DeepHTMError as exc:
            self.error = str(exc)
        except torch.OutOfMemoryError:
            where = self.trainer.device if self.trainer else o.device
            self.error = (f"out of memory on {where} at step {self.trainer.step if self.trainer else 0}; "
                          "training stopped (reduce batch_size or the graph's sizes)")
        except MemoryError:
            self.error = "out of host memory; training stopped"
        except Exception as exc:
            # torch reports shape and device errors as RuntimeError; a node plugin may raise
            # anything. Either way one line for the user, the trace on stderr, and the app
            # lives on (an exception escaping QThread.run would abort it).
            traceback.print_exc(file=sys.stderr)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            step = self.trainer.step if self.trainer else 0
            self.error = f"training stopped at step {step}: {type(exc).__name__}: {first}".rstrip(": ")
        if self.error is not None:
            self.trainer = self.sampler = None  # let the failed model's memory go (an OOM's above all)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.signals.failed.emit(self.error)
        else:
            self.signals.finished.emit(self.summary)
