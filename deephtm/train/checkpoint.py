"""Checkpoints as one safetensors file: every tensor (weights, buffers, optimizer state,
delayed values, RNG states) plus JSON metadata. No pickle is ever read or written.

Tensor names: model/<state_dict key> (weights and buffers), extra/<node id>/<name> (tensors of
a node's extra state), delayed/<node id>/<port>, optim/<group>/<name>, rng/..., trainer/....

Node state that is not a buffer is a node's extra state (torch's get_extra_state, a dict):
its tensors are stored as extra/<node id>/<name>, its JSON values in the metadata under
"nodes": {<node id>: {"type", "version", "extra"}}. Every node is listed there with its type
and version, so a checkpoint of an older version of a node is migrated by the node's
migrate_state, or refused; a checkpoint without "nodes" predates versions: all version 1.

Every tensor's BLAKE2b digest is stored in the metadata ("digests") and checked on load, so a
damaged file is refused instead of trained on. Loading reads the whole file into memory: a
memory-mapped file that another process truncates or replaces would kill the trainer with
SIGBUS. The metadata's numbers (step, wall time) are range-checked."""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import CheckpointError
from ..atomic import atomic_write_bytes
from ..node import Node

CHECKPOINT_FILE = "model.safetensors"
META_FILE = "meta.json"
CHECKPOINT_FORMAT = 1
# Files that usually hold pickles (torch.save and friends). Unpickling runs code, so these
# are refused by name, never opened.
# The key under which torch's state_dict() holds a module's get_extra_state().
EXTRA_STATE_KEY = "_extra_state"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".tar")
MAX_STEP = 10**9  # training's own limit on steps
MAX_CHECKPOINT_BYTES = 16 * 1024**3  # far above the graph budget's weights and optimizer state


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


def has_extra_state(node: torch.nn.Module) -> bool:
    """Whether the node's class keeps state through get_extra_state (torch's own test)."""
    return type(node).get_extra_state is not torch.nn.Module.get_extra_state


def pack_nodes(nodes: dict[str, Node], state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict:
    """Each node's type, version and extra state (taken from `state`, the GraphModule's
    state_dict), for meta["nodes"]; the extra state's tensors go into `tensors`."""
    own_keys = {f"nodes.{nid}.{EXTRA_STATE_KEY}" for nid in nodes}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) and key not in own_keys:
            raise TypeError(f"'{key}': only a node itself may keep extra state, not a module inside it")
    packed = {}
    for nid, node in nodes.items():
        entry = {"type": node.type_name, "version": type(node).version}
        if has_extra_state(node):
            extra = state[f"nodes.{nid}.{EXTRA_STATE_KEY}"]
            if not isinstance(extra, dict):
                raise TypeError(f"node '{nid}' ({node.type_name}): get_extra_state must return a dict")
            entry["extra"] = {}
            for name, value in extra.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"extra/{nid}/{name}"] = value
                else:
                    entry["extra"][name] = value
            try:
                json.dumps(entry["extra"])
            except (TypeError, ValueError) as exc:
                raise TypeError(f"node '{nid}' ({node.type_name}): extra state is not JSON ({exc})") from None
        packed[nid] = entry
    return packed


def unpack_nodes(nodes: dict[str, Node], tensors: dict[str, torch.Tensor], meta: dict,
                 file: str) -> dict[str, Any]:
    """The model's state dict (keys as GraphModule.state_dict() names them, extra states
    included) from a checkpoint, each node's part migrated from an older version of the node
    by its migrate_state. Raises CheckpointError when a node's version cannot be loaded."""
    saved_nodes = meta.get("nodes")
    if saved_nodes is not None and not isinstance(saved_nodes, dict):
        raise CheckpointError("checkpoint metadata 'nodes' is not an object", file=file)
    state: dict[str, Any] = {}
    for nid, node in nodes.items():
        prefix = f"nodes.{nid}."
        own = {k[len("model/" + prefix):]: v for k, v in tensors.items() if k.startswith("model/" + prefix)}
        saved = (saved_nodes or {}).get(nid, {"type": node.type_name, "version": 1})
        if saved.get("type") != node.type_name:
            raise CheckpointError(f"node '{nid}' is a {saved.get('type')} in the checkpoint, "
                                  f"a {node.type_name} in this graph", file=file)
        extra = saved.get("extra")
        if extra is not None:
            extra = dict(extra)
            extra.update({k[len(f"extra/{nid}/"):]: v for k, v in tensors.items()
                          if k.startswith(f"extra/{nid}/")})
        old, new = saved.get("version"), type(node).version
        if type(old) is not int:
            raise CheckpointError(f"node '{nid}' ({node.type_name}): checkpoint gives no valid version "
                                  f"({old!r})", file=file)
        if old != new:
            migrated = type(node).migrate_state(old, own, extra) if old < new else None
            if migrated is None:
                why = "no migration" if old < new else "a newer DeepHTM wrote it"
                raise CheckpointError(f"node '{nid}' ({node.type_name}): checkpoint has version {old}, "
                                      f"this DeepHTM has version {new}; {why}", file=file)
            own, extra = migrated
        state.update({prefix + k: v for k, v in own.items()})
        if has_extra_state(node):
            if extra is None:
                raise CheckpointError(f"node '{nid}' ({node.type_name}): checkpoint holds none of its "
                                      "extra state", file=file)
            state[prefix + EXTRA_STATE_KEY] = extra
    return state


def save_checkpoint(run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    path = checkpoint_path(run_dir)
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = dict(meta, checkpoint_format=CHECKPOINT_FORMAT, digests={k: digest(v) for k, v in clean.items()})
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


def digest(t: torch.Tensor) -> str:
    """A checksum of a tensor's bytes (with its dtype and shape)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = checkpoint_path(run_dir)
    if not has_checkpoint(run_dir):
        raise CheckpointError("no checkpoint found", file=str(path))
    try:
        if not path.is_file() or path.stat().st_size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError("not a regular file of a checkpoint's size", file=str(path))
        data = path.read_bytes()  # in memory: nothing a change to the file can pull away (SIGBUS)
        tensors = st_load(data)
        meta_text = _header(data).get("__metadata__", {}).get("deephtm")
    except (SafetensorError, OSError, ValueError, struct.error, AttributeError, RecursionError) as exc:
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
    check_digests(tensors, meta, str(path))
    check_numbers(meta, str(path))
    return tensors, meta


def _header(data: bytes) -> dict:
    """The safetensors JSON header (its first 8 bytes give its length)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header


def check_digests(tensors: dict[str, torch.Tensor], meta: dict, path: str) -> None:
    digests = meta.get("digests")
    if digests is None:
        return  # written before checksums were stored
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        raise CheckpointError("checkpoint is damaged: its tensors do not match their list", file=path)
    for key, value in tensors.items():
        if digest(value) != digests[key]:
            raise CheckpointError(f"checkpoint is damaged: tensor '{key}' fails its checksum", file=path)


def check_numbers(meta: dict, path: str) -> None:
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise CheckpointError(f"checkpoint step {step!r:.40} is not an integer in [0, {MAX_STEP:,}]", file=path)
    wall = meta.get("wall_s", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not (math.isfinite(wall) and wall >= 0):
        raise CheckpointError(f"checkpoint wall time {wall!r:.40} is not a finite number >= 0", file=path)
    loss_n = meta.get("loss_n", 0)
    if isinstance(loss_n, bool) or not isinstance(loss_n, int) or not 0 <= loss_n <= MAX_STEP:
        raise CheckpointError(f"checkpoint loss count {loss_n!r:.40} is out of range", file=path)
