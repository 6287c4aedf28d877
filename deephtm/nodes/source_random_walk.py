"""source.random_walk: an agent wandering in a square arena, for path integration.

Each episode starts at a random place (or the centre) and runs 'steps' moves; the heading
turns by a random angle each step and the speed varies around its mean. A move that would
leave the arena is reflected off the wall, and 'velocity' is always the displacement that
really happened, so integrating it reproduces the position exactly.
"""
import math

import torch

from ..node import Node
from ..graph.spec import Param, Port


class RandomWalk(Node):
    type_name = "source.random_walk"
    category = "source"
    doc = ("A 2-D agent in a square arena [0, side]^2: per step its velocity (the displacement) and "
           "position. Episodes of 'steps' moves; the first step of an episode has zero velocity, sets "
           "'reset' and gives the start position (to anchor a path integrator).")
    inputs = ()
    outputs = (
        Port("velocity", "tensor", "displacement since the previous step, shape [2] (0 at an episode's start)"),
        Port("position", "tensor", "position in the arena, shape [2]"),
        Port("start", "tensor", "position at the start of this episode, shape [2]"),
        Port("reset", "scalar", "1 on the first step of an episode, else 0"),
        Port("last", "scalar", "1 on the episode's last step (after 'steps' moves), else 0"),
        Port("moves", "tensor", "moves made since the episode started, shape [1]"),
    )
    params = (
        Param("side", "float", 1.0, "side of the square arena", min=1e-6, max=1e6),
        Param("speed", "float", 0.03, "mean distance per step, in units of the side", min=0.0, max=1.0),
        Param("turn_std", "float", 0.5, "std of the heading change per step, radians", min=0.0, max=10.0),
        Param("steps", "int", 100, "moves per episode (0: one endless walk)", min=0, max=10**9),
        Param("start_at", "str", "random", "where episodes start", choices=("random", "centre")),
        Param("velocity_noise", "float", 0.0, "std of the Gaussian noise added to each component of the "
              "reported velocity, in units of the side (the position stays true)", min=0.0, max=1.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"velocity": (2,), "position": (2,), "start": (2,), "reset": (), "last": (), "moves": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 6

    def setup(self, batch, generator):
        # Per stream: position (2), heading, moves made, episode start (2). Buffers, so a
        # checkpoint holds the walk.
        self.register_buffer("pos", torch.zeros(batch, 2))
        self.register_buffer("heading", torch.zeros(batch))
        self.register_buffer("moves_made", torch.full((batch,), -1.0))  # -1: no episode begun yet
        self.register_buffer("origin", torch.zeros(batch, 2))

    def forward(self, ctx):
        p, side = self.p, self.p["side"]
        B, g, dev = self.pos.shape[0], ctx.generator, self.pos.device
        new_episode = (self.moves_made < 0) | ((self.moves_made >= p["steps"]) & (p["steps"] > 0))
        if p["start_at"] == "random":
            fresh = torch.rand(B, 2, generator=g).to(dev) * side
        else:
            fresh = torch.full((B, 2), side / 2, device=dev)
        fresh_heading = (torch.rand(B, generator=g) * 2 * math.pi).to(dev)
        turn = (torch.randn(B, generator=g) * p["turn_std"]).to(dev)
        speed = (torch.rand(B, generator=g) * 2 * p["speed"] * side).to(dev)  # mean 'speed'
        heading = self.heading + turn
        step = torch.stack([heading.cos(), heading.sin()], 1) * speed.unsqueeze(1)
        target = self.pos + step
        # Reflect off the walls (a step is far shorter than the side, so once is enough).
        target = torch.where(target < 0, -target, target)
        target = torch.where(target > side, 2 * side - target, target)
        target = target.clamp(0, side)
        hit = (self.pos + step != target)
        heading = torch.where(hit[:, 0], math.pi - heading, heading)
        heading = torch.where(hit[:, 1], -heading, heading)
        ne = new_episode.unsqueeze(1)
        pos = torch.where(ne, fresh, target)
        velocity = torch.where(ne, torch.zeros_like(step), target - self.pos)
        self.heading = torch.where(new_episode, fresh_heading, heading)
        self.moves_made = torch.where(new_episode, torch.zeros_like(self.moves_made), self.moves_made + 1)
        self.origin = torch.where(ne, fresh, self.origin)
        self.pos = pos
        last = (self.moves_made == p["steps"]) & (p["steps"] > 0)
        if p["velocity_noise"] > 0:  # a noisy odometer: each move is sensed with an error
            noise = torch.randn(B, 2, generator=g).to(dev) * (p["velocity_noise"] * side)
            velocity = velocity + torch.where(ne, torch.zeros_like(noise), noise)
        return {"velocity": velocity, "position": pos.clone(), "start": self.origin.clone(),
                "reset": new_episode.float(), "last": last.float(), "moves": self.moves_made.unsqueeze(1).clone()}


NODE = RandomWalk
