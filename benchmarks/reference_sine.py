"""Hand-written torch versions of graphs/sine.json, for benchmarks/online.py and batched.py.

The network (today's sine.json): sine value -> scalar bits (256 bits, 16 neighbouring ones
on, over [-1, 1]) -> MLP encoder (2 x 256 ReLU) -> SP (256 columns, biases starting at 0,
global inhibition: the 20 best win after each column's score gets its threshold offset,
magnitude output; the offsets integrate each column's shortfall of wins, (target - won) /
target at a rate of 0.003 / (1 + step / 300)) -> TM (5 cells per column, context = the
previous step's winner cells) -> MLP decoder (256 ReLU, 1) -> MSE on the next value, plus
the TM's self-supervised loss. The TM math follows deephtm/nodes/htm_tm.py (threshold 0.5,
temperature 0.1; a column's winner is its best matching cell, or its least used cell when
the best match is under 0.2; softmax straight-through; hinge losses, hit + 0.1 * false
prediction; distal synapses by plain SGD, lr 0.05). Adam lr 0.002 with a cosine schedule
over 10,000 steps; the encoder and SP learn at 0.3 of it (their lr_scale). The graph's
metrics (nrmse, persistence_nrmse, sp_entropy) train nothing and are left out.

- DenseSine (sparse=False): what a plain torch user writes: the encoder reads the 256 bits
  as a dense 0/1 vector, the distal input is a dense matmul of the context with the n x n
  distal matrix, the decoder reads all n cells, every weight gets a dense gradient, fused
  Adam.
- sparse=True: the same math written by hand the sparse way: the encoder's first layer sums
  the 16 weight rows of the bits that are on (embedding bag); the distal input gathers the
  rows of the active context cells (embedding bag, sparse gradient, SGD on those rows only);
  the decoder's first layer reads only the cells of the active columns (the only cells
  whose gradient changes a weight), its weight rows by a sparse embedding lookup updated by
  lazy Adam (Adam on the rows that got a gradient; dense Adam also moves rows whose
  gradient is zero by their momentum, so the two versions part after the second step). It
  is what the engine should cost without its own overhead.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

C, K, HIDDEN, WINNERS, BITS, BITS_ON = 256, 5, 256, 20, 256, 16
THRESHOLD, TEMPERATURE, FALSE_WEIGHT, TM_WEIGHT, MATCH_THRESHOLD = 0.5, 0.1, 0.1, 1.0, 0.2
BOOST_STRENGTH, BOOST_SETTLE, DUTY_INERTIA = 0.003, 300.0, 0.99
STEP_SIZE, LR, DISTAL_LR, SLOW_LR_SCALE, SCHEDULE_STEPS = 0.25, 2e-3, 0.05, 0.3, 10_000


def init_linear(n_in: int, n_out: int, g: torch.Generator) -> tuple[nn.Parameter, nn.Parameter]:
    """nn.Linear's initialization, stored input-major [in, out] (rows = inputs)."""
    bound = 1 / math.sqrt(n_in)
    w = (torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound
    b = (torch.rand(n_out, generator=g) * 2 - 1) * bound
    return nn.Parameter(w), nn.Parameter(b)


def scalar_bits(x: torch.Tensor) -> torch.Tensor:
    """encoder.scalar over [-1, 1]: the indices [B, BITS_ON] of the bits that are on."""
    frac = ((x[:, 0] + 1) / 2).clamp(0, 1)
    first = torch.round(frac * (BITS - BITS_ON)).long()
    return first.unsqueeze(1) + torch.arange(BITS_ON, device=x.device)


def offset_rate(step: int) -> float:
    """htm.sp's threshold offsets move by this much (over the target) at `step` (0-based)."""
    return BOOST_STRENGTH / (1 + step / BOOST_SETTLE)


class SineNet(nn.Module):
    def __init__(self, batch: int, sparse: bool, columns: int = C, cells: int = K, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.C, self.K, self.sparse = columns, cells, sparse
        n = columns * cells
        self.enc_w, self.enc_b = init_linear(BITS, HIDDEN, g)  # input-major: rows = bits
        self.enc2 = nn.Linear(HIDDEN, HIDDEN)
        self.sp = nn.Linear(HIDDEN, columns)
        nn.init.zeros_(self.sp.bias)  # as htm.sp: equal thresholds at the start
        self.distal = nn.Parameter(torch.randn(n, n, generator=g) * 0.01)
        self.dec_w, self.dec_b = init_linear(n, HIDDEN, g)
        self.dec_out = nn.Linear(HIDDEN, 1)
        self.duty_target = WINNERS / columns
        self.register_buffer("duty", torch.full((columns,), self.duty_target))
        self.register_buffer("offset", torch.zeros(columns))  # the SP's threshold offsets
        self.register_buffer("usage", torch.zeros(columns, cells))
        self.register_buffer("phase", torch.rand(batch, 1, generator=g) * 2 * math.pi)
        self.register_buffer("context", torch.zeros(batch, n))
        self.t = 0
        self.noise_generator = None  # None: the least used cells' ties are broken by the global RNG

    def param_groups(self) -> tuple[list[dict], list[dict]]:
        """(Adam groups, SGD groups) with their base rates."""
        slow = [self.enc_w, self.enc_b] + list(self.enc2.parameters()) + list(self.sp.parameters())
        fast = [self.dec_w, self.dec_b] + list(self.dec_out.parameters())
        return ([{"params": slow, "lr": LR * SLOW_LR_SCALE}, {"params": fast, "lr": LR}],
                [{"params": [self.distal], "lr": DISTAL_LR}])

    def optimizers(self) -> list[torch.optim.Optimizer]:
        adam, sgd = self.param_groups()
        if not self.sparse:
            opts = [torch.optim.Adam(adam, fused=True)]
        else:  # the decoder's input weight gets row-sparse gradients: lazy Adam for it
            # (deephtm's LazyAdam: torch's SparseAdam puts eps outside the bias correction,
            # which is not Adam's math)
            from deephtm.train.optim import LazyAdam

            adam[1]["params"] = [p for p in adam[1]["params"] if p is not self.dec_w]
            opts = [torch.optim.Adam(adam, fused=True), LazyAdam([self.dec_w], lr=LR)]
        opts.append(torch.optim.SGD(sgd))
        for o in opts:
            for group in o.param_groups:
                group["base_lr"] = group["lr"]
        return opts

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bits = scalar_bits(x)
        if not self.sparse:
            code = torch.zeros(x.shape[0], BITS, device=x.device).scatter_(1, bits, 1.0)
            h1 = torch.addmm(self.enc_b, code, self.enc_w)
        else:  # the 16 rows of the bits that are on
            h1 = F.embedding_bag(bits, self.enc_w, mode="sum") + self.enc_b
        return F.relu(self.enc2(F.relu(h1)))

    def distal_input(self, context: torch.Tensor) -> torch.Tensor:
        if not self.sparse:  # an active cell counts 1, whatever its value (as the engine's TM)
            return (context != 0).to(self.distal.dtype) @ self.distal
        b_idx, cell_idx = context.nonzero(as_tuple=True)
        offsets = torch.searchsorted(b_idx, torch.arange(context.shape[0], device=context.device))
        return F.embedding_bag(cell_idx, self.distal, offsets, mode="sum", sparse=True)

    def decoder_hidden(self, winners: torch.Tensor, col_active: torch.Tensor) -> torch.Tensor:
        if not self.sparse:
            return winners @ self.dec_w + self.dec_b
        # Only the cells of active columns carry a value or a gradient that moves a weight.
        cols = col_active.any(0).nonzero().squeeze(1)
        cells = (cols.unsqueeze(1) * self.K + torch.arange(self.K, device=cols.device)).flatten()
        return winners[:, cells] @ F.embedding(cells, self.dec_w, sparse=True) + self.dec_b

    def step_loss(self) -> torch.Tensor:
        B, Cn, Kn = self.context.shape[0], self.C, self.K
        t = self.phase + self.t * STEP_SIZE
        x, target = torch.sin(t), torch.sin(t + STEP_SIZE)
        overlap = self.sp(self.encode(x))
        score = overlap.detach() + self.offset
        mask = torch.zeros_like(overlap).scatter_(1, score.topk(WINNERS, dim=1).indices, 1.0)
        columns = torch.where(overlap == 0, overlap + 1e-6, overlap) * mask
        self.duty.mul_(DUTY_INERTIA).add_(mask.mean(0), alpha=1 - DUTY_INERTIA)
        # a product, not alpha=: gpu.py's time step is a tensor (no host read in a CUDA graph)
        self.offset.add_((self.duty_target - mask.mean(0)) * (offset_rate(self.t) / self.duty_target))
        col_active = mask.bool()
        context = self.context.clone()  # the buffer is overwritten in place below
        d = self.distal_input(context).view(B, Cn, Kn)
        z = (d - THRESHOLD) / TEMPERATURE
        best, winner = d.max(-1)
        # A bursting column whose best cell does not match takes its least used cell.
        fresh = (best < MATCH_THRESHOLD) & col_active
        if self.noise_generator is None:
            noise = torch.rand(self.usage.shape, device=d.device)
        else:  # the engine's TM draws from the trainer's generator (tests/test_reference_sine.py)
            noise = torch.rand(self.usage.shape, generator=self.noise_generator).to(d.device)
        fresh_cell = (self.usage + noise * (0.5 / B)).argmin(-1)
        winner = torch.where(fresh, fresh_cell, winner)
        picked = torch.zeros_like(self.usage).scatter_(-1, fresh_cell.unsqueeze(-1), 1.0)
        self.usage.add_(picked * fresh.to(picked.dtype).mean(0).unsqueeze(-1))
        w_soft = torch.softmax(z, -1)
        # one-hot by scatter: F.one_hot checks its input on the host, which CUDA graphs forbid
        w = torch.zeros_like(z).scatter_(-1, winner.unsqueeze(-1), 1.0) + (w_soft - w_soft.detach())
        winners = (columns.unsqueeze(-1) * w).reshape(B, Cn * Kn)
        n_active = col_active.sum(1).clamp_min(1)
        z_win = z.gather(-1, winner.unsqueeze(-1)).squeeze(-1)
        hit = (F.relu(1 - z_win) * col_active).sum(1)
        false = (F.relu(1 + z) * (~col_active).unsqueeze(-1)).sum((1, 2))
        tm_loss = ((hit + FALSE_WEIGHT * false) / n_active).mean()
        pred = self.dec_out(F.relu(self.decoder_hidden(winners, col_active)))
        self.context.copy_(winners.detach())  # in place: a CUDA graph replay sees it (gpu.py)
        self.t += 1
        return (pred - target).pow(2).mean() + TM_WEIGHT * tm_loss


def cosine_factor(step: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step / SCHEDULE_STEPS, 1.0)))


class Runner:
    """One optimizer step per time step, as the engine's online mode does."""

    def __init__(self, batch: int, sparse: bool, device="cpu", **sizes):
        torch.manual_seed(0)
        self.net = SineNet(batch, sparse, **sizes).to(device)
        self.opts = self.net.optimizers()
        self.step = 0

    def run(self, steps: int) -> None:
        net, opts = self.net, self.opts
        for _ in range(steps):
            f = cosine_factor(self.step)
            for o in opts:
                for group in o.param_groups:
                    group["lr"] = group["base_lr"] * f
            loss = net.step_loss()
            self.last_loss = loss.detach()  # no host sync: tests read it
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
            self.step += 1

    def weight_bytes(self) -> int:
        """Weights plus optimizer state."""
        n = sum(p.numel() * p.element_size() for p in self.net.parameters())
        for o in self.opts:
            for s in o.state.values():
                n += sum(v.numel() * v.element_size() for v in s.values() if torch.is_tensor(v))
        return n


class ManualRunner:
    """SineNet's math at batch 1 with no autograd: a hand-derived backward in a few large
    ops and torch's fused Adam kernel called directly (one call per rate group). It gives
    the weights Runner(1, sparse) gives (to float rounding; tests/test_reference_sine.py) and
    shows what an engine whose nodes carry their own backward could reach. sparse=True: the
    decoder reads only the active columns' cells and their weight rows get lazy Adam."""

    def __init__(self, sparse: bool = False):
        net = Runner(1, sparse=sparse).net  # the same initial weights and RNG stream
        self.sparse = sparse
        self.C, self.K, self.duty_target = net.C, net.K, net.duty_target
        t = lambda w: w.detach().t().contiguous()  # noqa: E731  (input-major: x @ W)
        c = lambda w: w.detach().clone()  # noqa: E731
        self.W1, self.b1 = c(net.enc_w), c(net.enc_b)
        self.W2, self.b2 = t(net.enc2.weight), c(net.enc2.bias)
        self.Ws, self.bs = t(net.sp.weight), c(net.sp.bias)
        self.Wd, self.bd = c(net.dec_w), c(net.dec_b)
        self.Wo, self.bo = t(net.dec_out.weight), c(net.dec_out.bias)
        self.distal, self.duty, self.usage, self.phase = c(net.distal), c(net.duty), c(net.usage), c(net.phase)
        self.offset = c(net.offset)
        self.groups = {"slow": [self.W1, self.b1, self.W2, self.b2, self.Ws, self.bs],
                       "fast": ([] if sparse else [self.Wd]) + [self.bd, self.Wo, self.bo]}
        self.lazy = (torch.zeros_like(self.Wd), torch.zeros_like(self.Wd))  # sparse: Wd's Adam moments
        self.adam = {k: ([torch.zeros_like(p) for p in g], [torch.zeros_like(p) for p in g],
                         [torch.zeros(()) for _ in g]) for k, g in self.groups.items()}
        self.context = torch.zeros(0, dtype=torch.long)  # the previous step's winner cells
        self.step = 0

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.one_step()

    @torch.no_grad()
    def one_step(self) -> None:
        C, K = self.C, self.K
        f = cosine_factor(self.step)
        t = self.phase + self.step * STEP_SIZE
        x, target = torch.sin(t), torch.sin(t + STEP_SIZE)
        # forward
        bits = scalar_bits(x)[0]  # the input is 0/1: the first layer sums the rows of the bits on
        h1 = (self.W1.index_select(0, bits).sum(0, keepdim=True) + self.b1).relu_()
        h2 = torch.addmm(self.b2, h1, self.W2).relu_()
        overlap = torch.addmm(self.bs, h2, self.Ws)
        top = (overlap + self.offset).topk(WINNERS, dim=1).indices[0]  # active columns
        mask = torch.zeros(C).index_fill_(0, top, 1.0)
        self.duty.mul_(DUTY_INERTIA).add_(mask, alpha=1 - DUTY_INERTIA)
        self.offset.add_(self.duty_target - mask, alpha=offset_rate(self.step) / self.duty_target)
        ov = overlap[0, top]
        colval = torch.where(ov == 0, ov + 1e-6, ov)
        d = self.distal.index_select(0, self.context).sum(0).view(C, K)
        z = (d - THRESHOLD) / TEMPERATURE
        best, winner = d.max(-1)
        fresh = (best < MATCH_THRESHOLD) & (mask > 0)
        fresh_cell = (self.usage + torch.rand(self.usage.shape) * 0.5).argmin(-1)
        winner = torch.where(fresh, fresh_cell, winner)
        self.usage.view(-1).index_add_(0, torch.arange(C) * K + fresh_cell, fresh.float())
        win = winner[top]
        cells = top * K + win  # the winner cells: the only non-zero inputs of the decoder
        pre = torch.addmm(self.bd, colval.unsqueeze(0), self.Wd.index_select(0, cells))
        hidden = pre.relu()
        pred = torch.addmm(self.bo, hidden, self.Wo)
        # backward of (pred - target)^2 + TM_WEIGHT * tm_loss
        g_pred = 2 * (pred - target)
        g_pre = (g_pred * self.Wo.t()) * (pre > 0)
        if self.sparse:  # only the active columns' cells: the rest never reach a weight
            rows = (top.sort().values.unsqueeze(1) * K + torch.arange(K)).flatten()
            rank = top.argsort().argsort()  # each active column's place among them in column order
            g_act = (self.Wd.index_select(0, rows) @ g_pre[0]).view(WINNERS, K)[rank]
        else:
            g_act = (self.Wd @ g_pre[0]).view(C, K)[top]
        z_act = z[top]
        soft = torch.softmax(z_act, -1)  # straight-through winners: backward through softmax
        g_w = g_act * colval.unsqueeze(1)
        g_z = ((1 - mask).unsqueeze(1) * (z > -1)) * (FALSE_WEIGHT * TM_WEIGHT / WINNERS)
        hit = torch.where(z_act.gather(1, win.unsqueeze(1)) < 1, -TM_WEIGHT / WINNERS, 0.0)
        g_z_act = (soft * (g_w - (g_w * soft).sum(-1, keepdim=True))).scatter_add(1, win.unsqueeze(1), hit)
        g_z.index_add_(0, top, g_z_act)
        g_over = torch.zeros(1, C)  # the SP passes the gradient of its winners' magnitudes
        g_over[0, top] = g_act.gather(1, win.unsqueeze(1)).squeeze(1)
        g_h2 = (g_over @ self.Ws.t()) * (h2 > 0)
        g_h1 = (g_h2 @ self.W2.t()) * (h1 > 0)
        g_rows = colval.unsqueeze(1) * g_pre  # the winner cells' rows of the decoder's input weight
        g_W1 = torch.zeros_like(self.W1).index_copy_(0, bits, g_h1.expand(BITS_ON, -1))
        grads = {"slow": [g_W1, g_h1[0], h1.t() @ g_h2, g_h2[0], h2.t() @ g_over, g_over[0]],
                 "fast": [g_pre[0], hidden.t() * g_pred, g_pred[0]]}
        if self.sparse:
            g = torch.zeros(WINNERS * K, g_pre.shape[1])  # the rows of all active columns' cells
            g.index_copy_(0, rank * K + win, g_rows)
            self.lazy_adam(rows, g, LR * f)
        else:
            grads["fast"].insert(0, torch.zeros_like(self.Wd).index_put_((cells,), g_rows))
        # SGD on the distal rows of the previous winners (the only rows with a gradient)
        if self.context.numel():
            row = g_z.view(1, -1) * (-DISTAL_LR * f / TEMPERATURE)
            self.distal.index_add_(0, self.context, row.expand(self.context.numel(), -1))
        for name, lr in (("slow", LR * SLOW_LR_SCALE * f), ("fast", LR * f)):
            m, v, steps = self.adam[name]
            torch._foreach_add_(steps, 1)  # the fused kernel reads the step count, it does not count
            torch._fused_adam_(self.groups[name], grads[name], m, v, [], steps, lr=lr, beta1=0.9,
                               beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
        self.context = cells
        self.step += 1

    def lazy_adam(self, rows: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        """Adam on these rows of the decoder's input weight only (deephtm.train.optim.LazyAdam's math)."""
        t = self.step + 1
        m = self.lazy[0].index_select(0, rows).mul_(0.9).add_(grad, alpha=0.1)
        v = self.lazy[1].index_select(0, rows).mul_(0.999).addcmul_(grad, grad, value=0.001)
        self.lazy[0].index_copy_(0, rows, m)
        self.lazy[1].index_copy_(0, rows, v)
        denom = (v.sqrt() / math.sqrt(1 - 0.999 ** t)).add_(1e-8)
        self.Wd.index_add_(0, rows, m / denom, alpha=-lr / (1 - 0.9 ** t))

    def weight_bytes(self) -> int:
        n = sum(p.numel() * p.element_size() for g in self.groups.values() for p in g)
        n += self.distal.numel() * self.distal.element_size()
        return n + sum(t.numel() * t.element_size() for m, v, _ in self.adam.values() for t in m + v)
