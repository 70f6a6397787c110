"""Many runs at once: K runs of one network trained together in the same kernels.

On a GPU a LeNet5 step at batch 100 is a few dozen tiny kernels whose launch cost, not their
arithmetic, sets the speed. `train_many` stacks the K runs' parameters (`torch.func`:
`stack_module_state`, `functional_call`, `vmap`), so each kernel does the work of K runs. Every
run keeps what makes it itself: its own initialization and batch order (exactly as
`train(config)` draws them), its own regularizer and lambda (PSP as a term of its loss, Eq. 7;
l2 as its own weight decay, Eq. 5), its own history. The runs must share everything else.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from tqdm.auto import tqdm

from psp_lite.data import TensorData, load_dataset
from psp_lite.data.batches import batches
from psp_lite.device import describe
from psp_lite.potentials import layer_names, output_name, watch_potentials
from psp_lite.regularizers import psp_penalty
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory
from psp_lite.training.loop import DIVERGENCE_CHECK_STEPS, autocast, init_model, record_epoch

#: What runs trained together must have in common (they may differ in seed, regularizer, lam).
SHARED = ("dataset", "model", "epochs", "batch_size", "test_batch_size", "lr", "momentum",
          "lr_milestones", "lr_gamma", "augment", "device", "train_subset", "test_subset",
          "precision")


def group_key(config: RunConfig) -> tuple:
    """Runs with equal keys can be trained together by `train_many`."""
    return tuple(getattr(config, name) for name in SHARED)


def check_compatible(configs: Sequence[RunConfig]) -> None:
    """Raise ValueError naming the first field in which the runs differ."""
    if not configs:
        raise ValueError("train_many needs at least one config.")
    for name in SHARED:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"train_many trains runs that share {name}; got {sorted(values)}. "
                             "Group the configs with psp_lite.training.batched.group_key first.")
    norms = {c.normalization for c in configs if c.regularizer == "psp"}
    if len(norms) > 1:
        raise ValueError("the PSP runs of one train_many call must share their normalization; "
                         f"got {sorted(norms)}.")


class _Stacked:
    """K copies of one network: stacked parameters and buffers, a weightless base to call."""

    def __init__(self, configs: Sequence[RunConfig], device: torch.device) -> None:
        models = [init_model(c, device) for c in configs]
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")

    def named_parameters(self, k: int) -> list[tuple[str, Tensor]]:
        return [(name, p[k]) for name, p in self.params.items()]


def _per_run(values: Sequence[float], device: torch.device) -> Tensor:
    return torch.tensor(list(values), dtype=torch.float32, device=device)


def _lr(config: RunConfig, epoch: int) -> float:
    """The learning rate of `epoch` (1-based) under MultiStepLR(milestones, gamma)."""
    drops = sum(m <= epoch - 1 for m in config.lr_milestones)
    return config.lr * config.lr_gamma ** drops


def _epoch_batches(data: TensorData, configs: Sequence[RunConfig], orders: list[torch.Generator]):
    """Yield (x, y) of shape (K, B, ...) / (K, B): run k's batch drawn as train() draws it."""
    config = configs[0]
    if config.augment:  # each run's crops and flips come from its own generator, batch by batch
        streams = [batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                           generator=g, augment=True) for g in orders]
        for items in zip(*streams, strict=True):
            yield torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
        return
    n = len(data.train_y)
    perms = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(data.train_x.device)
    for start in range(0, n, config.batch_size):
        idx = perms[:, start:start + config.batch_size]
        yield data.train_x[idx], data.train_y[idx]


def train_many(configs: Sequence[RunConfig], data: TensorData | None = None, *,
               data_dir: str | Path | None = None, progress: bool = True) -> list[RunHistory]:
    """Train `configs` together; return one history per config, in order.

    Each history equals what `train(config)` gives (same initialization and batch order, up to
    float rounding). A run whose loss becomes NaN/inf stops alone: its history keeps the epochs
    before and has `diverged_at` set; the others go on. No exception is raised for it.
    Without `data`, the dataset is loaded from `data_dir` (as `train` does).
    """
    configs = [c.resolved() for c in configs]
    check_compatible(configs)
    first, k_runs = configs[0], len(configs)
    device = torch.device(first.device)
    if data is None:
        data = load_dataset(first.dataset, data_dir, device=device,
                            train_subset=first.train_subset,
                            test_subset=first.test_subset)
    net = _Stacked(configs, device)
    psp_lam = _per_run([c.lam if c.regularizer == "psp" else 0.0 for c in configs], device)
    decay = [c.lam if c.regularizer == "l2" else 0.0 for c in configs]
    normalization = next((c.normalization for c in configs if c.regularizer == "psp"),
                         first.normalization)
    use_psp = bool(psp_lam.any())
    zs: list[Tensor] = []

    def loss_of(params, buffers, x, y, lam):
        zs.clear()
        with autocast(first):
            out = functional_call(net.base, (params, buffers), (x,))
            loss = F.cross_entropy(out, y)
            if use_psp:  # lam * penalty(lam=1): one graph for every run, zero where lam is 0
                loss = loss + lam * psp_penalty([*zs, out], 1.0, normalization)
        return loss

    step = vmap(grad_and_value(loss_of))
    weight_decay = _per_run(decay, device) if any(decay) else None
    momentum = first.momentum
    buffers_sgd: dict[str, Tensor] = {}
    orders = [torch.Generator().manual_seed(c.seed) for c in configs]
    histories = [RunHistory(c, device=f"{describe(device)}, {k_runs} runs batched",
                            data_note=data.note) for c in configs]
    alive = torch.ones(k_runs, dtype=torch.bool, device=device)
    steps_per_epoch = math.ceil(len(data.train_y) / first.batch_size)
    bar = tqdm(total=first.epochs * steps_per_epoch, desc=f"{k_runs} runs together",
               unit="step", disable=not progress)
    for epoch in range(1, first.epochs + 1):
        start = time.perf_counter()
        lr = _lr(first, epoch)
        total = torch.zeros(k_runs, device=device)
        seen = 0
        with watch_potentials(net.base, lambda name, z: zs.append(z)):
            for i, (x, y) in enumerate(_epoch_batches(data, configs, orders), 1):
                grads, loss = step(net.params, net.buffers, x, y, psp_lam)
                _sgd(net.params, grads, buffers_sgd, lr * alive, momentum, weight_decay)
                total += loss * y.shape[1]
                seen += y.shape[1]
                bar.update()
                if i % DIVERGENCE_CHECK_STEPS == 0:
                    _stop_diverged(total, alive, histories, epoch)
        zs.clear()
        train_loss = total / seen
        _stop_diverged(train_loss, alive, histories, epoch)
        if not alive.any():
            break
        test_loss, test_error, z2 = evaluate_many(net, data, first.test_batch_size)
        seconds = time.perf_counter() - start
        layers = layer_names(net.base, list(z2))  # the weightless base names them as well
        train_loss_host = train_loss.tolist()
        for k, history in enumerate(histories):
            if history.diverged_at is None:
                record_epoch(history, epoch, seconds, train_loss_host[k], test_loss[k],
                             test_error[k], OrderedDict((n, v[k]) for n, v in z2.items()),
                             layers, net.named_parameters(k))
        errors = [h.test_error[-1] for h in histories if h.diverged_at is None]
        bar.set_postfix(test_error=f"{min(errors):.2f}-{max(errors):.2f}%")
    bar.close()
    return histories


@torch.no_grad()
def _sgd(params: dict[str, Tensor], grads: dict[str, Tensor], momentum_buffers: dict[str, Tensor],
         lr: Tensor, momentum: float, weight_decay: Tensor | None) -> None:
    """torch.optim.SGD's update (dampening 0, no Nesterov), with a learning rate and a weight
    decay per run (the leading dimension)."""
    for name, p in params.items():
        shape = (-1,) + (1,) * (p.dim() - 1)
        d_p = grads[name]
        if weight_decay is not None:
            d_p = d_p + weight_decay.view(shape) * p
        if momentum:
            if name in momentum_buffers:
                d_p = momentum_buffers[name].mul_(momentum).add_(d_p)
            else:
                d_p = momentum_buffers.setdefault(name, d_p.clone())
        p.sub_(lr.view(shape) * d_p)


def _stop_diverged(loss: Tensor, alive: Tensor, histories: list[RunHistory], epoch: int) -> None:
    """Mark runs whose (summed) loss is no longer finite; they stop learning (lr 0)."""
    bad = ~torch.isfinite(loss) & alive
    if bad.any():  # one host sync per check
        for k in bad.nonzero().flatten().tolist():
            histories[k].diverged_at = epoch
        alive &= ~bad


@torch.no_grad()
def evaluate_many(net: _Stacked, data: TensorData, batch_size: int
                  ) -> tuple[list[float], list[float], OrderedDict[str, list[float]]]:
    """Per run: test loss, test error (%) and name -> <z^2> (as `evaluate`); one host sync."""
    zs: OrderedDict[str, Tensor] = OrderedDict()
    names: list[str] = []
    counts: list[int] = []

    def stats(params, buffers, x, y):
        zs.clear()
        out = functional_call(net.base, (params, buffers), (x,))
        potentials = [*zs.values(), out]
        names[:] = [*zs, output_name(zs)]
        sizes = [z.numel() for z in potentials]  # per run: vmap hides the run dimension
        counts[:] = [a + b for a, b in zip(counts, sizes, strict=True)] if counts else sizes
        return torch.stack([F.cross_entropy(out.float(), y, reduction="sum"),
                            (out.argmax(1) != y).sum().float(),
                            *(z.float().square().sum() for z in potentials)])

    per_batch = []
    net.base.eval()
    with watch_potentials(net.base, zs.__setitem__):
        for x, y in batches(data.test_x, data.test_y, batch_size):
            per_batch.append(vmap(stats, in_dims=(0, 0, None, None))(
                net.params, net.buffers, x, y))
    net.base.train()
    totals = torch.stack(per_batch).cpu().double().sum(0).tolist()  # K rows; the one sync
    n = len(data.test_y)
    z2 = OrderedDict((name, [row[2 + i] / counts[i] for row in totals])
                     for i, name in enumerate(names))
    return [row[0] / n for row in totals], [100.0 * row[1] / n for row in totals], z2
