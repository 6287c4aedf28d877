"""baseline.bayes_objects: the object posterior an ideal observer computes from the same senses.

Given the objects (the same params as source.objects, so the same table), the start location of
an episode, the noisy sensed features and the noisy movements, it filters a belief over
(object, touched point): the first touch is at 'start'; each movement from point i to point j
is Gaussian around their true displacement; a feature is the point's own with probability
1 - feature_noise, else any of the pool. Its accuracy is the ceiling a learned model can reach
on that information. One approximation: the next point is taken as uniform over the object's
other points, where the source in fact avoids points touched earlier in the episode.
"""
import torch

from ..node import Node, require
from ..graph.spec import Port
from .source_objects import ObjectsSource, object_table


class BayesObjects(Node):
    type_name = "baseline.bayes_objects"
    category = "baseline"
    doc = ("Bayes posterior over source.objects's objects from the start location, the sensed features "
           "and the sensed movements of an episode (give it the source's params). Outputs the log "
           "posterior and the most probable object.")
    inputs = (
        Port("feature", "tensor", "the sensed feature, one-hot, shape [features]"),
        Port("velocity", "tensor", "the sensed movement since the previous touch, shape [2]"),
        Port("start", "tensor", "location of the episode's first touch, shape [2]"),
        Port("reset", "scalar", "1 on an episode's first touch"),
    )
    outputs = (Port("logits", "tensor", "log posterior over the objects, shape [objects]"),
               Port("class", "tensor", "the most probable object, shape [1]"))
    params = tuple(q for q in ObjectsSource.params if q.name != "touches")

    @classmethod
    def infer(cls, p, shapes):
        f = shapes["feature"]
        require(f is None or tuple(f) == (p["features"],), "feature",
                f"expected shape [{p['features']}] (the 'features' param), got {list(f or [])}")
        for port in ("velocity", "start"):
            s = shapes[port]
            require(s is None or tuple(s) == (2,), port, f"expected shape [2], got {list(s or [])}")
        return {"logits": (p["objects"],), "class": (1,)}

    @classmethod
    def param_count(cls, p, shapes):
        return 3 * p["objects"] * p["points"]

    @classmethod
    def stream_state_count(cls, p, shapes):
        return p["objects"] * p["points"]  # each stream's belief over (object, point)

    def setup(self, batch, generator):
        p = self.p
        locs, feats = object_table(p, getattr(self, "node_id", "?"))
        L, s = p["grid"], p["spacing"]
        xy = torch.stack([locs // L, locs % L], -1).double() * s  # [O, P, 2]
        self.register_buffer("xy", xy, persistent=False)
        self.register_buffer("feats", feats, persistent=False)
        self.register_buffer("belief", torch.zeros(batch, p["objects"], p["points"], dtype=torch.float64))

    def _feature_loglik(self, feature: torch.Tensor) -> torch.Tensor:
        """log P(sensed feature | point's feature), [B, O, P]."""
        eps, F = self.p["feature_noise"], self.p["features"]
        same = self.feats.unsqueeze(0) == feature.argmax(1).view(-1, 1, 1)
        return torch.log(torch.where(same, 1 - eps + eps / F, eps / F).double().clamp_min(1e-300))

    def _move_loglik(self, velocity: torch.Tensor) -> torch.Tensor:
        """log P(sensed movement | from point i to point j), [B, O, P(i), P(j)], constants dropped."""
        disp = self.xy.unsqueeze(1) - self.xy.unsqueeze(2)  # [O, i, j, 2]: xy_j - xy_i
        err2 = (disp.unsqueeze(0) - velocity.double().view(-1, 1, 1, 1, 2)).pow(2).sum(-1)
        sigma = self.p["velocity_noise"] * self.p["spacing"]
        if sigma > 0:
            return -err2 / (2 * sigma ** 2)
        return torch.where(err2 < (1e-6 * self.p["spacing"]) ** 2, 0.0, -torch.inf)

    def forward(self, ctx, feature, velocity, start, reset):
        with torch.no_grad():
            feat_ll = self._feature_loglik(feature.detach())
            # First touch: only the points at the given start location.
            at_start = (self.xy.unsqueeze(0) - start.detach().double().view(-1, 1, 1, 2)).abs().amax(-1) \
                < 1e-6 * self.p["spacing"]
            first = torch.where(at_start, 0.0, -torch.inf) + feat_ll
            # Later touches: move from any other point of the same object.
            P = self.p["points"]
            stay = torch.eye(P, dtype=torch.bool, device=feat_ll.device)
            trans = self._move_loglik(velocity.detach()).masked_fill(stay, -torch.inf)
            later = torch.logsumexp(self.belief.unsqueeze(3) + trans, dim=2) + feat_ll
            r = reset.detach().reshape(-1, 1, 1) > 0.5
            belief = torch.where(r, first, later)
            # Normalise, so the numbers stay in range over long episodes.
            belief = belief - torch.logsumexp(belief.flatten(1), 1).view(-1, 1, 1)
            self.belief = belief.nan_to_num(nan=-torch.inf)
            logits = torch.logsumexp(self.belief, 2)
        return {"logits": logits.float(), "class": logits.argmax(1, keepdim=True).float()}


NODE = BayesObjects
