"""source.objects: a sensor touching objects that are sets of features at locations.

Each object puts one of 'features' features on each of 'points' of the L x L locations of
its own frame. Features are drawn from a small pool, so every feature occurs on many
objects (and often at the same location): one touch rarely identifies an object. An
episode picks an object and touches 'touches' of its points in random order (without
repeating one before all are touched); between touches the sensor moves, and 'velocity'
is that movement in the object's frame.
"""
import numpy as np
import torch

from ..errors import GraphError, node_where
from ..node import Node
from ..graph.spec import Param, Port


def object_table(p: dict, node_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The objects of these params: (locations [objects, points] as indices into the L x L grid,
    features [objects, points]). A pure function of the params, so a baseline given the same
    params knows the same objects."""
    rng = np.random.default_rng(p["seed"])
    L = p["grid"]
    table = []  # per object: (locations [points], features [points])
    seen = set()
    for _ in range(p["objects"]):
        for _attempt in range(1000):  # objects must differ, or none could be told apart
            locs = np.sort(rng.choice(L * L, p["points"], replace=False))
            feats = rng.integers(p["features"], size=p["points"])
            key = (tuple(locs), tuple(feats))
            if key not in seen:
                break
        else:
            raise GraphError("cannot draw distinct objects: raise points, grid or features",
                             where=node_where(node_id, param="objects"))
        seen.add(key)
        table.append((locs, feats))
    return torch.tensor(np.stack([t[0] for t in table])), torch.tensor(np.stack([t[1] for t in table]))


class ObjectsSource(Node):
    type_name = "source.objects"
    category = "source"
    doc = ("Sensorimotor objects: each is 'points' features (from a pool of 'features', shared between "
           "objects) at locations of an L x L grid. Episodes of 'touches' touches on one object; outputs "
           "the sensed feature, the movement since the last touch, the location, the object's identity "
           "and the touch count.")
    inputs = ()
    outputs = (
        Port("feature", "tensor", "the sensed feature, one-hot, shape [features]"),
        Port("velocity", "tensor", "movement of the sensor since the previous touch, shape [2] (0 on the first)"),
        Port("location", "tensor", "the touched location in the object's frame, shape [2]"),
        Port("start", "tensor", "location of the episode's first touch, shape [2]"),
        Port("reset", "scalar", "1 on an episode's first touch, else 0"),
        Port("object", "tensor", "the object's index, shape [1]"),
        Port("touch", "tensor", "touches so far in this episode, this one included, shape [1]"),
    )
    params = (
        Param("objects", "int", 10, "number of objects", min=2, max=100000),
        Param("grid", "int", 4, "locations per side of an object (L)", min=1, max=64),
        Param("points", "int", 10, "features on each object (at distinct locations)", min=1, max=4096),
        Param("features", "int", 5, "size of the feature pool (smaller: more sharing)", min=1, max=4096),
        Param("spacing", "float", 0.25, "distance between neighbouring locations", min=1e-6, max=1e6),
        Param("touches", "int", 10, "touches per episode", min=1, max=100000),
        Param("seed", "int", 0, "seed of the objects (the run's seed draws the episodes)", min=0, max=2**31 - 1),
        Param("velocity_noise", "float", 0.0, "std of the Gaussian noise added to each component of the "
              "reported movement, in units of 'spacing' (the location stays true)", min=0.0, max=100.0),
        Param("feature_noise", "float", 0.0, "probability that the sensed feature is replaced by one drawn "
              "uniformly from the pool", min=0.0, max=1.0),
    )

    @classmethod
    def infer(cls, p, shapes):
        if p["points"] > p["grid"] ** 2:
            raise GraphError(f"points ({p['points']}) exceed the {p['grid'] ** 2} locations of a "
                             f"{p['grid']}x{p['grid']} object", param="points")
        f = p["features"]
        return {"feature": (f,), "velocity": (2,), "location": (2,), "start": (2,), "reset": (),
                "object": (1,), "touch": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 2 * p["objects"] * p["points"] + 8

    def setup(self, batch, generator):
        p = self.p
        self.locs, self.feats = object_table(p, getattr(self, "node_id", "?"))
        # Per stream: the object, the order of its points, and the touches made (buffers: checkpointed).
        self.register_buffer("obj", torch.zeros(batch, dtype=torch.long))
        self.register_buffer("order", torch.zeros(batch, p["touches"], dtype=torch.long))
        self.register_buffer("made", torch.full((batch,), p["touches"], dtype=torch.long))

    def _xy(self, loc: torch.Tensor) -> torch.Tensor:
        L, s = self.p["grid"], self.p["spacing"]
        return torch.stack([loc // L, loc % L], -1).float() * s

    def forward(self, ctx):
        p, B, g = self.p, self.obj.shape[0], ctx.generator
        fresh = self.made >= p["touches"]
        if bool(fresh.any()):
            n = int(fresh.sum())
            self.obj[fresh] = torch.randint(p["objects"], (n,), generator=g).to(self.obj.device)
            # Touch order: permutations of the points, concatenated until 'touches' long.
            reps = -(-p["touches"] // p["points"])
            perms = torch.cat([torch.rand(n, p["points"], generator=g).argsort(1) for _ in range(reps)], 1)
            self.order[fresh] = perms[:, : p["touches"]].to(self.order.device)
            self.made[fresh] = 0
        rows = torch.arange(B, device=self.obj.device)
        locs, feats = self.locs.to(self.obj.device), self.feats.to(self.obj.device)
        idx_now = self.order[rows, self.made]
        idx_prev = self.order[rows, (self.made - 1).clamp_min(0)]
        loc_now = self._xy(locs[self.obj, idx_now])
        loc_prev = self._xy(locs[self.obj, idx_prev])
        first = self.made == 0
        start = self._xy(locs[self.obj, self.order[:, 0]])
        sensed = feats[self.obj, idx_now]
        velocity = loc_now - loc_prev
        if p["feature_noise"] > 0:  # a noisy sensor: sometimes it reports any feature of the pool
            swap = torch.rand(B, generator=g).to(sensed.device) < p["feature_noise"]
            other = torch.randint(p["features"], (B,), generator=g).to(sensed.device)
            sensed = torch.where(swap, other, sensed)
        if p["velocity_noise"] > 0:  # a noisy sense of the movement, zero on the first touch
            noise = torch.randn(B, 2, generator=g).to(velocity.device) * (p["velocity_noise"] * p["spacing"])
            velocity = velocity + torch.where(first.unsqueeze(1), torch.zeros_like(noise), noise)
        feature = torch.nn.functional.one_hot(sensed, p["features"]).float()
        self.made = self.made + 1
        return {"feature": feature, "velocity": velocity, "location": loc_now, "start": start,
                "reset": first.float(), "object": self.obj.float().unsqueeze(1),
                "touch": self.made.float().unsqueeze(1)}


NODE = ObjectsSource
