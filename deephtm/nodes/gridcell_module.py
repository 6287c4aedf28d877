"""gridcell.module: differentiable grid-cell modules that path-integrate velocity.

Module m keeps a phase on a 2-D torus: phase_m = A_m x mod 1, where x is the integrated
velocity (reset to an anchor at an episode's start) and A_m the inverse of a hexagonal
lattice basis with the module's scale s_m and orientation theta_m (both learnable). For a
fixed A_m this is exactly the step-by-step integration phase += A_m v; keeping x rather than
the phase gives exact gradients for the scales and orientations without backpropagating
through time. Each module has cells x cells units tiling its torus; a unit's activity is a
Gaussian bump of the lattice distance between its preferred phase and the module's phase
(hexagonal firing fields in space), and the 'winners' most active units of each module
form the SDR-like location code.
"""
import math

import torch
from torch import nn

from ..node import Node, require
from ..graph.spec import Param, Port

# Hexagonal lattice basis (columns): unit vectors 60 degrees apart.
HEX = torch.tensor([[1.0, 0.5], [0.0, math.sqrt(3) / 2]])


class GridCellModules(Node):
    type_name = "gridcell.module"
    category = "gridcell"
    doc = ("Several grid-cell modules (scales growing by 'scale_ratio', orientations spread over 60 "
           "degrees; both learnable). Each integrates the velocity into a phase on a 2-D torus through "
           "its 2x2 transform and emits a bump of activity over its cells x cells units; the "
           "'winners' most active units of each module form the location code.")
    inputs = (
        Port("velocity", "tensor", "displacement per step, shape [2]"),
        Port("reset", "scalar", "1: restart the integration at 'anchor' (or 0) this step", optional=True),
        Port("anchor", "tensor", "position to restart from when reset is 1, shape [2]", optional=True),
    )
    outputs = (
        Port("code", "sdr", "location code, shape [modules * cells * cells], 'winners' active per module"),
        Port("phase", "tensor", "each module's phase on its torus, shape [modules * 2], values 0..1"),
        Port("position", "tensor", "the position the phases decode to: the point of a lattice over "
             "[0, decode_side]^2 whose phases are nearest, shape [2] (what the module itself knows)"),
    )
    params = (
        Param("modules", "int", 6, "number of grid modules", min=1, max=256),
        Param("cells", "int", 10, "units along each side of a module's torus", min=2, max=256),
        Param("winners", "int", 6, "active units per module", min=1, max=65536),
        Param("scale_min", "float", 0.3, "grid spacing of the finest module, in position units", min=1e-6, max=1e6),
        Param("scale_ratio", "float", 1.4, "spacing ratio between successive modules", min=1.0, max=10.0),
        Param("bump_width", "float", 0.12, "std of a unit's bump as a fraction of its module's spacing",
              min=0.01, max=1.0),
        Param("learn_transform", "bool", True, "learn the scales and orientations by backprop"),
        Param("decode_side", "float", 1.0, "side of the square searched when decoding the phases to a "
              "position", min=1e-6, max=1e6),
        Param("decode_points", "int", 25, "points per side of the coarse lattice searched when decoding; "
              "a fine lattice around the best one makes the decoded position exact to side / (20 x this)",
              min=2, max=1000),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("velocity", "anchor"):
            s = shapes[port]
            require(s is None or tuple(s) == (2,), port, f"expected a 2-D vector, shape [2], got {list(s or [])}")
        require(shapes["velocity"] is not None, "velocity", "needs the velocity input")
        require(p["winners"] <= p["cells"] ** 2, "code",
                f"winners ({p['winners']}) exceed the {p['cells'] ** 2} units of a module")
        m, n = p["modules"], p["cells"]
        return {"code": (m * n * n,), "phase": (m * 2,), "position": (2,)}

    @classmethod
    def param_count(cls, p, shapes):
        m, n = p["modules"], p["cells"]
        return 2 * m + 2 * n * n + 4  # scales, orientations, unit phases, and a little state

    def __init__(self, p, shapes):
        super().__init__(p, shapes)
        m, n = p["modules"], p["cells"]
        log_scale = torch.log(torch.tensor([p["scale_min"] * p["scale_ratio"] ** i for i in range(m)]))
        # Orientations spread over the 60 degrees that are distinct for a hexagonal lattice.
        orientation = torch.arange(m, dtype=torch.float32) * (math.pi / 3) / m + 0.1
        if p["learn_transform"]:
            self.log_scale = nn.Parameter(log_scale)
            self.orientation = nn.Parameter(orientation)
        else:
            self.register_buffer("log_scale", log_scale)
            self.register_buffer("orientation", orientation)
        g = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        self.register_buffer("unit_phase", torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(n * n, 2))

    def setup(self, batch, generator):
        self.register_buffer("x", torch.zeros(batch, 2))  # integrated velocity (a checkpointed state)

    def transforms(self) -> torch.Tensor:
        """A_m, [modules, 2, 2]: position -> phase, the inverse of the scaled, rotated hex basis."""
        c, s = self.orientation.cos(), self.orientation.sin()
        rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [M, 2, 2]
        basis = rot @ HEX.to(rot.device) * self.log_scale.exp().view(-1, 1, 1)
        return torch.linalg.inv(basis)

    def forward(self, ctx, velocity, reset=None, anchor=None):
        x_prev = self.x
        if reset is not None:
            start = anchor.detach() if anchor is not None else torch.zeros_like(x_prev)
            x_prev = torch.where(reset.detach().reshape(-1, 1) > 0.5, start, x_prev)
        x = x_prev + velocity  # gradients reach the current velocity only
        self.x = x.detach()
        phase = torch.einsum("mij,bj->bmi", self.transforms(), x)
        phase = phase - phase.floor()  # on the torus; floor has no gradient, so d phase / d A = x
        # Offset of every unit's preferred phase, wrapped to [-0.5, 0.5), then measured in the
        # lattice's own (unit-spacing) metric so the bump is round in space.
        delta = phase.unsqueeze(2) - self.unit_phase  # [B, M, N*N, 2]
        delta = delta - delta.round()
        dist2 = (delta @ HEX.to(delta.device).T).pow(2).sum(-1)
        act = torch.exp(-dist2 / (2 * self.p["bump_width"] ** 2))
        k = self.p["winners"]
        mask = torch.zeros_like(act).scatter_(2, act.detach().topk(k, dim=2).indices, 1.0)
        code = (act * mask).flatten(1)
        return {"code": code, "phase": phase.flatten(1), "position": self.decode(phase.detach())}

    def decode(self, phase: torch.Tensor) -> torch.Tensor:
        """[B, M, 2] phases -> [B, 2] positions: the point whose phases are nearest to all modules'
        phases at once (summed squared torus distance in each module's lattice metric), searched
        on a coarse lattice over the square, then on a fine one around the best coarse point."""
        side, r = self.p["decode_side"], self.p["decode_points"]
        step = side / r
        g = (torch.arange(r, dtype=phase.dtype, device=phase.device) + 0.5) * step
        coarse = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(1, r * r, 2).expand(phase.shape[0], -1, -1)
        with torch.no_grad():
            a = self.transforms().detach()
            best = self._nearest(a, phase, coarse)
            f = torch.linspace(-step, step, 21, dtype=phase.dtype, device=phase.device)
            fine = best.unsqueeze(1) + torch.stack(torch.meshgrid(f, f, indexing="ij"), -1).reshape(1, -1, 2)
            return self._nearest(a, phase, fine)

    @staticmethod
    def _nearest(a: torch.Tensor, phase: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """The point of points [B, P, 2] whose phases (through a [M, 2, 2]) are nearest to phase [B, M, 2]."""
        d = torch.einsum("mij,bpj->bpmi", a, points) - phase.unsqueeze(1)  # [B, P, M, 2]
        d = d - d.round()
        # |HEX d|^2 written out: the quadratic form of HEX^T HEX, cheaper than a batched matmul.
        q = HEX.T @ HEX
        dist = q[0, 0] * d[..., 0] ** 2 + 2 * q[0, 1] * d[..., 0] * d[..., 1] + q[1, 1] * d[..., 1] ** 2
        idx = dist.sum(-1).argmin(1)
        return points[torch.arange(points.shape[0], device=points.device), idx]

    def scales(self) -> list[float]:
        return self.log_scale.detach().exp().tolist()


NODE = GridCellModules
