"""decoder.mlp: a ReLU hidden layer then a linear readout."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..node import Node, lr_scale_param, flat_size
from ..graph.spec import Param, Port
from ..kernels.grad_hints import nonzero_at
from ..kernels.mlp import SparseInputMLP, sparse_rows_grad_w, sparse_rows_grad_x, use_fused
from ..kernels.tape import apply, recording_tape


class MLPDecoder(Node):
    type_name = "decoder.mlp"
    fused = True  # forward and backward as one autograd node (False: the layers through autograd)
    category = "decoder"
    doc = "Reads a code (e.g. the TM's cells) and predicts values: hidden ReLU layers, then linear."
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("y", "tensor", "prediction, shape [outputs]"),)
    params = (
        Param("hidden", "int", 256, "units in each hidden ReLU layer", min=1, max=65536),
        Param("layers", "int", 1, "hidden layers (0: a linear readout)", min=0, max=64),
        Param("outputs", "int", 1, "output size", min=1, max=65536),
        lr_scale_param(),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"y": (p["outputs"],)}

    @classmethod
    def param_count(cls, p, shapes):
        n, total = flat_size(shapes["x"] or (1,)), 0
        for _ in range(p["layers"]):
            total += (n + 1) * p["hidden"]
            n = p["hidden"]
        return total + (n + 1) * p["outputs"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        sizes = [flat_size(shapes["x"])] + [p["hidden"]] * p["layers"] + [p["outputs"]]
        # The first layer often reads an SDR (the TM's cells): it gathers the active rows.
        layers = [SparseInputLinear(sizes[0], sizes[1])]
        for n_in, n_out in zip(sizes[1:-1], sizes[2:]):
            layers += [nn.ReLU(), nn.Linear(n_in, n_out)]
        self.net = nn.Sequential(*layers)

    def hand_backward(self):
        return True

    def forward(self, ctx, x):
        x = x.flatten(1)  # the same tensor when x is [batch, n]: its grad_support stays
        if not ((self.fused or recording_tape() is not None) and use_fused(x)):
            return {"y": self.net(x)}
        first = self.net[0]
        b_idx, i_idx = first.active_entries(x)
        rest = [t for layer in self.net[2::2] for t in (layer.weight, layer.bias)]
        return {"y": apply(SparseInputMLP, x, b_idx, i_idx, getattr(x, "grad_support", None),
                           first.weight, first.bias, *rest)}


class SparseInputLinear(nn.Module):
    """A linear layer for inputs that are mostly zero (an SDR: a few of thousands of cells).
    The weight is stored input-major, [in, out], so the forward pass sums the rows of the
    active inputs (an embedding bag) and the weight's gradient is row-sparse: the optimizer
    then updates only those rows. The input still gets its full gradient (a TM's soft
    winners need it for the cells that did not fire), unless the input carries a
    `grad_support` attribute: the flat indices into [batch, n] outside which its producer
    ignores the gradient (htm.tm with fan-out sets it); then only those entries are
    computed. Dense inputs take a plain matmul."""

    DENSE_ABOVE = 0.1  # fraction of non-zero inputs above which a matmul is cheaper

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        bound = 1 / math.sqrt(n_in)  # torch's nn.Linear initialization
        self.weight = nn.Parameter(torch.empty(n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound))

    def active_entries(self, x):
        """(stream, input) indices of the non-zero entries of x, or (None, None) when there are
        so many that a plain matmul is cheaper."""
        b_idx, i_idx = nonzero_at(x)
        if i_idx.numel() > self.DENSE_ABOVE * x.numel():
            return None, None
        return b_idx, i_idx

    def forward(self, x):
        b_idx, i_idx = self.active_entries(x)
        if i_idx is None:
            return torch.addmm(self.bias, x, self.weight)
        support = getattr(x, "grad_support", None)
        return _SparseRowsMatmul.apply(x, self.weight, b_idx, i_idx, support) + self.bias


class _SparseRowsMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, b_idx, i_idx, support=None):
        vals = x[b_idx, i_idx].to(weight.dtype)  # under autocast x may be bf16
        offsets = torch.searchsorted(b_idx, torch.arange(x.shape[0], device=x.device))
        ctx.x_dtype, ctx.x_shape = x.dtype, x.shape
        ctx.save_for_backward(weight, b_idx, i_idx, vals, support)
        return F.embedding_bag(i_idx, weight, offsets, mode="sum", per_sample_weights=vals)

    @staticmethod
    def backward(ctx, grad_y):
        weight, b_idx, i_idx, vals, support = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = sparse_rows_grad_x(grad_y, weight, ctx.x_shape, ctx.x_dtype, support)
        if ctx.needs_input_grad[1]:
            grad_w = sparse_rows_grad_w(grad_y, weight, b_idx, i_idx, vals)
        return grad_x, grad_w, None, None, None


NODE = MLPDecoder
