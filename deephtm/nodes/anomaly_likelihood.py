"""anomaly.likelihood: how unusual the recent raw anomaly is, as a Gaussian tail probability.

Written from the published description of HTM's anomaly likelihood: the raw anomaly is
averaged over a short window; the long-run distribution of that average (over the last
'history' steps) is modelled as a Gaussian; the likelihood is 1 minus the probability of
an average at least this high. A steady stream hovers near 0.5; a sustained rise in the
raw anomaly pushes it towards 1.

Two additions, both off unless asked for: 'long_window' scores a second, longer average
the same way against its own history, and the larger likelihood counts (a long stretch of
slightly raised raw anomaly stands out over a day even when no short average does); a
'value' input turns on the range check (a value beyond the range seen so far, by a margin,
scores 1); a 'gap' input leaves out the raw anomaly of a row that follows a gap in the
sampling (it counts as 0): the TM's sequence broke there, as at an HTM reset, so its miss
says nothing about the signal. The statistics live on the host in float64: a handful of
numbers per stream, and no gradient flows through them.
"""
import math

import torch

from ..node import Node, require
from ..graph.spec import Param, Port

# Log scale: log(1 - L) / log(LOG_FLOOR) maps 0.5 -> 0.03, 0.999 -> 0.3, 0.99999 -> 0.5, 1 -> 1.
LOG_FLOOR = 1e-10
LOG_OF_FLOOR = math.log(LOG_FLOOR)
SQRT2 = math.sqrt(2.0)


class AnomalyLikelihood(Node):
    type_name = "anomaly.likelihood"
    version = 2  # 2: the streams' state is saved (extra state)
    category = "anomaly"
    live_role = "anomaly"
    stream_role = "likelihood"
    steps_in_blocks = True
    doc = ("Tail probability of the recent raw-anomaly average against its long-run Gaussian "
           "distribution (HTM's anomaly likelihood). 0.5 while learning; near 1 when the raw "
           "anomaly stays unusually high. No gradients.")
    inputs = (Port("raw", "scalar", "raw anomaly in [0, 1] per stream, e.g. htm.tm's 'anomaly'"),
              Port("value", "tensor", "the input value as read, shape [1] (source.csv's 'raw'); "
                   "turns on the range check", optional=True),
              Port("gap", "tensor", "1 where the row follows a gap in the sampling (source.csv's "
                   "'gap'), shape [1]; the raw anomaly there counts as 0", optional=True))
    outputs = (
        Port("likelihood", "scalar", "1 - P(average >= the recent average), in [0, 1]"),
        Port("score", "scalar", "the final anomaly score in [0, 1]: the likelihood, log-scaled if asked"),
        Port("flag", "scalar", "1 where score >= threshold (at most one flag per 'refractory' steps, and "
             "only after 'quiet' steps below it), else 0"),
    )
    params = (
        Param("learning_period", "int", 300, "first steps ignored (the model is still learning); score 0.5",
              min=0, max=10**7),
        Param("estimation_samples", "int", 100, "averages collected after the learning period before "
              "the distribution is trusted", min=2, max=10**7),
        Param("history", "int", 8640, "how many recent averages define the long-run distribution",
              min=2, max=10**6),
        Param("averaging_window", "int", 10, "steps in the short moving average of the raw anomaly",
              min=1, max=10000),
        Param("min_std", "float", 0.03, "floor on the distribution's std (a near-constant raw anomaly "
              "would otherwise make every wobble look unlikely)", min=1e-6, max=1.0),
        Param("long_window", "int", 0, "steps in a second, longer moving average, scored against its own "
              "history; the score is the larger of the two (catches a long stretch of slightly raised "
              "raw anomaly; 0: off)", min=0, max=100000),
        Param("long_min_std", "float", 0.01, "floor on the long average's std (a long average varies "
              "less than a short one)", min=1e-6, max=1.0),
        Param("log_scale", "bool", True, "score = log(1 - L) / log(1e-10): spreads the values near 1"),
        Param("threshold", "float", 0.5, "score at or above which a step is flagged", min=0.0, max=1.0),
        Param("refractory", "int", 0, "steps after a flag during which no new flag is raised", min=0,
              max=10**6),
        Param("quiet", "int", 0, "a flag also needs this many steps in a row below the threshold just "
              "before it: one flag per excursion above it (0: off)", min=0, max=10**6),
        Param("range_tolerance", "float", 0.02, "with a 'value' input: a value outside the range seen "
              "so far by more than this fraction of that range scores 1", min=0.0, max=100.0),
        Param("range_warmup", "int", 300, "with a 'value' input: steps before the range check starts "
              "(the range is still being learned)", min=0, max=10**7),
    )

    @classmethod
    def infer(cls, p, shapes):
        for port in ("value", "gap"):
            s = shapes.get(port)
            require(s in (None, (), (1,)), port, f"expected one value per stream (shape [1]), got {list(s or [])}")
        return {"likelihood": (), "score": (), "flag": ()}

    def setup(self, batch, generator):
        # Plain Python floats per stream: a few numbers per step cost far less than tensor ops.
        self.streams = [_Stream(self.p) for _ in range(batch)]

    def get_extra_state(self):
        # Each stream's scalars as JSON; each average's windows as [batch, window] float64 tensors.
        state = {"streams": [s.scalars() for s in self.streams]}
        for i in range(len(self.streams[0].averages)):
            state[f"recent_{i}"] = torch.tensor([s.averages[i].recent for s in self.streams], dtype=torch.float64)
            state[f"history_{i}"] = torch.tensor([s.averages[i].hist for s in self.streams], dtype=torch.float64)
        return state

    def set_extra_state(self, state):
        if len(state["streams"]) != len(self.streams):
            raise ValueError(f"{len(state['streams'])} streams saved, {len(self.streams)} run")
        for b, (stream, scalars) in enumerate(zip(self.streams, state["streams"])):
            stream.load_scalars(scalars)
            for i, a in enumerate(stream.averages):
                a.recent = state[f"recent_{i}"][b].tolist()
                a.hist = state[f"history_{i}"][b].tolist()

    def forward(self, ctx, raw, value=None, gap=None):
        n = len(self.streams)
        rows = [s.update(r, v, g) for s, r, v, g in zip(self.streams, raw.detach().reshape(-1).tolist(),
                                                       _per_step(value, n), _per_step(gap, n))]
        lik, score, flag = torch.tensor(rows, dtype=torch.float32, device=raw.device).unbind(1)
        return {"likelihood": lik, "score": score, "flag": flag}

    def forward_steps(self, ctx, raw, value=None, gap=None):
        """Consecutive steps of a one-stream run at once (raw [T], value and gap [T] or
        [T, 1]): the outputs forward would give step by step, as [T] tensors. deephtm
        detect calls it once per block of rows."""
        (stream,) = self.streams
        raws = raw.detach().reshape(-1).tolist()
        rows = [stream.update(r, v, g) for r, v, g in zip(raws, _per_step(value, len(raws)),
                                                          _per_step(gap, len(raws)))]
        lik, score, flag = torch.tensor(rows, dtype=torch.float32, device=raw.device).reshape(-1, 3).unbind(1)
        return {"likelihood": lik, "score": score, "flag": flag}


def _per_step(x, n: int) -> list:
    """An optional input as one Python number per step (None where it is not connected)."""
    return x.detach().reshape(-1).tolist() if x is not None else [None] * n


class _Stream:
    """The likelihood state of one stream."""

    def __init__(self, p):
        self.p = p
        self.t = 0
        self.averages = [_Average(p["averaging_window"], p["min_std"], p["history"])]
        if p["long_window"]:
            self.averages.append(_Average(p["long_window"], p["long_min_std"], p["history"]))
        self.since_flag = 10**9
        self.below = 10**9  # steps in a row with the score below the threshold
        self.lo = self.hi = None  # the range of the values seen so far (range check)

    def scalars(self) -> dict:
        return {"t": self.t, "since_flag": self.since_flag, "below": self.below, "lo": self.lo, "hi": self.hi,
                "averages": [a.scalars() for a in self.averages]}

    def load_scalars(self, d: dict) -> None:
        self.t, self.since_flag, self.below = int(d["t"]), int(d["since_flag"]), int(d["below"])
        self.lo, self.hi = d["lo"], d["hi"]
        for a, saved in zip(self.averages, d["averages"], strict=True):
            a.load_scalars(saved)

    def update(self, r: float, v: float | None = None, gap: float | None = None) -> tuple[float, float, float]:
        p, t = self.p, self.t
        self.t += 1
        if gap:
            r = 0.0
        # P(an average at least this high), the smaller over the short and long averages.
        tail = min([a.update(r, t, p["learning_period"], p["estimation_samples"]) for a in self.averages])
        # The log scale is computed from the tail itself: 1 - likelihood loses digits near 1.
        score = math.log(min(max(tail, LOG_FLOOR), 1.0)) / LOG_OF_FLOOR if p["log_scale"] else 1.0 - tail
        if v is not None and self._out_of_range(v, t):
            score = 1.0  # a value never seen before, by a margin: anomalous whatever the TM says
        high = score >= p["threshold"]
        flag = (high and self.since_flag >= p["refractory"] and self.below >= p["quiet"]
                and t >= p["learning_period"])
        self.since_flag = 0 if flag else self.since_flag + 1
        self.below = 0 if high else self.below + 1
        return 1.0 - tail, score, float(flag)

    def _out_of_range(self, v: float, t: int) -> bool:
        """Is v beyond the range of the earlier values by more than range_tolerance of it?
        Then add v to the range. A slow drift past the range moves it step by step and is
        left to the likelihood; a jump past it is flagged."""
        lo, hi = self.lo, self.hi
        if lo is None:
            self.lo = self.hi = v
            return False
        margin = self.p["range_tolerance"] * (hi - lo)
        out = t >= self.p["range_warmup"] and (v > hi + margin or v < lo - margin)
        self.lo, self.hi = min(lo, v), max(hi, v)
        return out


class _Average:
    """A moving average of the raw anomaly and the Gaussian of its recent history."""

    def __init__(self, window: int, min_std: float, history: int):
        self.min_std = min_std
        self.recent = [0.0] * window
        self.recent_sum = 0.0
        self.hist = [0.0] * history
        self.hist_n = 0
        self.hist_sum = 0.0
        self.hist_sq = 0.0

    def scalars(self) -> dict:
        return {"recent_sum": self.recent_sum, "hist_n": self.hist_n, "hist_sum": self.hist_sum,
                "hist_sq": self.hist_sq}

    def load_scalars(self, d: dict) -> None:
        self.recent_sum, self.hist_n = float(d["recent_sum"]), int(d["hist_n"])
        self.hist_sum, self.hist_sq = float(d["hist_sum"]), float(d["hist_sq"])

    def update(self, r: float, t: int, learning_period: int, estimation_samples: int) -> float:
        """Add step t's raw anomaly; P(an average at least this high) under the history's
        Gaussian, 0.5 until the distribution is trusted."""
        w = len(self.recent)
        self.recent_sum += r - self.recent[t % w]
        self.recent[t % w] = r
        if t % w == w - 1:  # re-sum once per lap: no drift
            self.recent_sum = sum(self.recent)
        avg = self.recent_sum / min(t + 1, w)
        tail = 0.5
        if t >= learning_period:
            n = self.hist_n
            if n >= estimation_samples:
                mean = self.hist_sum / n
                std = max(math.sqrt(max(self.hist_sq / n - mean * mean, 0.0)), self.min_std)
                tail = 0.5 * math.erfc((avg - mean) / (std * SQRT2))
            self._remember(avg, t - learning_period)
        return tail

    def _remember(self, avg: float, k: int) -> None:
        """Add an average to the history ring, dropping the oldest when full."""
        size = len(self.hist)
        slot = k % size
        if self.hist_n == size:
            old = self.hist[slot]
            self.hist_sum -= old
            self.hist_sq -= old * old
        else:
            self.hist_n += 1
        self.hist[slot] = avg
        self.hist_sum += avg
        self.hist_sq += avg * avg
        if slot == size - 1:  # re-sum once per lap: no drift
            self.hist_sum = math.fsum(self.hist[: self.hist_n])
            self.hist_sq = math.fsum(h * h for h in self.hist[: self.hist_n])


NODE = AnomalyLikelihood
