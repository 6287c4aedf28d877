"""Data-parallel training under torchrun: each process (rank) trains its share of the
streams, and before every optimizer step the gradients are averaged over the ranks, as
DistributedDataParallel does. The reduction is written out instead of wrapping the graph in
DDP because a graph runs one time step per call (not one forward()) and its HTM weights
have sparse row gradients: those are summed sparse (gloo) instead of as n x n dense arrays.

With the graph's batch_size B split as B / world streams per rank, and every loss a mean
over streams, N steps on W ranks give the weights of N steps of one process with batch B.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import TrainingError


class DataParallel:
    def __init__(self, backend: str | None = None):
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise TrainingError("--distributed needs torchrun (RANK and WORLD_SIZE are not set), e.g. "
                                "torchrun --nproc-per-node 2 -m deephtm train GRAPH --distributed")
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(self.local_rank)  # "cuda" then means this rank's GPU
        self.backend = backend or ("nccl" if cuda else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(self.backend)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.shared_buffers: list[torch.Tensor] = []

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch: int) -> int:
        if batch % self.world:
            raise TrainingError(f"batch_size {batch} does not split evenly over {self.world} processes",
                                where="training: 'batch_size'")
        return batch // self.world

    def setup(self, model, batch: int, generator: torch.Generator) -> None:
        """Set the model up for the whole batch, then keep this rank's streams: every buffer
        a node's setup() registers with the batch as its first dimension (phases, offsets)
        is cut to this rank's rows, so the ranks together run exactly the streams of one
        process with the whole batch."""
        for nid, node in model.nodes.items():
            problem = node.data_parallel_problem()
            if problem:
                raise TrainingError(f"node '{nid}' cannot train with --distributed: {problem}")
        before = {name for name, _ in model.named_buffers()}
        model.setup(batch, generator)
        share = self.local_batch(batch)
        lo = self.rank * share
        for name, buf in list(model.named_buffers()):
            if name in before or buf.dim() == 0 or buf.shape[0] != batch:
                continue
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            owner.register_buffer(attr, buf[lo:lo + share].clone())
        model.batch = share
        model.reset_delayed()
        per_stream = {name for name in dict(model.named_buffers()) if name not in before}
        # Running statistics (e.g. the SP's duty cycles) are averaged like gradients;
        # metric nodes keep their own rank's scores.
        metric_prefixes = tuple(f"nodes.{nid}." for nid in model.metric_ids)
        self.shared_names = [n for n, b in model.named_buffers()
                             if n not in per_stream and b.is_floating_point() and not n.startswith(metric_prefixes)]

    def broadcast_weights(self, model) -> None:
        """Start every rank from rank 0's weights (they are equal with the same seed; this
        makes sure). Buffers are not sent: some hold this rank's own streams."""
        for t in model.parameters():
            dist.broadcast(t.data, src=0)

    def average_gradients(self, model) -> None:
        """Average gradients (and shared running statistics) over the ranks."""
        params = list(model.parameters())
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8)
        if self.backend == "nccl":
            has = has.cuda()
        dist.all_reduce(has, op=dist.ReduceOp.MAX)  # a weight with a gradient on any rank gets one everywhere
        has = has.tolist()
        dense, sparse = [], []
        for p, h in zip(params, has):
            if not h:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if p.grad.is_sparse and self.backend == "gloo":
                sparse.append(p)
            else:
                if p.grad.is_sparse:
                    p.grad = p.grad.to_dense()
                dense.append(p)
        buffers = dict(model.named_buffers())
        shared = [buffers[n] for n in self.shared_names]
        flat_parts = [p.grad.reshape(-1) for p in dense] + [b.reshape(-1) for b in shared]
        if flat_parts:
            flat = torch.cat(flat_parts)
            dist.all_reduce(flat)
            flat.div_(self.world)
            offset = 0
            for t in [p.grad for p in dense] + shared:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t))
                offset += n
        for p in sparse:
            g = p.grad.coalesce()
            dist.all_reduce(g)
            p.grad = (g / self.world).coalesce()

    def close(self, finished: bool = True) -> None:
        """Tear the process group down. After a finished run every rank first waits for the
        others: a rank that destroyed its gloo group while rank 0 was still writing the run
        directory aborted at exit ("terminate called without an active exception", about
        1 run in 10). After a failure there is no wait: the other ranks may never arrive,
        and torchrun stops them when this one exits."""
        if dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
