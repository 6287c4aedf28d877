"""source.sine: a sine wave in [-amplitude, amplitude], one sample per step."""
import math

import torch

from ..node import Node
from ..graph.spec import Param, Port


class SineSource(Node):
    type_name = "source.sine"
    category = "source"
    doc = "A sine wave; 'target' is the value 'horizon' steps ahead."
    inputs = ()
    outputs = (Port("value", "tensor", "the current value, shape [1]"),
               Port("target", "tensor", "the value horizon steps ahead, shape [1]"))
    params = (
        Param("step_size", "float", 0.25, "radians advanced per step", min=1e-6, max=math.pi),
        Param("amplitude", "float", 1.0, "peak value", min=1e-6, max=1e6),
        Param("horizon", "int", 1, "how many steps ahead 'target' is", min=0, max=10000),
        Param("noise", "float", 0.0, "std of Gaussian noise added to 'value'", min=0.0, max=1e6),
        Param("random_phase", "bool", True, "each stream starts at a random phase"),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"value": (1,), "target": (1,)}

    def setup(self, batch, generator):
        phase = torch.rand(batch, 1, generator=generator) * 2 * math.pi if self.p["random_phase"] \
            else torch.zeros(batch, 1)
        self.register_buffer("phase", phase)

    def hand_backward(self):
        return True  # no weights, no inputs

    def forward(self, ctx):
        p = self.p
        t = self.phase + ctx.step * p["step_size"]
        value = p["amplitude"] * torch.sin(t)
        if p["noise"] > 0:
            value = value + p["noise"] * torch.randn(value.shape, generator=ctx.generator).to(value.device)
        target = p["amplitude"] * torch.sin(t + p["horizon"] * p["step_size"])
        return {"value": value, "target": target}


NODE = SineSource
