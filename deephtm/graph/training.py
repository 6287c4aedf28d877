"""The `training` section of a graph file, declared like node params."""
from __future__ import annotations

import math
from dataclasses import asdict, fields, make_dataclass

from ..errors import GraphError
from .spec import Param

TRAINING_PARAMS = (
    Param("optimizer", "str", "adam", "optimizer", choices=("adam", "adamw", "sgd")),
    Param("lr", "float", 1e-3, "learning rate", min=0.0, max=10.0),
    Param("lr_schedule", "str", "constant", "learning-rate schedule over 'steps' (every optimizer group, "
          "the TM's synapses included): constant, or cosine/linear decay to min_lr_ratio; decay "
          "removes the noise floor that online steps at a fixed rate leave",
          choices=("constant", "cosine", "linear")),
    Param("min_lr_ratio", "float", 0.0, "lr_schedule: the final rate as a fraction of lr", min=0.0, max=1.0),
    Param("warmup_steps", "int", 0, "steps of linear warm-up from 0 to lr", min=0, max=10**9),
    Param("steps", "int", 10000, "time steps to train", min=0, max=10**9),
    Param("seed", "int", 0, "random seed; the same seed gives the same run on the CPU", min=0, max=2**31 - 1),
    Param("device", "str", "auto", "auto picks cuda when available, else cpu", choices=("auto", "cpu", "cuda")),
    Param("batch_size", "int", 1, "parallel streams per step", min=1, max=65536),
    Param("mode", "str", "online", "online: one optimizer step per time step; tbptt: one per bptt steps",
          choices=("online", "tbptt")),
    Param("bptt", "int", 1, "tbptt: steps to backpropagate through before an optimizer step", min=1, max=4096),
    Param("grad_clip", "float", 0.0, "clip the gradient norm to this (0: off)", min=0.0, max=1e6),
    Param("log_every", "int", 100, "steps between metric reports", min=1, max=10**9),
    Param("checkpoint_every", "int", 5000, "steps between checkpoints (0: only at the end)", min=0, max=10**9),
    Param("checkpoint_every_s", "float", 60.0, "seconds of training between checkpoints, so a kill loses at "
          "most about this much (0: by steps only)", min=0.0, max=1e7),
    Param("main_metric", "str", "", "metric shown in the progress bar (empty: the first metric node)"),
    Param("precision", "str", "fp32", "bf16: matmuls in bfloat16 under autocast (weights, optimizer "
          "state and the loss stay fp32); worth it on GPUs with bf16 units", choices=("fp32", "bf16")),
    Param("threads", "int", 0, "CPU threads for torch; 0: one thread for batches of up to 16 (small ops "
          "lose more to thread hand-offs than they gain), torch's default otherwise", min=0, max=1024),
)


class _TrainingMethods:
    """What a TrainingConfig does; its fields are made from TRAINING_PARAMS below."""

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingConfig":
        if not isinstance(d, dict):
            raise GraphError("'training' must be an object", where="training")
        known = {p.name: p for p in TRAINING_PARAMS}
        values = {}
        for key, value in d.items():
            if key not in known:
                raise GraphError(f"unknown key '{key}' (known: {', '.join(known)})", where="training")
            values[key] = known[key].check(value, where=f"training: '{key}'")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, **changes) -> "TrainingConfig":
        """A copy with the given (already validated) values replaced; None leaves a value."""
        d = self.to_dict()
        names = {f.name for f in fields(self)}
        for k, v in changes.items():
            if v is not None and k in names:
                d[k] = v
        return type(self)(**d)


# One field per training param, in their order, with the param's default: each default is
# written once, in TRAINING_PARAMS.
TrainingConfig = make_dataclass(
    "TrainingConfig", [(p.name, {"str": str, "int": int, "float": float, "bool": bool}[p.type], p.default)
                       for p in TRAINING_PARAMS], bases=(_TrainingMethods,))
TrainingConfig.__module__ = __name__
TrainingConfig.__doc__ = "The values of a graph's training section (TRAINING_PARAMS), defaults filled in."


def lr_factor(cfg: TrainingConfig, step: int) -> float:
    """The multiplier of every group's learning rate at `step` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant" or cfg.steps <= cfg.warmup_steps:
        return 1.0
    progress = min((step - cfg.warmup_steps) / (cfg.steps - cfg.warmup_steps), 1.0)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.lr_schedule == "cosine" else 1 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape
