"""One trainer for the CLI and the editor: online, truncated-BPTT and batched modes on
cuda or cpu, checkpointing and resuming, reporting through listeners."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
from pathlib import Path

import torch

from .checkpoint import (checkpoint_path, load_checkpoint, pack_nodes, pack_optimizer, save_checkpoint,
                         unpack_nodes, unpack_optimizer)
from .compile import GraphModule
from .rundir import write_summary
from .optim import make_optimizer, optimizer_step
from ..kernels.tape import Tape, recording
from ..errors import CheckpointError, DeepHTMError, TrainingError
from ..events import TrainerListener
from ..graph.graphfile import Graph
from ..node import Context
from ..graph.resolve import resolve
from ..graph.training import lr_factor


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)


NEVER = 1 << 62  # a step count no run reaches
# How torch words running out of memory in a RuntimeError (cuda; the CPU allocator on Linux, Windows).
OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


class Trainer:
    def __init__(self, graph: Graph, *, out: str | os.PathLike | None = None, steps: int | None = None,
                 device: str | None = None, seed: int | None = None, lr: float | None = None,
                 batch_size: int | None = None, resume: bool = False,
                 listeners: list[TrainerListener] | tuple = (), distributed=None):
        self.graph = graph
        self.dp = distributed  # a deephtm.train.distributed.DataParallel: this rank's share of the streams
        self.config = graph.training.override(steps=steps, device=device, seed=seed, lr=lr,
                                              batch_size=batch_size)
        self.resolved = resolve(graph, training=self.config)
        self.out = Path(out) if out is not None else None
        self.listeners = list(listeners)
        self.device = pick_device(self.config.device)
        if self.device.type == "cpu" and (self.config.threads or self.config.batch_size <= 16):
            torch.set_num_threads(self.config.threads or 1)
        torch.manual_seed(self.config.seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.model = GraphModule(self.resolved)
        if self.dp is not None:
            self.dp.setup(self.model, self.config.batch_size, self.generator)
        else:
            self.model.setup(self.config.batch_size, self.generator)
        self.model.to(self.device)
        self.model.reset_delayed()
        if self.dp is not None:
            self.dp.broadcast_weights(self.model)
        self.optimizer = make_optimizer(self.config.optimizer, self.model.param_groups(self.config.lr),
                                        self.config.lr, self.device)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups] if self.optimizer is not None else []
        # Steps run without autograd when every node has a hand-derived backward
        # (deephtm/kernels/tape.py; see uses_tape). Set False to use autograd always.
        self.hand_backward = True
        self.step = 0
        self.wall_s = 0.0  # training time over all sessions of this run
        self._stop = False
        # Pause/step/save requests from another thread (the editor's GUI); the loop acts
        # on them between steps. One integer compare per step when none is pending.
        self._control_lock = threading.Lock()
        self._wake = threading.Event()
        self._pause_at = NEVER  # hold when self.step reaches this
        self._check_at = NEVER  # the loop calls _control() once self.step reaches this
        self._save_pending = False
        self.last_metrics: dict[str, float] = {}
        # The loss summed since the last report; checkpointed, so a resumed run logs the same means.
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_n = 0
        if resume:
            self.load(self.out)

    # ---- control ---------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (thread-safe: a flag)."""
        self._stop = True
        self._wake.set()

    def request_pause(self, after: int = 0) -> None:
        """Hold the loop after `after` more steps (0: at the next step boundary) until
        request_resume, request_step or request_stop. Thread-safe; may precede run()."""
        with self._control_lock:
            self._pause_at = self.step + after
            self._check_at = 0 if self._save_pending else self._pause_at
        self._wake.set()

    def request_step(self, n: int = 1) -> None:
        """While held: train n more steps, then hold again."""
        self.request_pause(after=n)

    def request_resume(self) -> None:
        with self._control_lock:
            self._pause_at = NEVER
            self._check_at = 0 if self._save_pending else NEVER
        self._wake.set()

    def request_save(self) -> None:
        """Save a checkpoint at the next step boundary, on the training thread."""
        with self._control_lock:
            self._save_pending = True
            self._check_at = 0
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self.step >= self._pause_at

    def _control(self) -> float:
        """Serve pending requests; hold while paused. Returns the seconds held, which
        do not count as training time."""
        held_since = None
        while True:
            with self._control_lock:
                save, self._save_pending = self._save_pending, False
                hold = self.step >= self._pause_at and not self._stop
                if not hold:
                    self._check_at = self._pause_at
            if save:
                self.save()
            if not hold:
                break
            if held_since is None:
                held_since = time.perf_counter()
                for l in self.listeners:
                    l.on_pause(self.step)
            self._wake.wait(0.1)
            self._wake.clear()
        if held_since is None:
            return 0.0
        if not self._stop:
            for l in self.listeners:
                l.on_resume(self.step)
        return time.perf_counter() - held_since

    # ---- the loop --------------------------------------------------------------
    def run(self, steps: int | None = None) -> dict:
        """Train until `steps` in total (default: the config's). Returns the summary.
        Ctrl-C saves a checkpoint, then re-raises KeyboardInterrupt."""
        target = self.config.steps if steps is None else steps
        self._stop = False
        info = {"steps": target, "start_step": self.step, "device": str(self.device),
                "params": sum(p.numel() for p in self.model.parameters()), "graph": self.graph.path}
        for l in self.listeners:
            l.on_start(info)
        try:
            self.train_until(target)
        except KeyboardInterrupt:
            self.finish(interrupted=True)
            raise
        except Exception as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            raise failure from exc  # no save: the last good checkpoint stays as it was
        return self.finish(interrupted=self.step < target)

    def _failure(self, exc: Exception) -> TrainingError | None:
        """The one-line error for running out of memory or a failing data source; None to
        re-raise exc as it is (a DeepHTMError already reads well; anything else is a bug)."""
        if isinstance(exc, DeepHTMError):
            return None
        kept = ""
        if self.out is not None:
            ckpt = checkpoint_path(self.out)
            kept = f"; the last checkpoint, {ckpt}, is kept" if ckpt.exists() else "; no checkpoint was saved yet"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or (
                isinstance(exc, RuntimeError) and any(p in text.lower() for p in OOM_PHRASES)):
            return TrainingError(f"out of memory on {self.device} at step {self.step}{kept} "
                                 "(reduce batch_size or the graph's sizes)")
        source = _failing_source(exc, self.model)
        if source is not None:
            return TrainingError(f"data source '{source}' failed at step {self.step}: "
                                 f"{type(exc).__name__}: {text}{kept}")
        return None

    def train_until(self, target: int) -> None:
        cfg = self.config
        model, opt = self.model, self.optimizer
        check_every_step = self.device.type == "cpu"  # a host sync is free on the CPU
        want_values = [l for l in self.listeners if l.wants_values]
        ctx = Context(step=self.step, batch=model.batch, device=self.device, generator=self.generator)
        window_loss = None
        params = list(model.parameters())
        sync = (lambda: self.dp.average_gradients(model)) if self.dp is not None else None
        scheduled = cfg.lr_schedule != "constant" or cfg.warmup_steps > 0
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" \
            else contextlib.nullcontext()
        tape = Tape() if self.uses_tape() else None
        t_start = time.perf_counter()
        last_save = t_start
        t_log, step_log = t_start, self.step
        while self.step < target and not self._stop:
            if self.step >= self._check_at:
                t_log += self._control()
                if self._stop:
                    break
            ctx.step = self.step
            backward = None
            if tape is not None:
                with recording(tape):
                    values = model.step(ctx)
                    terms = model.loss_terms(values)
                    loss = model.loss(values)
                if tape.entries:
                    backward = functools.partial(tape.backward, terms, params)
            else:
                with autocast:
                    values = model.step(ctx)
                    loss = model.loss(values)
            if loss is not None and loss.dtype != torch.float32:
                loss = loss.float()
            end_of_window = cfg.mode == "online" or (self.step + 1) % cfg.bptt == 0
            if loss is not None:
                if check_every_step and not math.isfinite(loss.item()):
                    self._diverged(self.step)
                self._loss_sum += loss.detach()
                self._loss_n += 1
                window_loss = loss if window_loss is None else window_loss + loss
                if end_of_window and opt is not None and (window_loss.requires_grad or backward is not None):
                    factor = lr_factor(cfg, self.step) if scheduled else None
                    optimizer_step(opt, window_loss, params, cfg.grad_clip, after_backward=sync, backward=backward,
                                   lrs=None if factor is None else [base * factor for base in self.base_lrs])
                if end_of_window:
                    window_loss = None
            model.carry(values, detach=end_of_window)
            self.step += 1
            for l in want_values:
                l.on_step(self.step, {k: v.detach() for k, v in values.items()})
            if self.step % cfg.log_every == 0 or self.step == target:
                now = time.perf_counter()
                metrics = {"loss": (self._loss_sum / max(self._loss_n, 1)).item()} if self._loss_n else {}
                if self._loss_n and not math.isfinite(metrics["loss"]):
                    self._diverged(self.step)
                metrics.update(model.metric_values())
                metrics["steps_per_s"] = (self.step - step_log) / max(now - t_log, 1e-9)
                self.wall_s += now - t_log
                t_log, step_log = now, self.step
                self._loss_sum.zero_()
                self._loss_n = 0
                self.last_metrics = metrics
                for l in self.listeners:
                    l.on_log(self.step, metrics)
            # Checkpoints fall at the end of a tbptt window (in online mode: every step), the
            # first one on or after each multiple of checkpoint_every: a window cut in two
            # could not be resumed exactly.
            span = 1 if cfg.mode == "online" else cfg.bptt
            by_steps = cfg.checkpoint_every and self.step // cfg.checkpoint_every != (self.step - span) // cfg.checkpoint_every
            # ... and by time, so a kill loses at most about checkpoint_every_s of training.
            by_time = cfg.checkpoint_every_s and time.perf_counter() - last_save >= cfg.checkpoint_every_s
            if end_of_window and self.step < target and (by_steps or by_time):
                self.save()
                last_save = time.perf_counter()
        self.wall_s += time.perf_counter() - t_log

    def uses_tape(self) -> bool:
        """Whether train_until runs its steps without autograd: online, in full precision, and
        every node with a hand-derived backward (asked at each call: a node's choice of path
        may change between calls)."""
        cfg = self.config
        return (self.hand_backward and cfg.mode == "online" and cfg.precision != "bf16"
                and self.model.hand_backward())

    def _diverged(self, step: int) -> None:
        where = f" (last good checkpoint: {self.out / 'checkpoint'})" if self.out else ""
        raise TrainingError(f"loss became NaN or infinite at step {step}; training stopped{where}")

    def finish(self, interrupted: bool = False) -> dict:
        summary = self.summary(interrupted)
        if self.out is not None:
            self.save()
            for node in self.model.nodes.values():
                node.on_end(self.out)
            write_summary(self.out, summary)
        for l in self.listeners:
            l.on_end(summary)
        return summary

    def summary(self, interrupted: bool = False) -> dict:
        metrics = dict(self.last_metrics)
        metrics.update(self.model.metric_values())
        metrics.pop("steps_per_s", None)
        return {
            "graph": self.graph.path,
            "steps": self.step,
            "wall_s": round(self.wall_s, 3),
            "steps_per_s": round(self.step / self.wall_s, 1) if self.wall_s > 0 else 0.0,
            "device": str(self.device),
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "interrupted": interrupted,
            "metrics": metrics,
            "torch": torch.__version__,
        }

    # ---- checkpoints -------------------------------------------------------------
    def save(self) -> str | None:
        if self.out is None:
            return None
        # Never replace a good checkpoint with diverged weights (on cuda the loss is only
        # checked at reports, so a NaN since the last one shows up here).
        if not bool(torch.isfinite(self._loss_sum)) or not all(bool(torch.isfinite(p).all())
                                                                for p in self.model.parameters()):
            self._diverged(self.step)
        state = self.model.state_dict()  # a node's extra state too: pack_nodes stores it
        tensors = {f"model/{k}": v for k, v in state.items() if isinstance(v, torch.Tensor)}
        for (nid, port), v in self.model.delayed.items():
            tensors[f"delayed/{nid}/{port}"] = v
        tensors["rng/generator"] = self.generator.get_state()
        tensors["rng/torch"] = torch.get_rng_state()
        tensors["trainer/loss_sum"] = self._loss_sum
        meta = {"step": self.step, "wall_s": self.wall_s, "graph": self.graph.to_dict(),
                "config": self.config.to_dict(), "last_metrics": self.last_metrics, "loss_n": self._loss_n,
                "nodes": pack_nodes(dict(self.model.nodes.items()), state, tensors)}
        if self.optimizer is not None:
            meta["optimizer"] = pack_optimizer(self.optimizer, tensors)
        path = save_checkpoint(self.out, tensors, meta)
        for l in self.listeners:
            l.on_checkpoint(self.step, str(path))
        return str(path)

    def load(self, run_dir: str | os.PathLike | None) -> None:
        if run_dir is None:
            raise CheckpointError("resume needs a run directory")
        tensors, meta = load_checkpoint(run_dir)
        self._check_compatible(meta, run_dir)
        try:
            self._restore(tensors, meta, run_dir)
        except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint is damaged or incomplete ({type(exc).__name__}: {exc})",
                                  file=str(run_dir)) from None

    def _check_compatible(self, meta: dict, run_dir) -> None:
        """Say plainly why a whole checkpoint cannot continue this run (not 'damaged')."""
        where = str(checkpoint_path(run_dir))
        config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        saved, now = config.get("optimizer"), self.config.optimizer
        if saved is not None and saved != now:
            raise CheckpointError(f"the run was trained with optimizer '{saved}' and this graph uses '{now}': "
                                  f"resume with '{saved}', or train afresh", file=where)
        if self.optimizer is not None and "optimizer" not in meta:
            raise CheckpointError("checkpoint has no optimizer state to continue from", file=where)

    def _restore(self, tensors: dict, meta: dict, run_dir) -> None:
        model_sd = unpack_nodes(dict(self.model.nodes.items()), tensors, meta, str(checkpoint_path(run_dir)))
        own = self.model.state_dict()
        if set(model_sd) != set(own) or any(isinstance(v, torch.Tensor) and own[k].shape != v.shape
                                            for k, v in model_sd.items()):
            raise CheckpointError("checkpoint does not match this graph's nodes or sizes",
                                  file=str(run_dir))
        self.model.load_state_dict(model_sd)
        for (nid, port) in self.model.delayed_keys:
            key = f"delayed/{nid}/{port}"
            if key in tensors:
                self.model.delayed[(nid, port)] = tensors[key].to(self.device)
        if self.optimizer is not None and "optimizer" in meta:
            unpack_optimizer(self.optimizer, {k: v.to(self.device) if not k.endswith("/step") else v
                                              for k, v in tensors.items()}, meta["optimizer"])
        self.generator.set_state(tensors["rng/generator"])
        torch.set_rng_state(tensors["rng/torch"])
        self.step = int(meta["step"])
        self.wall_s = float(meta.get("wall_s", 0.0))
        self.last_metrics = dict(meta.get("last_metrics", {}))
        if "trainer/loss_sum" in tensors:
            self._loss_sum = tensors["trainer/loss_sum"].to(self.device)
            self._loss_n = int(meta.get("loss_n", 0))


def _failing_source(exc: BaseException, model) -> str | None:
    """The id of the data source node whose code raised exc, if one did: the innermost
    frame of the traceback that runs a node of category 'source'."""
    nodes = {id(node): nid for nid, node in model.nodes.items() if node.category == "source"}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if id(owner) in nodes and owner is model.nodes[nodes[id(owner)]]:
            found = nodes[id(owner)]
        tb = tb.tb_next
    return found
