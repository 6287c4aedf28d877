"""A trainer listener that samples what the live plots need, cheaply.

Every step it only keeps references to the few tensors the plots show (no copies, no
host sync). Every `interval_s` (and when paused or done) it stacks them, copies stream 0
to the host once and hands one payload of numpy arrays to `send`: a Qt signal in the
app's thread worker, a queue to the editor from a training process. Qt-free."""
from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
import torch

from ..events import TrainerListener

from .probes import MAX_RASTER_UNITS, Key, Probes

CLONE_BYTES = 64 * 1024  # bigger values are cut to stream 0 at once, so a batch is not kept alive


class Sampler(TrainerListener):
    wants_values = True

    def __init__(self, probes: Probes, send: Callable[[dict], None], interval_s: float = 0.045,
                 max_pending: int = 256):
        self.probes = probes
        self.send = send
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.model = None  # the trainer's GraphModule, for state that is not an output (duty cycles)
        self.watched: frozenset[str] = frozenset()  # node ids with an open live view; set from any thread
        self._configured_for = None
        self._capture: list[tuple[Key, list]] = []
        self._reducers: dict[Key, str] = {}
        self._snapshots: list[Key] = []
        self._steps: list[int] = []
        self._logs: list[tuple[int, dict]] = []
        self._next = 0.0
        self._ctx_key = None  # what feeds the TM's context: its previous value predicted this step
        self._tm_columns_key = None
        self._tm_broken = False
        self._ctx_prev = self._ctx_cur = None
        self._last_values: dict | None = None

    # ---- what to keep ----------------------------------------------------------------
    def watch_nodes(self, node_ids) -> None:
        self.watched = frozenset(node_ids)

    def _configure(self, values: dict) -> None:
        p = self.probes
        reducers: dict[Key, str] = {}
        snapshots: list[Key] = []
        for key in (p.pred, p.target, *(k for _, k in p.anomalies)):
            if key is not None:
                reducers[key] = "first"
        if p.sp is not None:
            reducers[(p.sp, "columns")] = "mask"
        for _, key in p.images:
            snapshots.append(key)
        for key, shape in p.shapes.items():
            if key[0] in self.watched:
                if len(shape) == 0:
                    reducers.setdefault(key, "first")
                elif len(shape) == 1:
                    reducers.setdefault(key, "vector")  # the SP's columns stay a mask
                elif key not in snapshots:
                    snapshots.append(key)
        old = {k: lst for k, lst in self._capture}
        self._capture = [(k, old.get(k, [])) for k in reducers if k in values]
        # Rows captured for keys no longer wanted are dropped; the others keep their steps aligned.
        if self._capture and any(len(lst) != len(self._steps) for _, lst in self._capture):
            self._steps.clear()
            for _, lst in self._capture:
                lst.clear()
        self._reducers = reducers
        self._snapshots = [k for k in snapshots if k in values]
        self._big = {k for k in reducers if k in values and values[k].numel() * values[k].element_size() > CLONE_BYTES}
        self._ctx_key = self._tm_columns_key = None
        if p.tm is not None and self.model is not None:
            inbound = self.model.resolved.inbound[p.tm]
            edge = inbound.get("context")
            if edge is not None and edge.delay:
                self._ctx_key = (edge.src, edge.src_port)
            self._tm_columns_key = (inbound["columns"].src, inbound["columns"].src_port)
        self._configured_for = self.watched

    # ---- trainer events ----------------------------------------------------------------
    def on_start(self, info):
        self._next = time.perf_counter() + self.interval_s

    def on_step(self, step, values):
        if self._configured_for is not self.watched:
            self._configure(values)
        big = self._big
        for key, lst in self._capture:
            v = values[key]
            lst.append(v[:1].clone() if key in big else v)
        self._steps.append(step)
        self._last_values = values  # so a pause shows the held step's TM cells and images
        if self._ctx_key is not None:
            self._ctx_prev, self._ctx_cur = self._ctx_cur, values.get(self._ctx_key)
        if len(self._steps) >= self.max_pending or time.perf_counter() >= self._next:
            self.flush(values)

    def on_log(self, step, metrics):
        self._logs.append((step, dict(metrics)))

    def on_pause(self, step):
        self.flush(self._last_values)

    def on_end(self, summary):
        self.flush(self._last_values)
        self._last_values = None

    # ---- one payload ---------------------------------------------------------------------
    def flush(self, values: dict | None) -> None:
        self._next = time.perf_counter() + self.interval_s
        payload: dict = {"steps": np.asarray(self._steps, dtype=np.int64), "series": {}, "snapshots": {},
                         "logs": self._logs}
        self._logs = []
        with torch.no_grad():
            for key, lst in self._capture:
                if lst:
                    stacked = torch.stack(lst)
                    if stacked.dim() > len(self.probes.shapes.get(key, ())) + 1:
                        stacked = stacked[:, 0]  # stream 0; losses have no batch dimension
                    payload["series"][key] = self._reduce(key, stacked)
                    lst.clear()
            self._steps.clear()
            if values is not None:
                for key in self._snapshots:
                    payload["snapshots"][key] = values[key][0].float().cpu().numpy()
                tm_state = self._tm_state(values)
                if tm_state is not None:
                    payload["tm_state"] = tm_state
            if self.probes.sp is not None and self.model is not None:
                duty = self.model.nodes[self.probes.sp].duty_cycles()
                if duty is not None:
                    payload["duty"] = duty.detach().float().cpu().numpy().copy()
        self.send(payload)

    def _reduce(self, key: Key, rows: torch.Tensor) -> np.ndarray:
        """rows: [n, *shape] for stream 0."""
        how = self._reducers[key]
        flat = rows.reshape(rows.shape[0], -1)
        if flat.shape[1] == 0:
            flat = rows.reshape(-1, 1)
        if how == "first":
            return flat[:, 0].float().cpu().numpy()
        if how == "mask":
            return (flat[:, :MAX_RASTER_UNITS] != 0).cpu().numpy()
        return flat[:, :MAX_RASTER_UNITS].float().cpu().numpy()

    def _tm_state(self, values: dict) -> np.ndarray | None:
        """[cells per column, columns] codes: 0 idle, 1 predicted for the next step,
        2 active and predicted, 3 active in a bursting column (nothing predicted it)."""
        p = self.probes
        if p.tm is None or self.model is None or self._tm_columns_key not in values or self._tm_broken:
            return None
        tm = self.model.nodes[p.tm]
        C, K = p.tm_columns, p.tm_cells
        col_active = (values[self._tm_columns_key][:1] != 0).view(C, 1)
        none = torch.zeros(C, K, dtype=torch.bool, device=col_active.device)
        try:
            pred_now = _predicted(tm, self._ctx_prev, C, K) if self._ctx_prev is not None else none
            pred_next = _predicted(tm, self._ctx_cur, C, K) if self._ctx_cur is not None else none
        except Exception as exc:  # the TM's internals changed: drop this view, never the training
            self._tm_broken = True
            print(f"deephtm-app: TM cell view off: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        if pred_now is None or pred_next is None:
            return None
        if (p.tm, "cells") in values:
            # The TM fires the predicted cells of a predicted column and all cells of a bursting
            # one; the weights have moved since that step, so its output decides.
            active = (values[(p.tm, "cells")][:1] != 0).view(C, K)
            bursting = (active.all(-1) & ~pred_now.all(-1)).unsqueeze(-1)
        else:
            bursting = col_active & ~pred_now.any(-1, keepdim=True)
            active = (col_active & pred_now) | bursting
        code = torch.zeros(C, K, dtype=torch.uint8, device=col_active.device)
        code[pred_next & ~active] = 1
        code[active & ~bursting] = 2
        code[active & bursting] = 3
        return code.T.contiguous().cpu().numpy()


def _predicted(tm, context: torch.Tensor, C: int, K: int) -> torch.Tensor | None:
    """Cells of stream 0 that `context` predicts, as the TM says (Node.predicted_by): bool
    [C, K], or None if it cannot say."""
    cells = tm.predicted_by(context[:1])
    return None if cells is None else cells.reshape(C, K)
