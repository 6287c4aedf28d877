"""anomaly.likelihood: how unusual the recent raw anomaly is, as a Gaussian tail probability.

Written from the published description of HTM's anomaly likelihood: the raw anomaly is
averaged over a short window; the long-run distribution of that average (over the last
'history' steps) is modelled as a Gaussian; the likelihood is 1 minus the probability of
an average at least this high. A steady stream hovers near 0.5; a sustained rise in the
raw anomaly pushes it towards 1.

The score puts every piece of evidence on one scale, the surprise x = -log10(tail
probability), and maps it to [0, 1) as x / (x + half_surprise): a tail of 1e-5 (with the
default half_surprise 5) scores 0.5, 1e-10 0.67, 1e-20 0.8. The map keeps ranking the rows
past any fixed floor, so the score never saturates at 1 and a corpus-wide threshold can sit
anywhere along it.

Additions, off unless asked for: 'long_window' scores a second, longer average the same
way against its own history, and the smaller tail counts (a long stretch of slightly raised
raw anomaly stands out over a day even when no short average does); a 'value' input turns
on the range check: a value beyond the range seen so far by more than range_tolerance of
that range has the surprise half_surprise x (excess / tolerance), so a breach just past the
tolerance scores 0.5 and a larger jump more, and the larger surprise wins; 'repeat_window'
halves the score of a row that does not beat every score of the rows just before it, so an
excursion ranks by its first row and its continuation (alarms NAB-style scorers count row by
row) ranks lower; a 'gap' input leaves out the raw anomaly of a row that follows a gap in
the sampling (it counts as 0): the TM's sequence broke there, as at an HTM reset, so its miss
says nothing about the signal; 'calibration_quantile' measures the likelihood's surprise
against the stream's own recent surprises: when the level that this quantile of them stays
under exceeds 'calibration_level', the excess is taken off, so a stream whose model is
surprised every day (bursty counts) needs a larger surprise to score as high as a calm one;
'alarm_surprise' halves the score of a row right after one whose surprise reached it, so an
alarm counts by its first row even while the raw anomaly's average still climbs.
The statistics live on the host in float64: a handful of numbers per stream, and no gradient
flows through them.
"""
import math
from collections import deque

import torch

from ..node import Node, require
from ..graph.spec import Param, Port

SQRT2 = math.sqrt(2.0)
LN10 = math.log(10.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Above this surprise the score would round to 1 in float32; no real tail gets near it.
MAX_SURPRISE = 1e6
# The calibration's grid: surprises in steps of a tenth of a digit, everything past 100 digits
# in the last step (a Gaussian tail reaches 100 digits only 21 standard deviations out).
CALIBRATION_BIN = 0.1
CALIBRATION_BINS = 1000


class AnomalyLikelihood(Node):
    type_name = "anomaly.likelihood"
    # 2: the streams' state is saved (extra state); 3: with repeat_window's recent scores;
    # 4: with the calibration's recent surprises and the last row's surprise (alarm_surprise)
    version = 4
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
        Port("score", "scalar", "the final anomaly score in [0, 1): x / (x + half_surprise) of the surprise "
             "x = -log10(tail probability), the larger of the likelihood's and the range check's"),
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
        Param("log_scale", "bool", True, "score = x / (x + half_surprise) with x = -log10(1 - L): spreads "
              "the values near 1 without a ceiling (off: score = L, and the range check scores 1)"),
        Param("half_surprise", "float", 5.0, "the surprise -log10(tail) that scores 0.5 on the log scale "
              "(5: a tail probability of 1e-5)", min=0.01, max=1000.0),
        Param("repeat_window", "int", 0, "a row whose score does not beat every score of this many rows "
              "before it scores half: an excursion ranks by its first row (0: off)", min=0, max=10**6),
        Param("alarm_surprise", "float", 0.0, "on the log scale: a row right after one whose surprise reached "
              "this many digits scores half: it continues that alarm (0: off)", min=0.0, max=1e6),
        Param("threshold", "float", 0.5, "score at or above which a step is flagged", min=0.0, max=1.0),
        Param("refractory", "int", 0, "steps after a flag during which no new flag is raised", min=0,
              max=10**6),
        Param("quiet", "int", 0, "a flag also needs this many steps in a row below the threshold just "
              "before it: one flag per excursion above it (0: off)", min=0, max=10**6),
        Param("range_tolerance", "float", 0.02, "with a 'value' input: a value outside the range seen "
              "so far by more than this fraction of that range is a breach; it scores 0.5 just past the "
              "tolerance and more the farther out it lies", min=0.0, max=100.0),
        Param("range_warmup", "int", 300, "with a 'value' input: steps before the range check starts "
              "(the range is still being learned)", min=0, max=10**7),
        Param("calibration_quantile", "float", 0.0, "on the log scale: the likelihood's surprise loses the "
              "excess over calibration_level of the level this quantile of the stream's last 'history' "
              "surprises stays under (0: off)", min=0.0, max=0.99999),
        Param("calibration_level", "float", 4.0, "the surprise (decimal digits) that calibration_quantile "
              "of a stream's surprises may reach before its surprises are lowered", min=0.0, max=100.0),
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

    @classmethod
    def migrate_state(cls, old_version, tensors, extra):
        # Version 2 had no repeat_window (0: off), so its streams had no recent scores to keep;
        # versions 2 and 3 had no calibration and no alarm_surprise, so no recent surprises either.
        if old_version not in (2, 3) or extra is None:
            return None
        streams = [dict(s, last_surprise=0.0) for s in extra["streams"]]
        if old_version == 2:
            streams = [dict(s, recent_max=[]) for s in streams]
        return tensors, dict(extra, streams=streams, calibration=torch.zeros(len(streams), 0, dtype=torch.int16))

    def get_extra_state(self):
        # Each stream's scalars as JSON; each average's windows as [batch, window] float64 tensors;
        # the calibration's recent surprises as [batch, rows] bin numbers (every stream has seen
        # the same rows).
        state = {"streams": [s.scalars() for s in self.streams],
                 "calibration": torch.tensor([list(s.calibration.ring) for s in self.streams], dtype=torch.int16)}
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
            stream.calibration.load(state["calibration"][b].tolist())

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
        self.recent_max: deque = deque()  # running max of the last repeat_window scores
        self.calibration = _Calibration(p["calibration_quantile"], p["history"])
        self.last_surprise = 0.0  # the previous row's surprise (alarm_surprise)

    def scalars(self) -> dict:
        return {"t": self.t, "since_flag": self.since_flag, "below": self.below, "lo": self.lo, "hi": self.hi,
                "averages": [a.scalars() for a in self.averages], "last_surprise": self.last_surprise,
                "recent_max": [[step, score] for step, score in self.recent_max]}

    def load_scalars(self, d: dict) -> None:
        self.t, self.since_flag, self.below = int(d["t"]), int(d["since_flag"]), int(d["below"])
        self.lo, self.hi, self.last_surprise = d["lo"], d["hi"], float(d["last_surprise"])
        self.recent_max = deque((int(step), float(score)) for step, score in d["recent_max"])
        for a, saved in zip(self.averages, d["averages"], strict=True):
            a.load_scalars(saved)

    def update(self, r: float, v: float | None = None, gap: float | None = None) -> tuple[float, float, float]:
        p, t = self.p, self.t
        self.t += 1
        if gap:
            r = 0.0
        trusted = self.averages[0].hist_n >= p["estimation_samples"]  # past the 0.5 of the warm-up
        # ln P(an average at least this high), the smaller over the short and long averages.
        log_tail = min([a.update(r, t, p["learning_period"], p["estimation_samples"]) for a in self.averages])
        excess = self._range_excess(v, t) if v is not None else 0.0
        if p["log_scale"]:
            # Both pieces of evidence as a surprise in decimal digits; the larger one wins.
            surprise = -log_tail / LN10
            if p["calibration_quantile"] and trusted:
                # Against this stream's own recent surprises: only the part above what it
                # routinely reaches counts (NAB's single corpus threshold must serve bursty
                # and calm series alike).
                level = self.calibration.level()
                self.calibration.add(surprise)
                surprise = max(surprise - max(level - p["calibration_level"], 0.0), 0.0)
            if excess > p["range_tolerance"]:
                surprise = max(surprise, p["half_surprise"] * excess / max(p["range_tolerance"], 1e-12))
            surprise = min(surprise, MAX_SURPRISE)
            score = surprise / (surprise + p["half_surprise"])
            if p["alarm_surprise"] and self.last_surprise >= p["alarm_surprise"]:
                # The row after an alarm continues it (the average of the raw anomaly climbs
                # for a few rows): as in Numenta's likelihood, only the first row keeps its rank.
                score *= 0.5
            self.last_surprise = surprise
        else:
            score = 1.0 if excess > p["range_tolerance"] else -math.expm1(log_tail)
        score = self._rank_by_first_row(score)
        high = score >= p["threshold"]
        flag = (high and self.since_flag >= p["refractory"] and self.below >= p["quiet"]
                and t >= p["learning_period"])
        self.since_flag = 0 if flag else self.since_flag + 1
        self.below = 0 if high else self.below + 1
        return -math.expm1(log_tail), score, float(flag)

    def _rank_by_first_row(self, score: float) -> float:
        """Halve a score that does not beat every score of the last repeat_window rows (their
        scores before halving): the row that starts an excursion keeps its full score."""
        n = self.p["repeat_window"]
        if not n:
            return score
        recent = self.recent_max  # (step, score) pairs, scores decreasing: recent_max[0] is the max
        while recent and recent[0][0] <= self.t - 1 - n:
            recent.popleft()
        out = score if not recent or score > recent[0][1] else 0.5 * score
        while recent and recent[-1][1] <= score:
            recent.pop()
        recent.append((self.t - 1, score))
        return out

    def _range_excess(self, v: float, t: int) -> float:
        """How far v lies beyond the range of the earlier values, as a fraction of that range
        (0 inside it, and before range_warmup); then add v to the range. A slow drift past the
        range moves it a little each step and stays under the tolerance; a jump does not."""
        lo, hi = self.lo, self.hi
        if lo is None:
            self.lo = self.hi = v
            return 0.0
        self.lo, self.hi = min(lo, v), max(hi, v)
        if t < self.p["range_warmup"]:
            return 0.0
        out = max(v - hi, lo - v, 0.0)
        if hi <= lo:  # a constant series so far: any other value is a breach beyond measure
            return math.inf if out > 0.0 else 0.0
        return out / (hi - lo)


class _Calibration:
    """The level that a high quantile of a stream's last `size` likelihood surprises stays
    under, on a grid of CALIBRATION_BIN digits: a count per bin and the quantile's bin, moved
    a bin at a time as surprises come and go, so a row costs O(1) however long the history."""

    def __init__(self, quantile: float, size: int):
        self.quantile, self.size = quantile, size
        self.counts = [0] * CALIBRATION_BINS
        self.ring: deque = deque()  # the bins of the last `size` surprises, oldest first
        self.k = 0  # the quantile's bin
        self.above = 0  # surprises in the bins above k

    def level(self) -> float:
        """The upper edge of the quantile's bin (0 before any surprise)."""
        return (self.k + 1) * CALIBRATION_BIN if self.ring else 0.0

    def add(self, surprise: float) -> None:
        b = min(int(surprise / CALIBRATION_BIN), CALIBRATION_BINS - 1)
        self._count(b, 1)
        self.ring.append(b)
        if len(self.ring) > self.size:
            self._count(self.ring.popleft(), -1)
        self._settle()

    def load(self, bins: list[int]) -> None:
        self.counts = [0] * CALIBRATION_BINS
        self.ring = deque(bins)
        for b in bins:
            self.counts[b] += 1
        self.k, self.above = 0, len(bins) - self.counts[0]
        self._settle()

    def _count(self, b: int, d: int) -> None:
        self.counts[b] += d
        if b > self.k:
            self.above += d

    def _settle(self) -> None:
        """Move k to the lowest bin with at most (1 - quantile) of the surprises above it."""
        limit = (1.0 - self.quantile) * len(self.ring)
        while self.above > limit and self.k < CALIBRATION_BINS - 1:
            self.k += 1
            self.above -= self.counts[self.k]
        while self.k > 0 and self.above + self.counts[self.k] <= limit:
            self.above += self.counts[self.k]
            self.k -= 1


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
        """Add step t's raw anomaly; ln P(an average at least this high) under the history's
        Gaussian, ln 0.5 until the distribution is trusted."""
        w = len(self.recent)
        self.recent_sum += r - self.recent[t % w]
        self.recent[t % w] = r
        if t % w == w - 1:  # re-sum once per lap: no drift
            self.recent_sum = sum(self.recent)
        avg = self.recent_sum / min(t + 1, w)
        log_tail = -math.log(2.0)
        if t >= learning_period:
            n = self.hist_n
            if n >= estimation_samples:
                mean = self.hist_sum / n
                std = max(math.sqrt(max(self.hist_sq / n - mean * mean, 0.0)), self.min_std)
                log_tail = _log_gaussian_tail((avg - mean) / std)
            self._remember(avg, t - learning_period)
        return log_tail

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


def _log_gaussian_tail(z: float) -> float:
    """ln P(Z >= z) for a standard normal Z, accurate far out in the tail, where the
    probability itself underflows (the log scale keeps ranking those rows)."""
    if z < 8.0:
        return math.log(0.5 * math.erfc(z / SQRT2))
    # The asymptotic series P(Z >= z) = phi(z) / z * (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8 ...);
    # at z = 8 the two forms agree to 1e-6 in the log.
    u = 1.0 / (z * z)
    return -0.5 * z * z - math.log(z) - HALF_LOG_2PI + math.log1p(u * (-1.0 + u * (3.0 + u * (-15.0 + 105.0 * u))))


NODE = AnomalyLikelihood
