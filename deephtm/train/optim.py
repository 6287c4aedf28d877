"""The optimizers a graph trains with.

A graph's own optimizer (fused Adam by default) trains most weights; a node may ask for
another kind for its own weights (e.g. plain SGD for the TM's Hebbian-like distal synapses,
where Adam's per-weight normalization would turn tiny gradients into full steps).

Row-sparse steps: only the rows of a weight that got a gradient move.

An HTM step touches a few rows of its large matrices (the active cells' synapses), so a
gradient from an embedding bag with sparse=True is row-sparse. LazyAdam applies fused
Adam to dense gradients and the lazy Adam update (as torch.optim.SparseAdam) to sparse
ones, with torch's Adam state layout so checkpoints stay interchangeable.
"""
from __future__ import annotations

import math

import torch
from torch.optim import optimizer as torch_optimizer


class LazyAdam(torch.optim.Adam):
    decoupled_decay = False

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None or not self._fast_ok():
            return self._torch_step(closure)
        self.update()
        return None

    def update(self) -> None:
        """step()'s fast path, for callers that checked _fast_ok() and hold no_grad: no
        torch.optim wrapper around it (update_now)."""
        # One fused kernel call per set of equal settings (a rate group), not one per
        # param group through torch.optim's per-step Python: the same kernel, the same numbers.
        runs: dict[tuple, tuple[list, list, list, list, list]] = {}
        for group in self.param_groups:
            key = (float(group["lr"]), *group["betas"], group["eps"], group["weight_decay"])
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    self._lazy_update(group, p, g.coalesce())
                    continue
                state = self.state[p]
                if not state:
                    self._init_state(state, p)
                run = runs.get(key)
                if run is None:
                    run = runs[key] = ([], [], [], [], [])
                run[0].append(p)
                run[1].append(g)
                run[2].append(state["exp_avg"])
                run[3].append(state["exp_avg_sq"])
                run[4].append(state["step"])
        kernel = torch._fused_adamw_ if self.decoupled_decay else torch._fused_adam_
        for (lr, beta1, beta2, eps, wd), (ps, gs, ms, vs, steps) in runs.items():
            torch._foreach_add_(steps, 1)  # the kernel reads the step count, it does not count
            kernel(ps, gs, ms, vs, [], steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd, eps=eps,
                   amsgrad=False, maximize=False, grad_scale=None, found_inf=None)

    def _fast_ok(self) -> bool:
        """Whether every group is what the fused fast path computes exactly as torch would:
        fused, no amsgrad or maximize, a float rate, weights on one device in float32."""
        for group in self.param_groups:
            if not group.get("fused") or group["amsgrad"] or group["maximize"] or group.get("differentiable") \
                    or group.get("capturable") or isinstance(group["lr"], torch.Tensor):
                return False
            for p in group["params"]:
                if p.dtype != torch.float32 or p.device.type not in ("cpu", "cuda"):
                    return False
        return True

    @staticmethod
    def _init_state(state: dict, p: torch.Tensor) -> None:
        # torch's fused Adam layout: a float32 step count on the weight's device
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def _torch_step(self, closure=None):
        """torch's own step for dense gradients, the lazy update for sparse ones."""
        sparse = [(g, p) for g in self.param_groups for p in g["params"]
                  if p.grad is not None and p.grad.is_sparse]
        held = {}
        for _, p in sparse:  # hide sparse gradients from the dense (fused) update
            held[p], p.grad = p.grad, None
        loss = super().step(closure)
        for group, p in sparse:
            p.grad = held[p]
            self._lazy_update(group, p, p.grad.coalesce())
        return loss

    def _lazy_update(self, group, p, grad):
        if group.get("amsgrad") or group.get("maximize"):
            raise ValueError("LazyAdam: amsgrad and maximize need dense gradients")
        state = self.state[p]
        if not state:
            self._init_state(state, p)
        rows, values = grad.indices()[0], grad.values()
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        lr = float(lr)
        if p.device.type in ("cpu", "cuda") and p.dtype == values.dtype and state["step"].device == p.device:
            # torch's fused Adam kernel on copies of those rows: fewer, larger operator calls
            # than the update written out below, which is the same math.
            w, m, v = p.index_select(0, rows), state["exp_avg"].index_select(0, rows), \
                state["exp_avg_sq"].index_select(0, rows)
            state["step"] += 1
            kernel = torch._fused_adamw_ if self.decoupled_decay else torch._fused_adam_
            kernel([w], [values], [m], [v], [], [state["step"]], lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd,
                   eps=eps, amsgrad=False, maximize=False, grad_scale=None, found_inf=None)
            p.index_copy_(0, rows, w)
            state["exp_avg"].index_copy_(0, rows, m)
            state["exp_avg_sq"].index_copy_(0, rows, v)
            return
        if wd:
            if self.decoupled_decay:
                p.index_copy_(0, rows, p.index_select(0, rows) * (1 - lr * wd))
            else:
                values = values + wd * p.index_select(0, rows)
        state["step"] += 1
        t = float(state["step"])
        m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
        p.index_add_(0, rows, m / denom, alpha=-lr / (1 - beta1 ** t))


class LazyAdamW(LazyAdam):
    decoupled_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kw):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=True, **kw)


def clip_grad_norm_(params, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ that also takes row-sparse gradients."""
    grads = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad.values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef)
    return total


# torch.autograd.grad's engine entry point (the one it calls itself); None if a torch version
# lacks it, and optimizer_step falls back to loss.backward().
_ENGINE = getattr(getattr(torch.autograd, "Variable", None), "_execution_engine", None)
_ONE = torch.ones(())


def optimizer_step(opt, loss: torch.Tensor | None, params: list[torch.Tensor], clip: float = 0.0, *,
                   lrs: list[float] | None = None, after_backward=None, backward=None) -> None:
    """One step of `opt` on `loss`, the only place the trainer and deephtm detect take one:
    fresh gradients of `params` (the weights opt steps), after_backward() (e.g. averaging
    them over data-parallel ranks), the gradient norm clipped to `clip` (0: off), each
    group's learning rate set to `lrs` (None: left as it is), then the update.
    backward: a function that sets the fresh gradients of `params` itself (a step recorded
    without autograd, deephtm/kernels/tape.py), in place of autograd on `loss`."""
    direct = clip <= 0 and after_backward is None and _ENGINE is not None
    if backward is not None:
        backward()
    elif direct and type(opt) is PlainSGD:
        opt.step_on(loss)
        return
    elif direct:
        # The gradients straight from the autograd engine, set once each: the same numbers as
        # zeroing, loss.backward() and accumulating, in fewer calls.
        wanted = tuple(p for p in params if p.requires_grad)
        for p, g in zip(wanted, engine_grads(loss, wanted)):
            p.grad = g
    else:
        for p in params:
            p.grad = None
        loss.backward()
    if after_backward is not None:
        after_backward()
    if clip > 0:
        clip_grad_norm_([p for p in params if p.grad is not None], clip)
    if lrs is not None:
        for group, lr in zip(opt.param_groups, lrs):
            group["lr"] = lr
    update_now(opt)


def engine_grads(loss: torch.Tensor, params) -> tuple:
    """The gradients of `loss` for `params` straight from the autograd engine, not
    accumulated into .grad: loss.backward()'s numbers without its per-call Python."""
    return _ENGINE.run_backward((loss,), (_ONE,), False, False, tuple(params),
                                allow_unreachable=True, accumulate_grad=False)


def plain_sgd_group(group: dict) -> bool:
    """An SGD group whose step is weight -= lr * grad: no momentum, weight decay, maximize or
    differentiable step, and a float rate."""
    return not (group["momentum"] or group["weight_decay"] or group["maximize"] or group.get("differentiable")
                or isinstance(group["lr"], torch.Tensor))


class SGD(torch.optim.SGD):
    """torch's SGD; plain groups (no momentum, weight decay, maximize or nesterov) step as
    one add_ per weight (one _foreach_add_ for the dense ones) without torch.optim's
    per-step Python: the same numbers."""

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None or not self._fast_ok():
            return super().step(closure)
        self.update()
        return None

    def _fast_ok(self) -> bool:
        return all(map(plain_sgd_group, self.param_groups))

    def update(self) -> None:
        """step()'s fast path, for callers that checked _fast_ok() and hold no_grad."""
        for group in self.param_groups:
            lr = -float(group["lr"])
            dense_p, dense_g = [], []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse or g.dtype != p.dtype or g.device != p.device:
                    p.add_(g, alpha=lr)
                else:
                    dense_p.append(p)
                    dense_g.append(g)
            if dense_p:
                torch._foreach_add_(dense_p, dense_g, alpha=lr)


def update_now(opt) -> None:
    """opt.step(), calling the fast paths of LazyAdam and SGD directly: torch.optim wraps
    every step() in a profiler range and its hooks' checks, which cost more than a plain SGD
    step at batch 1. Any optimizer with hooks registered, or without a fast path for its
    settings, takes its step()."""
    hooked = torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks
    with torch.no_grad():
        for o in opt.optimizers if isinstance(opt, MultiOptimizer) else (opt,):
            if (isinstance(o, (LazyAdam, SGD)) and not hooked and not o._optimizer_step_pre_hooks
                    and not o._optimizer_step_post_hooks and o._fast_ok()):
                o.update()
            else:
                o.step()


class PlainSGD:
    """Weights that are all in plain SGD groups (no momentum, weight decay or maximize),
    stepped as one add_ each, without torch.optim's per-step bookkeeping: the same numbers."""

    def __init__(self, steps: list[tuple[torch.Tensor, float]]):
        self.steps = steps  # (weight, lr)
        self.params = tuple(p for p, _ in steps)

    @classmethod
    def of(cls, opt, params: list[torch.Tensor]) -> "PlainSGD | None":
        steps = plain_sgd(opt, params)
        return None if steps is None else cls(steps)

    @torch.no_grad()
    def step(self) -> None:
        for p, lr in self.steps:
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)

    def step_on(self, loss: torch.Tensor) -> None:
        """Gradients straight from the autograd engine, no .grad round trip: the same numbers
        as loss.backward(), without its per-call Python argument handling."""
        with torch.no_grad():
            for (p, lr), g in zip(self.steps, engine_grads(loss, self.params)):
                if g is not None:
                    p.add_(g, alpha=-lr)


def plain_sgd(opt, params: list[torch.Tensor]) -> list[tuple[torch.Tensor, float]] | None:
    """(weight, lr) for each of `params` when every one is in a plain SGD group
    (plain_sgd_group), else None."""
    optimizers = opt.optimizers if isinstance(opt, MultiOptimizer) else [opt] if opt is not None else []
    wanted, steps = {id(p) for p in params}, []
    for o in optimizers:
        for g in o.param_groups:
            ps = [p for p in g["params"] if id(p) in wanted]
            if not ps:
                continue
            if not isinstance(o, torch.optim.SGD) or not plain_sgd_group(g):
                return None
            steps += [(p, float(g["lr"])) for p in ps]
    return steps if len(steps) == len(params) else None


def _build(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    # Fused Adam is several times faster than the default on the CPU for small models; the
    # Lazy variants are the same for dense gradients and update only the rows of a sparse one.
    if name == "adam":
        return LazyAdam(groups, fused=True)
    if name == "adamw":
        return LazyAdamW(groups, fused=True)
    return SGD(groups)


def make_optimizer(name: str, groups, lr: float, device: torch.device | None = None):
    """groups: parameters, or param-group dicts that may name their own "optimizer".
    Returns one optimizer, a MultiOptimizer when nodes ask for different kinds, or None."""
    by_kind: dict[str, list[dict]] = {}
    for g in groups:
        g = dict(g) if isinstance(g, dict) else {"params": [g]}
        kind = g.pop("optimizer", None) or name
        g.setdefault("lr", lr)
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if g["params"]:
            by_kind.setdefault(kind, []).append(g)
    optimizers = [_build(kind, gs) for kind, gs in by_kind.items()]
    if not optimizers:
        return None
    return optimizers[0] if len(optimizers) == 1 else MultiOptimizer(optimizers)


class MultiOptimizer:
    """Several optimizers stepped together, with one state dict in torch's format (param
    indices run on across the optimizers), so checkpoints treat it like any optimizer."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for i, o in enumerate(self.optimizers):
            sd = o.state_dict()
            for idx, s in sd["state"].items():
                state[idx + offset] = s
            for g in sd["param_groups"]:
                groups.append(dict(g, params=[p + offset for p in g["params"]], optimizer_index=i))
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        offset = 0
        for i, o in enumerate(self.optimizers):
            groups = [g for g in sd["param_groups"] if g.get("optimizer_index") == i]
            n = sum(len(g["params"]) for g in groups)
            state = {idx - offset: s for idx, s in sd["state"].items() if offset <= int(idx) < offset + n}
            o.load_state_dict({"state": state, "param_groups": [
                {k: v for k, v in dict(g, params=[p - offset for p in g["params"]]).items() if k != "optimizer_index"}
                for g in groups]})
            offset += n
