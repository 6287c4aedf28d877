"""Node types that fail while training, for the run panel's error tests. A module of their own
(no Qt), so that a training process can import them again: the panel names them to it."""
import torch

from deephtm.graph import registry
from deephtm.node import Node
from deephtm.graph.spec import Param, Port


class NaNAfter(Node):
    """A loss that turns NaN after a given step (for the failure test)."""
    type_name = "test.nan_after"
    category = "loss"
    is_loss = True
    inputs = (Port("x", "tensor", "anything"),)
    outputs = (Port("loss", "loss", "mean square of x, NaN from 'after' on"),)
    params = (Param("after", "int", 30, "first NaN step", min=0, max=10**6),)

    @classmethod
    def infer(cls, p, shapes):
        return {"loss": ()}

    def forward(self, ctx, x):
        loss = x.pow(2).mean()
        return {"loss": loss * float("nan") if ctx.step >= self.p["after"] else loss}


class ShapeFailAfter(NaNAfter):
    """Multiplies by a wrongly shaped matrix from 'after' on: torch raises a RuntimeError."""
    type_name = "test.shape_fail_after"

    def forward(self, ctx, x):
        if ctx.step >= self.p["after"]:
            x = x @ torch.ones(7, 3)
        return {"loss": x.pow(2).mean()}


class OOMAfter(NaNAfter):
    """Raises what torch raises when CUDA runs out of memory, from 'after' on (no GPU needed)."""
    type_name = "test.oom_after"

    def forward(self, ctx, x):
        if ctx.step >= self.p["after"]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return {"loss": x.pow(2).mean()}


FAILING = (NaNAfter, ShapeFailAfter, OOMAfter)


def register_failing():
    for cls in FAILING:
        registry.register(cls)


def unregister_failing():
    for cls in FAILING:
        registry.types().pop(cls.type_name, None)
