"""decoder.deconv: a linear map onto a small feature map, then transposed convolutions that
double its sides, up to an image of the requested size."""
import math

import torch
from torch import nn

from ..node import Node, flat_size, require
from ..graph.spec import Param, Port


class DeconvDecoder(Node):
    type_name = "decoder.deconv"
    category = "decoder"
    doc = ("Reads a code (e.g. the TM's cells) and generates an image: linear onto a [channels, "
           "height/2^layers, width/2^layers] map, then 'layers' transposed convolutions (each doubling "
           "the sides, ReLU between them), cropped to height x width.")
    inputs = (Port("x", "tensor", "input code, any shape (flattened)"),)
    outputs = (Port("y", "image", "generated image, shape [out_channels, height, width]"),)
    params = (
        Param("out_channels", "int", 1, "channels of the generated image", min=1, max=64),
        Param("height", "int", 8, "height of the generated image", min=1, max=4096),
        Param("width", "int", 8, "width of the generated image", min=1, max=4096),
        Param("channels", "int", 16, "feature maps of the hidden layers", min=1, max=4096),
        Param("layers", "int", 2, "transposed convolutions (each doubles the sides)", min=1, max=10),
        Param("output", "str", "sigmoid", "squash the pixels into 0..1, or leave them linear",
              choices=("sigmoid", "linear")),
    )

    @classmethod
    def seed_size(cls, p):
        f = 2 ** p["layers"]
        return math.ceil(p["height"] / f), math.ceil(p["width"] / f)

    @classmethod
    def infer(cls, p, shapes):
        x = shapes["x"]
        require(x is None or flat_size(x) >= 1, "x", "needs at least one feature")
        return {"y": (p["out_channels"], p["height"], p["width"])}

    @classmethod
    def param_count(cls, p, shapes):
        n = flat_size(shapes["x"] or (1,))
        h0, w0 = cls.seed_size(p)
        c = p["channels"]
        return (n + 1) * c * h0 * w0 + (p["layers"] - 1) * (c * 16 + 1) * c + (c * 16 + 1) * p["out_channels"]

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        self.h0, self.w0 = self.seed_size(p)
        c = p["channels"]
        self.seed = nn.Linear(flat_size(shapes["x"]), c * self.h0 * self.w0)
        layers = []
        for i in range(p["layers"]):
            last = i == p["layers"] - 1
            layers.append(nn.ConvTranspose2d(c, p["out_channels"] if last else c, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, ctx, x):
        h = torch.relu(self.seed(x.flatten(1))).view(-1, self.p["channels"], self.h0, self.w0)
        y = self.net(h)[:, :, : self.p["height"], : self.p["width"]]
        if self.p["output"] == "sigmoid":
            y = torch.sigmoid(y)
        return {"y": y}


NODE = DeconvDecoder
