"""decoder.rls: a linear readout learned online by recursive least squares, honestly ahead.

It predicts 'horizon' steps ahead from the features of now, and learns only from what is
known now: the features of 'horizon' steps ago against the value observed now. So a
prediction never benefits from an answer that has not arrived yet. No backprop: RLS is
exact least squares with exponential forgetting, updated in O(features^2) per step.
"""
import torch

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port

MAX_FEATURES = 4096  # P is features x features per stream


class RLSDecoder(Node):
    type_name = "decoder.rls"
    category = "decoder"
    doc = ("Linear readout y = W x (+ bias) fitted online by recursive least squares with forgetting. "
           "Learns from the features of 'horizon' steps ago against 'observed' (the value now), then "
           "predicts 'horizon' steps ahead. Not trained by backprop.")
    inputs = (Port("x", "tensor", "features now, any shape (flattened); sparse codes are cheap"),
              Port("observed", "tensor", "the value observed now, the answer for the features of "
                                         "'horizon' steps ago, shape [outputs]"))
    outputs = (Port("y", "tensor", "the prediction for 'horizon' steps ahead, shape [outputs]"),)
    params = (
        Param("horizon", "int", 1, "steps ahead", min=1, max=10000),
        Param("outputs", "int", 1, "values predicted", min=1, max=4096),
        Param("forgetting", "float", 0.9995, "RLS forgetting factor (1: remember everything)",
              min=0.9, max=1.0),
        Param("delta", "float", 1.0, "initial P = delta * I (larger: faster first fits)", min=1e-6, max=1e6),
        Param("bias", "bool", True, "add a constant feature"),
        Param("method", "str", "rls", "rls: exact recursive least squares, O(features^2) a step; nlms: "
              "normalized least mean squares, O(active features) a step (for large sparse codes such as "
              "TM cells)", choices=("rls", "nlms")),
        Param("rate", "float", 0.1, "nlms: step size (0..2; 1 fits the newest example exactly)", min=1e-6, max=2.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        d = flat_size(shapes["x"] or (1,)) + int(p["bias"])
        require(d <= MAX_FEATURES, "x", f"{d} features exceed the {MAX_FEATURES} an RLS readout allows")
        o = shapes["observed"]
        require(o is None or flat_size(o) == p["outputs"], "observed",
                f"expected {p['outputs']} values, got shape {list(o)}" if o is not None else "")
        return {"y": (p["outputs"],)}

    @classmethod
    def stream_state_count(cls, p, shapes):
        # Every stream has its own weights, P matrix and pending inputs.
        d = flat_size(shapes["x"] or (1,)) + int(p["bias"])
        return (d * d if p["method"] == "rls" else 0) + d * p["outputs"] + (p["horizon"] + 1) * d

    def setup(self, batch, generator):
        p = self.p
        d = flat_size(self.in_shapes["x"]) + int(p["bias"])
        # float64: P is updated thousands of times with forgetting; float32 drifts.
        self.register_buffer("W", torch.zeros(batch, d, p["outputs"], dtype=torch.float64))
        if p["method"] == "rls":
            self.register_buffer("P", torch.eye(d, dtype=torch.float64).repeat(batch, 1, 1) * p["delta"])
        self.register_buffer("past", torch.zeros(p["horizon"], batch, d, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def features(self, x):
        f = x.detach().flatten(1).double()
        if self.p["bias"]:
            f = torch.cat([f, f.new_ones(f.shape[0], 1)], dim=1)
        return f

    def forward(self, ctx, x, observed):
        h = self.p["horizon"]
        f_now = self.features(x)
        slot = int(self.seen) % h
        if int(self.seen) >= h:
            update = self.update if self.p["method"] == "rls" else self.update_nlms
            update(self.past[slot], observed.detach().flatten(1).double())
        self.past[slot] = f_now
        self.seen += 1
        y = torch.bmm(f_now.unsqueeze(1), self.W).squeeze(1)
        return {"y": y.to(x.dtype)}

    @torch.no_grad()
    def update_nlms(self, f, target):
        """W += rate * f e' / |f|^2, touching only the rows of the active features."""
        b_idx, i_idx = f.nonzero(as_tuple=True)
        if b_idx.numel() == 0:
            return
        err = target - torch.bmm(f.unsqueeze(1), self.W).squeeze(1)  # [B, outputs]
        norm = f.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
        step = self.p["rate"] * err / norm  # [B, outputs]
        self.W.index_put_((b_idx, i_idx), f[b_idx, i_idx].unsqueeze(1) * step[b_idx], accumulate=True)

    @torch.no_grad()
    def update(self, f, target):
        """One RLS step per stream: gain k = P f / (lam + f' P f); W += k e'; P = (P - k f' P) / lam."""
        lam = self.p["forgetting"]
        Pf = self.p_times(f)  # [B, d] (P is symmetric)
        k = Pf / (lam + (f * Pf).sum(1, keepdim=True))
        err = target - torch.bmm(f.unsqueeze(1), self.W).squeeze(1)  # [B, outputs]
        self.W += k.unsqueeze(2) * err.unsqueeze(1)
        # The rank-1 downdate and the forgetting in one pass over P, without a d x d temporary:
        # P is by far the largest thing a step touches.
        self.P.baddbmm_(k.unsqueeze(2), Pf.unsqueeze(1), beta=1 / lam, alpha=-1 / lam)
        if int(self.seen) % 256 == 0:  # keep P symmetric against rounding
            self.P.copy_((self.P + self.P.transpose(1, 2)) / 2)

    def p_times(self, f):
        """P f. A sparse code (such as TM cells) needs only the columns of its active features."""
        if f.shape[0] == 1:
            active = f[0].nonzero().squeeze(1)
            if active.numel() * 4 < f.shape[1]:
                return (self.P[0].index_select(1, active) @ f[0, active]).unsqueeze(0)
        return torch.bmm(self.P, f.unsqueeze(2)).squeeze(2)


NODE = RLSDecoder
