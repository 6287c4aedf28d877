"""encoder.conv: a stack of 2-D convolutions with ReLU, for image inputs."""
from torch import nn

from ..node import Node, require
from ..graph.spec import Param, Port


def conv_out_size(n: int, kernel: int, stride: int) -> int:
    """Output side of a convolution padded by kernel // 2."""
    return (n + 2 * (kernel // 2) - kernel) // stride + 1


class ConvEncoder(Node):
    type_name = "encoder.conv"
    category = "encoder"
    doc = ("Convolutions (kernel x kernel, padding kernel // 2, the given stride) with ReLU, turning an "
           "image into a feature map for the SP.")
    inputs = (Port("x", "image", "image, shape [channels, height, width]"),)
    outputs = (Port("y", "image", "feature map, shape [channels, height', width']"),)
    params = (
        Param("channels", "int", 16, "feature maps per layer", min=1, max=4096),
        Param("layers", "int", 2, "convolution layers", min=1, max=16),
        Param("kernel", "int", 3, "kernel side", min=1, max=15),
        Param("stride", "int", 2, "stride of every layer (2 halves the sides)", min=1, max=8),
    )

    @classmethod
    def out_shape(cls, p, shape):
        _, h, w = shape
        for _ in range(p["layers"]):
            h, w = conv_out_size(h, p["kernel"], p["stride"]), conv_out_size(w, p["kernel"], p["stride"])
        return p["channels"], h, w

    @classmethod
    def infer(cls, p, shapes):
        x = shapes["x"]
        require(x is not None, "x", "needs an image input")
        require(len(x) == 3, "x", f"expected an image [channels, height, width], got {list(x)}")
        return {"y": cls.out_shape(p, x)}  # padding kernel // 2 keeps every side >= 1

    @classmethod
    def param_count(cls, p, shapes):
        c_in = (shapes["x"] or (1,))[0]
        k2, c = p["kernel"] ** 2, p["channels"]
        return (c_in * k2 + 1) * c + (p["layers"] - 1) * (c * k2 + 1) * c

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        layers, c_in = [], shapes["x"][0]
        for _ in range(p["layers"]):
            layers += [nn.Conv2d(c_in, p["channels"], p["kernel"], p["stride"], p["kernel"] // 2), nn.ReLU()]
            c_in = p["channels"]
        self.net = nn.Sequential(*layers)

    def forward(self, ctx, x):
        return {"y": self.net(x)}


NODE = ConvEncoder
