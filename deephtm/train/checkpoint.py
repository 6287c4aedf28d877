"""Checkpoints as one safetensors file: every tensor (weights, buffers, optimizer state,
delayed values, RNG states) plus JSON metadata. No pickle is ever read or written."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from ..errors import CheckpointError
from ..atomic import atomic_write_bytes

CHECKPOINT_FILE = "model.safetensors"
META_FILE = "meta.json"
CHECKPOINT_FORMAT = 1
# Files that usually hold pickles (torch.save and friends). Unpickling runs code, so these
# are refused by name, never opened.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".tar")


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoint" / CHECKPOINT_FILE


def pack_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict:
    sd = opt.state_dict()
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{name}"] = value
            elif value is not None:
                tensors[f"optim/{idx}/{name}"] = torch.tensor(value)
    return {"param_groups": sd["param_groups"]}


def unpack_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    path = checkpoint_path(run_dir)
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = dict(meta, checkpoint_format=CHECKPOINT_FORMAT)
    data = st_save(clean, metadata={"deephtm": json.dumps(meta)})
    atomic_write_bytes(path, data)
    # A readable copy of the metadata; the copy inside the safetensors file is the one read back.
    atomic_write_bytes(path.parent / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return path


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether run_dir holds a checkpoint yet. A file where a run directory should be, or
    weights in a pickle-based format, are refused with a CheckpointError."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"expected a run directory (holding checkpoint/{CHECKPOINT_FILE}), got a file",
                              file=str(run_dir))
    path = checkpoint_path(run_dir)
    if path.exists():
        return True
    if path.parent.is_dir():
        pickled = sorted(p.name for p in path.parent.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickled:
            raise CheckpointError(f"'{pickled[0]}' is not read: weights load only from {CHECKPOINT_FILE} "
                                  "(safetensors), since unpickling a file can run code", file=str(path.parent))
    return False


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = checkpoint_path(run_dir)
    if not has_checkpoint(run_dir):
        raise CheckpointError("no checkpoint found", file=str(path))
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get("deephtm")
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a readable safetensors checkpoint ({exc})", file=str(path)) from None
    if meta_text is None:
        raise CheckpointError("not a DeepHTM checkpoint (no metadata)", file=str(path))
    try:
        meta = json.loads(meta_text)
    except (ValueError, RecursionError):
        raise CheckpointError("checkpoint metadata is not valid JSON", file=str(path)) from None
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint metadata is not a JSON object", file=str(path))
    if meta.get("checkpoint_format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"unknown checkpoint format {meta.get('checkpoint_format')!r}", file=str(path))
    return tensors, meta
