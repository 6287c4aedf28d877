"""A cheaper per-row step for one-stream online learning (what `deephtm detect` runs).

After the first row has shown which weights the loss reaches (the others are frozen), the
rest of the run does the same work with less overhead:
- a frozen prefix of per-row nodes (the source, encoders, concatenations, an SP without
  boosting: no trainable weights, no delayed inputs, each row's output a function of that
  row alone) runs once per block of rows, batched and without autograd, instead of once
  per row. Nodes in it run in eval mode: the SP's duty cycles, which only boosting reads,
  are not tracked;
- the optimizer steps only the weights that learn; when they are all in plain SGD groups
  (the TM's distal synapses) the update is one add_ per weight, without torch.optim's
  per-step bookkeeping;
- when every node stepped row by row has a hand-derived backward (in graphs/anomaly.json
  the TM and its loss term), the rows run without autograd: the kernels' backward passes
  are called from a tape (deephtm/kernels/tape.py), with the gradients autograd gives.
Batched matrix products may round differently from row-by-row ones in the last bits.
"""
from __future__ import annotations

import functools

import torch

from ..kernels.tape import Tape, recording
from ..train.compile import GraphModule, Key
from ..node import Context
from ..train.optim import PlainSGD, optimizer_step

BLOCK = 256  # rows of the frozen prefix computed at once


class OnlineFastPath:
    """Runs rows start, start + 1, ... of a batch-1 GraphModule whose frozen weights already
    have requires_grad False. step() replaces model.step(); learn() one optimizer step."""

    def __init__(self, model: GraphModule, opt, source, *, start: int, extra_keys: list[Key] = ()):
        self.model, self.opt, self.source = model, opt, source
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.stepper = PlainSGD.of(opt, self.trainable) or opt
        prefix: list = []
        ids: set[str] = set()
        for nid, node, feeds in model.plan:
            frozen = not any(p.requires_grad for p in node.parameters())
            fed = all(not delay and key[0] in ids for _, key, delay in feeds)
            if (node is source and source.has_rows) or (ids and frozen and fed and node.rowwise()):
                prefix.append((nid, node, feeds))
                ids.add(nid)
        self.prefix = prefix[1:]  # the source's rows come from source.rows()
        prefix_ids = set(ids)
        # Tail: nodes whose outputs no other node reads and that can take several steps of
        # one stream at once (steps_in_blocks, e.g. a likelihood scorer): their inputs are
        # collected row by row (or, from the prefix, sliced from its blocks) and they run
        # once per block, in flush().
        read = {(e.src, e.src_port) for e in model.resolved.graph.edges}
        self.tail = [(nid, node, feeds) for nid, node, feeds in model.plan
                     if nid not in ids and model.batch == 1 and node.steps_in_blocks
                     and not node.is_loss and not node.is_metric
                     and not any(p.requires_grad for p in node.parameters())
                     and not any(k[0] == nid for k in read) and all(not delay for _, _, delay in feeds)]
        ids |= {nid for nid, _, _ in self.tail}
        self.tail_inputs = {nid: {port: [] for port, key, _ in feeds if key[0] not in prefix_ids}
                            for nid, _, feeds in self.tail}
        self.rest = [entry for entry in model.plan if entry[0] not in ids]
        self.tape = Tape() if self.rest and all(node.hand_backward() for _, node, _ in self.rest) else None
        self.terms: list[torch.Tensor] = []  # this row's loss terms recorded on the tape
        wanted = {key for _, _, feeds in self.rest for _, key, _ in feeds}
        wanted |= set(model.delayed_keys) | set(model.loss_keys) | set(extra_keys)
        self.block_keys = sorted(k for k in wanted if k[0] in prefix_ids)
        # Prefix outputs a tail node reads (e.g. source.raw for the likelihood's range check)
        # are kept as whole blocks and sliced in flush(): nothing per row.
        self.tail_block_keys = sorted({key for _, _, feeds in self.tail for _, key, _ in feeds
                                       if key[0] in prefix_ids})
        self.kept: list[tuple[int, dict[Key, torch.Tensor]]] = []  # (first row, outputs) per block
        self.next_row = start  # the step whose prefix outputs come next
        self.row = start  # the step the next step() runs
        self.flushed = start  # the first step the tail nodes have not seen
        self.block: list[tuple[torch.Tensor, ...]] = []
        self.pos = 0

    def _fill(self, ctx: Context) -> None:
        """Prefix outputs of the next BLOCK rows, split into one [1, ...] view per row."""
        rows = self.source.rows(self.next_row, BLOCK)
        values = {(self.source.node_id, port): v for port, v in rows.items()}
        modes = [(node, node.training) for _, node, _ in self.prefix]
        try:
            for node, _ in modes:
                node.train(False)
            with torch.no_grad():
                self.model.run_plan(self.prefix, values, ctx)
        finally:
            for node, was_training in modes:
                node.train(was_training)
        if self.tail_block_keys:
            self.kept.append((self.next_row, {k: values[k] for k in self.tail_block_keys}))
        split = [values[k].split(1) for k in self.block_keys]
        self.block = list(zip(*split)) if split else [()] * BLOCK
        self.pos = 0
        self.next_row += BLOCK

    def step(self, ctx: Context) -> dict[Key, torch.Tensor]:
        values = {}
        if self.block_keys or self.tail_block_keys:
            if self.pos == len(self.block):
                self._fill(ctx)
            values = dict(zip(self.block_keys, self.block[self.pos]))
            self.pos += 1
        if self.tape is not None:
            with recording(self.tape):
                self.model.run_plan(self.rest, values, ctx)
            self.terms = self.model.loss_terms(values) if self.tape.entries else []
        else:
            self.model.run_plan(self.rest, values, ctx)
        for nid, _, feeds in self.tail:
            inputs = self.tail_inputs[nid]
            for port, key, _ in feeds:
                if port in inputs:
                    inputs[port].append(values[key])
        self.row += 1
        return values

    def flush(self, ctx: Context) -> dict[Key, torch.Tensor]:
        """Run the tail nodes on the rows stepped since the last flush: {key: [rows, ...]}."""
        values: dict[Key, torch.Tensor] = {}
        if self.row == self.flushed:
            return values
        from_blocks = {}
        for key in self.tail_block_keys:  # rows flushed .. row - 1 of the kept blocks
            pieces = [block[key][max(self.flushed - first, 0):self.row - first]
                      for first, block in self.kept if first < self.row and first + BLOCK > self.flushed]
            from_blocks[key] = torch.cat(pieces)
        self.kept = [(first, block) for first, block in self.kept if first + BLOCK > self.row]
        self.flushed = self.row
        for nid, node, feeds in self.tail:
            inputs = self.tail_inputs[nid]
            kwargs = {}
            for port, key, _ in feeds:
                if port in inputs:
                    kwargs[port] = torch.cat(inputs[port])
                    inputs[port] = []
                else:
                    kwargs[port] = from_blocks[key]
            for port, value in node.forward_steps(ctx, **kwargs).items():
                values[(nid, port)] = value
        return values

    def recorded(self) -> bool:
        """Whether this row's loss reaches a weight through the kernels on the tape."""
        return bool(self.terms)

    def learn(self, loss: torch.Tensor, clip: float) -> None:
        backward = functools.partial(self.tape.backward, self.terms, self.trainable) if self.terms else None
        optimizer_step(self.stepper, loss, self.trainable, clip, backward=backward)
