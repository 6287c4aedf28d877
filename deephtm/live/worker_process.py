"""Training for the editor, off its GUI thread: a `TrainingJob` builds the CLI's Trainer and
turns every event and failure into plain messages; `TrainingProcess` runs one job in a
separate process, so the GUI and the trainer share no GIL (each gets its own core).

Qt-free. The Qt side (app/run/) drains `TrainingProcess.poll()` on its timer.

Messages (kind, *args), in both directions plain data only (dicts, lists, floats, small numpy
arrays; the multiprocessing queues carry them between our own two processes, never to disk):
  worker -> GUI: ("started", info) info is the Trainer's on_start dict plus 'probes' (a dict)
                 ("sampled", payload) a Sampler payload (numpy arrays), ~20 per second
                 ("paused", step) ("resumed", step) ("checkpointed", step, path)
                 ("finished", summary) or ("failed", one_line) - the last message of a job
  GUI -> worker: ("pause",) ("resume",) ("step", n) ("save",) ("stop",) ("watch", [node ids])
"""
from __future__ import annotations

import dataclasses
import importlib
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import DeepHTMError
from ..graph.graphfile import Graph
from .probes import Probes
from .sampler import Sampler

TERMINAL = ("finished", "failed")
EVENT_QUEUE_SIZE = 256  # sample payloads beyond this wait in the worker (their logs are kept)
ORPHAN_CHECK_S = 0.5  # how often the worker checks that the app is still there
ORPHAN_GRACE_S = 10.0  # after the app is gone: time to stop and save before a hard exit
EXIT_ORPHANED = 3
COMMANDS = frozenset({"pause", "resume", "step", "save", "stop", "watch"})


@dataclass
class RunOptions:
    out: str  # run directory, as the CLI's --out
    steps: int  # train until this many steps in total
    device: str = "auto"
    lr: float | None = None
    resume: bool = False  # continue the checkpoint in `out`
    start_paused_after: int | None = None  # Step from idle: run this many steps, then hold


class _JobListener(Sampler):
    """The Sampler, plus the trainer's control events forwarded as messages."""

    def __init__(self, probes: Probes, job: "TrainingJob"):
        super().__init__(probes, lambda payload: job.emit("sampled", payload))
        self.job = job

    def on_start(self, info):
        super().on_start(info)
        if self.job.stop_requested:  # a Stop that came while the trainer was being built
            self.job.trainer.request_stop()
        self.job.emit("started", dict(info, probes=self.probes))

    def on_pause(self, step):
        super().on_pause(step)
        self.job.emit("paused", step)

    def on_resume(self, step):
        self.job.emit("resumed", step)

    def on_checkpoint(self, step, path):
        self.job.emit("checkpointed", step, path)


class TrainingJob:
    """One training session, as `deephtm train [--resume]` runs it (RunLogger, metrics.jsonl
    cut back to the checkpoint on resume), plus a Sampler for the live plots. The request_*
    methods are thread-safe and may come before the trainer exists. run() never raises: it
    ends with emit("finished", summary) or emit("failed", one_line)."""

    def __init__(self, graph: Graph, options: RunOptions, emit: Callable[..., None]):
        self.graph = graph
        self.options = options
        self.emit = emit
        self.trainer = None
        self.sampler: _JobListener | None = None
        self.stop_requested = False
        self.pause_requested = False
        self.summary: dict | None = None
        self.error: str | None = None
        self._watched: frozenset[str] = frozenset()

    @property
    def step(self) -> int:
        trainer = self.trainer
        return trainer.step if trainer is not None else 0

    # ---- requests (from another thread) ----------------------------------------------------
    def request_stop(self) -> None:
        self.stop_requested = True
        trainer = self.trainer  # read once: run() may drop it meanwhile
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

    def request_watch(self, node_ids) -> None:
        self._watched = frozenset(node_ids)
        sampler = self.sampler
        if sampler is not None:
            sampler.watch_nodes(self._watched)

    # ---- the session ---------------------------------------------------------------------------
    def run(self) -> None:
        from ..train.rundir import RunLock, RunLogger, drop_log_lines_after
        from ..train.trainer import Trainer

        o = self.options
        try:
            with RunLock(o.out):  # as `deephtm train`: one run writes a run directory at a time
                logger = RunLogger(o.out, append=o.resume)
                trainer = Trainer(self.graph, out=o.out, steps=o.steps, device=o.device, lr=o.lr,
                                  resume=o.resume, listeners=[logger])
                if o.resume:  # as `deephtm train --resume`: reports after the checkpoint are made again
                    drop_log_lines_after(o.out, trainer.step)
                sampler = _JobListener(Probes.find(trainer.resolved), self)
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
            self.error = (f"out of memory on {where} at step {self.step}; "
                          "training stopped (reduce batch_size or the graph's sizes)")
        except MemoryError:
            self.error = "out of host memory; training stopped"
        except KeyboardInterrupt:  # Ctrl-C in the app's terminal reaches a training process too
            self.error = (f"interrupted at step {self.step}; the trainer saved a checkpoint" if self.trainer
                          else "interrupted before training started")
        except Exception as exc:
            # torch reports shape and device errors as RuntimeError; a node plugin may raise
            # anything. Either way one line for the user, the trace on stderr.
            traceback.print_exc(file=sys.stderr)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.error = f"training stopped at step {self.step}: {type(exc).__name__}: {first}".rstrip(": ")
        if self.error is not None:
            self.trainer = self.sampler = None  # let the failed model's memory go (an OOM's above all)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.emit("failed", self.error)
        else:
            self.emit("finished", self.summary)


# ---- the process ------------------------------------------------------------------------------------

def runtime_node_types(graph: Graph) -> dict[str, tuple[str, str]]:
    """Node types the graph uses that a fresh process would not find by itself (registered at
    run time, e.g. by a test): type name -> (module, qualified name), imported again there.
    Built-ins and installed plugins the worker's registry finds on its own."""
    from ..graph import registry

    found = {}
    for spec in graph.nodes:
        cls = registry.get(spec.type)
        if cls is not None and not cls.__module__.startswith("deephtm.nodes."):
            found[spec.type] = (cls.__module__, cls.__qualname__)
    return found


class TrainingProcess:
    """One TrainingJob in a separate (spawned) process. Commands go in by send(); poll()
    returns the messages that came out. If the process dies without a last message (a crash,
    a kill), poll() makes one: ("failed", "the training process ... exited ...")."""

    def __init__(self, graph: Graph, options: RunOptions):
        ctx = mp.get_context("spawn")  # no fork: the GUI process has threads and Qt state
        self.options = options
        self.commands = ctx.Queue()
        self.events = ctx.Queue(EVENT_QUEUE_SIZE)
        self.process = ctx.Process(
            target=_worker_main, name="deephtm-training", daemon=True,  # daemon: ends with the app
            args=(graph.to_dict(), graph.path, dataclasses.asdict(options), runtime_node_types(graph),
                  self.commands, self.events))
        self.done = False  # a last message was returned
        self.step = 0  # the latest step the worker reported

    def start(self) -> None:
        self.process.start()
        # The app only reads the events queue: drop its copy of the writing end, so that a worker
        # killed halfway through a message reads as end-of-file here instead of a read that never ends.
        self.events._writer.close()

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def send(self, kind: str, *args) -> None:
        if kind not in COMMANDS:
            raise ValueError(f"unknown command {kind!r}")
        if not self.done and self.process.exitcode is None:  # before start() too: it waits in the queue
            self.commands.put((kind, *args))

    def poll(self, limit: int = 10_000) -> list[tuple]:
        """The messages waiting now (at most `limit`), oldest first; never blocks."""
        out: list[tuple] = []
        if self.done:
            return out
        exited = self.process.exitcode is not None  # read first: what it sent before exiting is queued
        while len(out) < limit:
            try:
                msg = self.events.get(timeout=0.05) if exited else self.events.get_nowait()
            except queue.Empty:
                break
            except (EOFError, OSError):
                break
            out.append(msg)
            self._track(msg)
            if msg[0] in TERMINAL:
                self.done = True
                return out
        if exited and not self.done and len(out) < limit:
            self.done = True
            code = self.process.exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            out.append(("failed", f"the training process {how} at step {self.step}; "
                                  "training stopped (the last checkpoint is kept)"))
        return out

    def _discard_events(self) -> None:
        try:
            for _ in range(EVENT_QUEUE_SIZE):
                self.events.get_nowait()
        except (queue.Empty, EOFError, OSError, ValueError):
            pass

    def _track(self, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("paused", "resumed", "checkpointed"):
            self.step = int(msg[1])
        elif kind == "sampled" and len(msg[1].get("steps", ())):
            self.step = int(msg[1]["steps"][-1])
        elif kind == "started":
            self.step = int(msg[1].get("start_step", 0))
        elif kind == "finished":
            self.step = int(msg[1].get("steps", self.step))

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the process to end; True when it has."""
        self.process.join(timeout_s)
        return self.process.exitcode is not None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the training (it saves a checkpoint) and make sure the process is gone:
        terminate it if it does not end in time, kill it if that does not help either."""
        if self.process.pid is None:  # never started
            return
        if self.process.exitcode is None:
            try:
                self.commands.put(("stop",))
            except (OSError, ValueError):
                pass
            deadline = time.monotonic() + timeout_s
            while self.process.exitcode is None and time.monotonic() < deadline:
                self._discard_events()  # a worker blocked on a full queue could not finish
                self.join(0.05)
            if self.process.exitcode is None:
                self.process.terminate()
                if not self.join(2.0):
                    self.process.kill()
                    self.join(2.0)
        for q in (self.commands, self.events):
            q.cancel_join_thread()  # never hang the app's exit on a queue the worker stopped reading
            q.close()


def _worker_main(graph_dict: dict, graph_path: str | None, options: dict,
                 node_types: dict, commands, events) -> None:
    """The training process: register the app's run-time node types, run one job, serve
    commands on a side thread, and stop (then exit) if the app goes away."""
    from ..graph import registry

    carried_logs: list = []

    def emit(kind: str, *args) -> None:
        nonlocal carried_logs
        if kind == "started":
            info = dict(args[0])
            info["probes"] = dataclasses.asdict(info["probes"])
            args = (info,)
        if kind == "sampled":
            payload = args[0]
            if carried_logs:
                payload["logs"] = carried_logs + list(payload.get("logs", ()))
                carried_logs = []
            try:
                events.put_nowait((kind, payload))
            except queue.Full:  # the GUI is behind: drop these samples, keep the metric reports
                carried_logs = list(payload.get("logs", ()))
            return
        if kind in TERMINAL and carried_logs:
            events.put(("sampled", {"steps": [], "series": {}, "snapshots": {}, "logs": carried_logs}))
            carried_logs = []
        events.put((kind, *args))

    job = None
    try:
        for type_name, (module, qualname) in node_types.items():
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            registry.register(obj)
        graph = Graph.from_dict(graph_dict)
        graph.path = graph_path
        job = TrainingJob(graph, RunOptions(**options), emit)
    except Exception as exc:
        events.put(("failed", f"the training process could not start: {type(exc).__name__}: {exc}"))
    if job is not None:
        threading.Thread(target=_serve_commands, args=(job, commands), name="commands", daemon=True).start()
        job.run()
    events.close()
    events.join_thread()  # everything sent reaches the pipe before the process exits
    # The run directory is written (atomically) and the last message sent: skip the interpreter's
    # teardown of torch (most of a second), which the app would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve_commands(job: TrainingJob, commands) -> None:
    parent = mp.parent_process()
    while True:
        try:
            kind, *args = commands.get(timeout=ORPHAN_CHECK_S)
        except queue.Empty:
            if parent is None or parent.is_alive():
                continue
            kind, args = None, ()
        except (EOFError, OSError):
            kind, args = None, ()
        if kind is None:  # the app is gone: stop (saving a checkpoint), and never outlive it by much
            job.request_stop()
            timer = threading.Timer(ORPHAN_GRACE_S, os._exit, (EXIT_ORPHANED,))
            timer.daemon = True
            timer.start()
            return
        if kind in COMMANDS:
            getattr(job, f"request_{kind}")(*args)
