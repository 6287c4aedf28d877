"""source.sequence: the high-order sequence task of Cui, Ahmad & Hawkins (2016).

Pairs of sequences share their middle part, e.g. [6,8,7,4,2,3,0] and [1,8,7,4,2,3,5]: only
the first element tells which last element follows. The sequences are shown in random
order, each followed by random noise elements. At 'swap_step' the last elements of each
pair swap, so a learner must unlearn and relearn. Only the last element of a sequence is
predictable from context alone, so 'last' marks the steps whose target is a last element.

With 'middle_pool', all middles are drawn from one small pool of symbols, so the same symbols
recur in several sequences (and within one) in different orders: a symbol's successor then
depends on several steps of context, not only on the pair's first element.
"""
import torch

from ..errors import GraphError, node_where
from ..node import Node
from ..graph.spec import Param, Port


class SequenceSource(Node):
    type_name = "source.sequence"
    version = 2  # 2: the streams and the generator are saved (extra state)
    category = "source"
    doc = ("High-order symbol sequences (pairs sharing a middle part, separated by random noise "
           "elements; the pairs' endings swap at 'swap_step'). Outputs the current symbol, the next "
           "one as the target and a flag for targets that end a sequence (score those).")
    inputs = ()
    outputs = (
        Port("onehot", "tensor", "the current symbol, one-hot, shape [symbols]"),
        Port("symbol", "tensor", "the current symbol's index, shape [1]"),
        Port("target", "tensor", "the next symbol's index, shape [1]"),
        Port("target_onehot", "tensor", "the next symbol, one-hot, shape [symbols]"),
        Port("last", "scalar", "1 when the target is the last element of a sequence, else 0"),
    )
    params = (
        Param("symbols", "int", 25, "alphabet size; noise elements are drawn from the whole alphabet",
              min=2, max=100000),
        Param("pairs", "int", 2, "pairs of sequences (each pair shares its middle part)", min=1, max=1000),
        Param("length", "int", 7, "elements per sequence (first, shared middle, last)", min=3, max=1000),
        Param("noise", "int", 1, "random noise elements after each sequence", min=0, max=1000),
        Param("swap_step", "int", 10000, "step at which the endings of each pair swap (0: never)",
              min=0, max=10**9),
        Param("sequences", "str", "", "explicit sequences instead of generated pairs, e.g. '0 1 2; 3 1 2' "
              "(symbols separated by spaces, sequences by ';'); empty: the generated high-order task"),
        Param("sequences_after", "str", "", "explicit sequences from swap_step on (empty: each pair's "
              "last elements swap)"),
        Param("noise_from", "str", "all", "symbols noise elements are drawn from: all, or unused (those in "
              "no sequence)", choices=("all", "unused")),
        Param("middle_pool", "int", 0, "symbols all middles are drawn from, so they recur across "
              "sequences in different orders (no symbol twice in a row, each pair's middle its own); "
              "firsts and lasts come from the other symbols; 0: each pair draws its own distinct "
              "symbols", min=0, max=100000),
        Param("seed", "int", 1, "seed of the sequences and of their order (the run's seed is not used, "
              "so a task stays the same across model seeds)", min=0, max=2**31 - 1),
    )

    @classmethod
    def infer(cls, p, shapes):
        s = p["symbols"]
        return {"onehot": (s,), "symbol": (1,), "target": (1,), "target_onehot": (s,), "last": ()}

    def _parse(self, text: str, param: str) -> list[list[int]]:
        try:
            seqs = [[int(t) for t in part.split()] for part in text.split(";") if part.strip()]
        except ValueError:
            seqs = []
        if not seqs or any(len(q) < 2 or not all(0 <= t < self.p["symbols"] for t in q) for q in seqs):
            raise GraphError(f"expected sequences of at least 2 symbols in 0..{self.p['symbols'] - 1}, "
                             "like '0 1 2; 3 1 2'", where=node_where(getattr(self, "node_id", "?"), param=param))
        return seqs

    def setup(self, batch, generator):
        p = self.p
        self.rng = torch.Generator().manual_seed(p["seed"])
        self.after = self._parse(p["sequences_after"], "sequences_after") if p["sequences_after"] else None
        if p["sequences"]:
            self.sequences = self._parse(p["sequences"], "sequences")
            if self.after is None and p["swap_step"] and len(self.sequences) % 2:
                raise GraphError("swapping endings needs pairs: give an even number of sequences or "
                                 "sequences_after", where=node_where(getattr(self, "node_id", "?"), param="sequences"))
        elif p["middle_pool"]:
            self._generate_pooled()
        else:
            self._generate()
        used = {t for q in self.sequences + (self.after or []) for t in q}
        self.noise_pool = list(range(p["symbols"])) if p["noise_from"] == "all" else \
            [t for t in range(p["symbols"]) if t not in used]
        if p["noise"] and not self.noise_pool:
            raise GraphError("no unused symbols left for noise elements",
                             where=node_where(getattr(self, "node_id", "?"), param="noise_from"))
        # One stream of symbols per batch entry, generated lazily: (symbol, is_last) pairs.
        self.streams = [[] for _ in range(batch)]
        self.stream_step = [0] * batch  # step of the first element still kept in each stream

    def _generate(self):
        p = self.p
        # Each pair needs 2 distinct firsts, length-2 shared middle elements and 2 distinct lasts;
        # symbols are distinct within a pair so the middle never repeats an end.
        per_pair = p["length"] + 2
        if per_pair > p["symbols"]:
            raise GraphError(f"a pair needs {per_pair} distinct symbols, only {p['symbols']} exist",
                             where=node_where(getattr(self, "node_id", "?"), param="symbols"))
        seqs = []
        for _ in range(p["pairs"]):
            s = torch.randperm(p["symbols"], generator=self.rng)[:per_pair].tolist()
            middle = s[2:p["length"]]
            seqs.append([s[0]] + middle + [s[p["length"]]])
            seqs.append([s[1]] + middle + [s[p["length"] + 1]])
        self.sequences = seqs

    def _generate_pooled(self):
        p = self.p
        where = node_where(getattr(self, "node_id", "?"), param="middle_pool")
        pool_n, mid_n = p["middle_pool"], p["length"] - 2
        if pool_n + 4 > p["symbols"] or pool_n < 2:
            raise GraphError(f"middle_pool needs at least 2 symbols and 4 others for a pair's firsts and "
                             f"lasts: at most {p['symbols'] - 4} of {p['symbols']} symbols", where=where)
        order = torch.randperm(p["symbols"], generator=self.rng).tolist()
        pool, ends = order[:pool_n], order[pool_n:]
        seqs, middles = [], set()
        for _ in range(p["pairs"]):
            for _ in range(1000):  # a middle no other pair has (pools too small to allow one fail)
                middle = []
                while len(middle) < mid_n:
                    s = pool[int(torch.randint(pool_n, (1,), generator=self.rng))]
                    if not middle or s != middle[-1]:
                        middle.append(s)
                if tuple(middle) not in middles:
                    break
            else:
                raise GraphError(f"too few pairs of distinct middles from {pool_n} symbols", where=where)
            middles.add(tuple(middle))
            e = [ends[i] for i in torch.randperm(len(ends), generator=self.rng)[:4].tolist()]
            seqs.append([e[0]] + middle + [e[2]])
            seqs.append([e[1]] + middle + [e[3]])
        self.sequences = seqs

    def sequences_at(self, step: int) -> list[list[int]]:
        """The sequences in use at a step: after swap_step each pair's last elements swap."""
        if self.p["swap_step"] and step >= self.p["swap_step"]:
            if self.after is not None:
                return self.after
            out = []
            for i in range(0, len(self.sequences), 2):
                a, b = self.sequences[i], self.sequences[i + 1]
                out += [a[:-1] + [b[-1]], b[:-1] + [a[-1]]]
            return out
        return self.sequences

    def _extend(self, b: int, step: int) -> None:
        """Append one sequence and its noise to stream b; 'step' is the step its first element lands on."""
        p = self.p
        seqs = self.sequences_at(step)
        seq = seqs[int(torch.randint(len(seqs), (1,), generator=self.rng))]
        items = [(s, i == len(seq) - 1) for i, s in enumerate(seq)]
        pool = self.noise_pool
        items += [(pool[int(torch.randint(len(pool), (1,), generator=self.rng))], False) for _ in range(p["noise"])]
        self.streams[b].extend(items)

    def _at(self, b: int, step: int) -> tuple[int, bool]:
        stream = self.streams[b]
        while step - self.stream_step[b] >= len(stream):
            self._extend(b, self.stream_step[b] + len(stream))
        return stream[step - self.stream_step[b]]

    def get_extra_state(self):
        # The sequences themselves follow from the params; what was drawn since does not.
        return {"rng": self.rng.get_state(), "stream_step": list(self.stream_step),
                "streams": [[[s, last] for s, last in stream] for stream in self.streams]}

    def set_extra_state(self, state):
        self.rng.set_state(state["rng"])
        self.stream_step = [int(s) for s in state["stream_step"]]
        self.streams = [[(int(s), bool(last)) for s, last in stream] for stream in state["streams"]]

    def forward(self, ctx):
        s = self.p["symbols"]
        cur, nxt, last = [], [], []
        for b in range(ctx.batch):
            c, _ = self._at(b, ctx.step)
            n, is_last = self._at(b, ctx.step + 1)
            # Drop what the steps behind us no longer need.
            drop = ctx.step - self.stream_step[b]
            if drop > 64:
                del self.streams[b][:drop]
                self.stream_step[b] += drop
            cur.append(c)
            nxt.append(n)
            last.append(float(is_last))
        dev = ctx.device
        cur_t = torch.tensor(cur, device=dev)
        nxt_t = torch.tensor(nxt, device=dev)
        return {
            "onehot": torch.nn.functional.one_hot(cur_t, s).float(),
            "symbol": cur_t.float().unsqueeze(1),
            "target": nxt_t.float().unsqueeze(1),
            "target_onehot": torch.nn.functional.one_hot(nxt_t, s).float(),
            "last": torch.tensor(last, device=dev),
        }


NODE = SequenceSource
