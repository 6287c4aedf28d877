"""decoder.sdr_classifier: HTM's SDR classifier, learned online and honestly ahead.

A softmax over value buckets with one weight per (active input bit, bucket), as in htm.core's
SDRClassifier: it predicts 'horizon' steps ahead from the bits active now, and learns only
from what is known now (the bits of 'horizon' steps ago against the bucket of the value
observed now), so a prediction never benefits from an answer that has not arrived yet. The
value it outputs is the probability-weighted mean of each bucket's running average of the
values that fell in it (htm.core's "actual values"). No backprop.
"""
import torch

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class SDRClassifier(Node):
    type_name = "decoder.sdr_classifier"
    category = "decoder"
    doc = ("Predicts a value 'horizon' steps ahead from a sparse code (e.g. the TM's active cells): a "
           "softmax over 'buckets' value buckets in [min, max], weights per active bit and bucket, "
           "learned online from the code of 'horizon' steps ago against the value observed now. "
           "Outputs the expected value. Not trained by backprop.")
    inputs = (Port("x", "sdr", "sparse code now, any shape (flattened); only its non-zero bits count"),
              Port("observed", "tensor", "the value observed now, the answer for the code of 'horizon' "
                                         "steps ago, shape [1]"))
    outputs = (Port("y", "tensor", "the expected value 'horizon' steps ahead, shape [1]"),
               Port("probabilities", "tensor", "the probability of each bucket, shape [buckets]"))
    params = (
        Param("horizon", "int", 1, "steps ahead", min=1, max=10000),
        Param("buckets", "int", 64, "value buckets", min=2, max=4096),
        Param("min", "float", 0.0, "lower edge of the first bucket (values below fall in it)", min=-1e12, max=1e12),
        Param("max", "float", 1.0, "upper edge of the last bucket (values above fall in it)", min=-1e12, max=1e12),
        Param("rate", "float", 0.1, "learning rate of the softmax weights (htm.core's alpha)", min=1e-6, max=10.0),
        Param("bias", "bool", True, "add an always-active bit: it learns the overall distribution of "
              "values at once, a prior that rarely seen bits then adjust"),
        Param("value_rate", "float", 0.1, "moving-average rate of each bucket's value", min=1e-6, max=1.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        require(p["max"] > p["min"], "x", f"max ({p['max']}) must exceed min ({p['min']})")
        o = shapes["observed"]
        require(o is None or flat_size(o) == 1, "observed", f"expected shape [1], got {list(o or [])}")
        return {"y": (1,), "probabilities": (p["buckets"],)}

    @classmethod
    def stream_state_count(cls, p, shapes):
        # Each stream learns its own weights and keeps its own pending codes.
        n = flat_size(shapes["x"] or (1,))
        n += int(p["bias"])
        return n * p["buckets"] + 2 * p["buckets"] + p["horizon"] * n

    def setup(self, batch, generator):
        p = self.p
        n = flat_size(self.in_shapes["x"]) + int(p["bias"])
        self.register_buffer("W", torch.zeros(batch, n, p["buckets"]))
        width = (p["max"] - p["min"]) / p["buckets"]
        centres = p["min"] + width * (torch.arange(p["buckets"], dtype=torch.float64) + 0.5)
        self.register_buffer("bucket_value", centres.repeat(batch, 1))
        # The codes of the last 'horizon' steps, kept as bits: the answers for them arrive later.
        self.register_buffer("past", torch.zeros(p["horizon"], batch, n, dtype=torch.bool))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def probabilities(self, bits: torch.Tensor) -> torch.Tensor:
        """Softmax of the summed weights of each stream's active bits: [B, buckets]."""
        b_idx, i_idx = bits.nonzero(as_tuple=True)  # gathers only the active rows
        logits = self.W.new_zeros(bits.shape[0], self.W.shape[2]).index_add_(0, b_idx, self.W[b_idx, i_idx])
        return torch.softmax(logits, dim=1)

    def forward(self, ctx, x, observed):
        h = self.p["horizon"]
        bits = x.detach().flatten(1) != 0
        if self.p["bias"]:
            bits = torch.cat([bits, bits.new_ones(bits.shape[0], 1)], dim=1)
        slot = int(self.seen) % h
        if int(self.seen) >= h:
            self.learn(self.past[slot], observed.detach().reshape(-1).double())
        self.past[slot] = bits
        self.seen += 1
        prob = self.probabilities(bits)
        y = (prob.double() * self.bucket_value).sum(1, keepdim=True)
        return {"y": y.to(x.dtype), "probabilities": prob.to(x.dtype)}

    @torch.no_grad()
    def learn(self, bits: torch.Tensor, value: torch.Tensor) -> None:
        """W += rate * (onehot(bucket) - softmax) on the rows of the active bits; the bucket's
        value moves towards the observed one."""
        p = self.p
        width = (p["max"] - p["min"]) / p["buckets"]
        bucket = ((value - p["min"]) / width).floor().long().clamp(0, p["buckets"] - 1)  # [B]
        rows = torch.arange(bits.shape[0], device=bits.device)
        old = self.bucket_value[rows, bucket]
        self.bucket_value[rows, bucket] = old + p["value_rate"] * (value - old)
        err = -self.probabilities(bits)
        err[rows, bucket] += 1.0
        b_idx, i_idx = bits.nonzero(as_tuple=True)
        self.W.index_put_((b_idx, i_idx), p["rate"] * err[b_idx], accumulate=True)


NODE = SDRClassifier
