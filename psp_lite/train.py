"""Training: one run = one `RunConfig` -> one `RunHistory` (per-epoch numbers); many runs at
once on a GPU (`train_many`); `run` / `run_many` add the on-disk cache.

The defaults are the authors' LeNet5 protocol: SGD lr 0.1, no momentum, batch 100, test batch
1000. `paper_config` gives each experiment's full protocol.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from psp_lite import cache
from psp_lite.batched import group_key, train_many
from psp_lite.batching import batches
from psp_lite.data import TensorData, load_dataset
from psp_lite.device import describe
from psp_lite.loop import (
    DIVERGENCE_CHECK_STEPS,
    autocast,
    evaluate,
    init_model,
    layer_names,
    record_epoch,
)
from psp_lite.potentials import capture
from psp_lite.regularizers import psp_penalty
from psp_lite.runs import (
    REGULARIZERS,
    RunConfig,
    RunHistory,
    TrainingDiverged,
    check_data,
    paper_config,
)

__all__ = ["REGULARIZERS", "RunConfig", "RunHistory", "TrainingDiverged", "check_data",
           "evaluate", "paper_config", "run", "run_many", "train", "train_many"]


def _diverged(history: RunHistory, epoch: int, value: float) -> TrainingDiverged:
    config = history.config
    history.diverged_at = epoch
    return TrainingDiverged(
        f"{config.label}: the training loss became {value} in epoch {epoch}; try a smaller "
        f"lambda (now {config.lam:g}) or learning rate (now {config.lr:g}). The {epoch - 1} "
        "epochs before are kept in this error's history.", history)


def train(config: RunConfig, data: TensorData | None = None, *, data_dir: str | Path | None = None,
          progress: bool = True) -> RunHistory:
    """Train one run from scratch (no cache) and return its history.

    PSP is a term of the loss (`capture` + `psp_penalty`, Eq. 7), l2 is SGD's weight decay
    (Eq. 5). The caller's random state is left as it was. A NaN/inf loss raises
    `TrainingDiverged`, whose `history` keeps the epochs before it (marked `diverged_at`).
    """
    config = config.resolved()
    device = torch.device(config.device)
    if data is None:
        data = load_dataset(config.dataset, data_dir, device=device,
                            train_subset=config.train_subset, test_subset=config.test_subset)
    model = init_model(config, device)
    weight_decay = config.lam if config.regularizer == "l2" else 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones),
                                                     config.lr_gamma)
    order = torch.Generator().manual_seed(config.seed)
    psp = config.regularizer == "psp" and config.lam > 0
    history = RunHistory(config, device=describe(device), data_note=data.note)
    steps_per_epoch = math.ceil(len(data.train_y) / config.batch_size)

    bar = tqdm(range(1, config.epochs + 1), desc=config.label, unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        seen = 0
        steps = tqdm(batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                             generator=order, augment=config.augment),
                     total=steps_per_epoch, leave=False, unit="batch", disable=not progress)
        for step, (x, y) in enumerate(steps, 1):
            with autocast(config):
                if psp:
                    out, potentials = capture(model, x)
                    loss = F.cross_entropy(out, y) + psp_penalty(potentials, config.lam,
                                                                 config.normalization)
                else:
                    loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            seen += len(y)
            if step % DIVERGENCE_CHECK_STEPS == 0 and not torch.isfinite(total).item():
                raise _diverged(history, epoch, total.item())
        scheduler.step()
        train_loss = (total / seen).item()
        if not math.isfinite(train_loss):
            raise _diverged(history, epoch, train_loss)
        test_loss, test_error, z2 = evaluate(model, data, config.test_batch_size)
        record_epoch(history, epoch, time.perf_counter() - start, train_loss, test_loss,
                     test_error, z2, layer_names(model, list(z2)), model.named_parameters())
        bar.set_postfix(test_error=f"{test_error:.2f}%", z2=f"{history.z2[-1]:.3g}")
    return history


def run(config: RunConfig, *, data: TensorData | None = None, data_dir: str | Path | None = None,
        use_cache: bool = True, progress: bool = True) -> RunHistory:
    """`train(config)`, reusing a cached history of the same config and data when there is one.

    The data is loaded first (it is cached per process): the cache key holds its fingerprint.
    Data passed in must be the config's dataset with the config's subset sizes.
    An unwritable cache folder is reported before training starts; if saving still fails after
    training, a warning names the folder and the history is returned all the same.
    """
    config = config.resolved()
    if data is None:
        data = load_dataset(config.dataset, data_dir, device=config.device,
                            train_subset=config.train_subset, test_subset=config.test_subset)
    else:
        check_data(config, data)
    if not use_cache:
        return train(config, data, progress=progress)
    cached = cache.load(config, data.fingerprint)
    if cached is not None:
        return cached
    cache.check_writable()
    history = train(config, data, progress=progress)
    _save(history, data.fingerprint)
    return history


def _save(history: RunHistory, fingerprint: dict) -> None:
    """Cache a finished run; if that fails, warn naming the place and keep going (the history
    is still returned to the caller, so no training is lost)."""
    try:
        cache.save(history, fingerprint)
    except OSError as error:
        where = cache.path_for(history.config, fingerprint)
        warnings.warn(f"could not save the finished run to {where} ({error}); returning it "
                      f"uncached. Make {cache.cache_dir()} writable or "
                      "set $PSP_LITE_CACHE to a writable folder to keep runs.", stacklevel=3)


#: At most this many runs train together: enough to fill a GPU with LeNet5 (Fig. 2's 30 runs
#: are one group), few enough that an interruption loses one chunk, not a whole protocol.
MAX_TOGETHER = 30


def run_many(configs: Sequence[RunConfig], *, data: TensorData | None = None,
             data_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
             batched: bool | None = None) -> list[RunHistory]:
    """`run()` for many configs: cached histories are reused, the rest trained and cached.

    Runs that can share kernels (`group_key`) are trained together by `train_many` when
    `batched` (default: on CUDA, where it is faster; on a CPU one after another is faster).
    A run that diverges comes back with `diverged_at` set instead of raising, and is not cached.
    """
    configs = [c.resolved() for c in configs]
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(group_key(config), []).append(i)
    histories: dict[int, RunHistory] = {}
    for indices in groups.values():
        first = configs[indices[0]]
        if data is None:
            group_data = load_dataset(first.dataset, data_dir, device=first.device,
                                      train_subset=first.train_subset,
                                      test_subset=first.test_subset)
        else:
            check_data(first, data)
            group_data = data
        todo = []
        for i in indices:
            cached = cache.load(configs[i], group_data.fingerprint) if use_cache else None
            if cached is None:
                todo.append(i)
            else:
                histories[i] = cached
        if todo and use_cache:
            cache.check_writable()
        together = (torch.device(first.device).type == "cuda") if batched is None else batched
        size = MAX_TOGETHER if together else 1
        for chunk in (todo[k:k + size] for k in range(0, len(todo), size)):
            group = [configs[i] for i in chunk]
            trained = (train_many(group, group_data, progress=progress) if len(group) > 1
                       else [_train_keeping_divergence(group[0], group_data, progress)])
            for i, history in zip(chunk, trained, strict=True):  # cached chunk by chunk
                if use_cache and history.diverged_at is None:
                    _save(history, group_data.fingerprint)
                histories[i] = history
    return [histories[i] for i in range(len(configs))]


def _train_keeping_divergence(config: RunConfig, data: TensorData, progress: bool) -> RunHistory:
    try:
        return train(config, data, progress=progress)
    except TrainingDiverged as error:
        return error.history
