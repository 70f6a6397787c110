"""One run or many through the on-disk run cache, in this process: `run` / `run_many` reuse a
cached history of the same config and data, train the rest (`train`, or `train_many` on CUDA)
and cache them as they finish."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from psp_lite.data import TensorData, load_dataset
from psp_lite.store import cache
from psp_lite.training.batched import group_key, train_many
from psp_lite.training.config import RunConfig, check_data
from psp_lite.training.history import RunHistory, TrainingDiverged
from psp_lite.training.loop import train


def run(config: RunConfig, *, data: TensorData | None = None, data_dir: str | Path | None = None,
        use_cache: bool = True, progress: bool = True) -> RunHistory:
    """`train(config)`, reusing a cached history of the same config and data when there is one.

    The data is loaded first (it is cached per process): the cache key holds its fingerprint.
    Data passed in must be the config's dataset with the config's subset sizes.
    An unwritable cache folder is reported before training starts; if saving still fails after
    training, a warning names the entry and the history is returned all the same. A diverged
    run raises `TrainingDiverged` (as `train` does) and is cached, so it is not retrained.
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
    if cached is not None and cached.diverged_at is not None:
        raise TrainingDiverged(cached)
    if cached is not None:
        return cached
    cache.check_writable()
    try:
        history = train(config, data, progress=progress)
    except TrainingDiverged as error:
        save_or_warn(error.history, data.fingerprint)
        raise
    save_or_warn(history, data.fingerprint)
    return history


def save_or_warn(history: RunHistory, fingerprint: dict) -> bool:
    """Cache a trained run; if that fails, warn naming the entry and keep going (the history
    is still returned to the caller, so no training is lost). Whether it was saved."""
    try:
        cache.save(history, fingerprint)
    except OSError as error:
        where = cache.path_for(history.config, fingerprint)
        warnings.warn(f"could not save the finished run to {where} ({error}); returning it "
                      f"uncached. Make {cache.cache_dir()} writable or "
                      "set $PSP_LITE_CACHE to a writable folder to keep runs.", stacklevel=3)
        return False
    return True


#: At most this many runs train together: enough to fill a GPU with LeNet5 (Fig. 2's 30 runs
#: are one group), few enough that an interruption loses one chunk, not a whole protocol.
MAX_TOGETHER = 30


def run_many(configs: Sequence[RunConfig], *, data: TensorData | None = None,
             data_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
             batched: bool | None = None,
             on_result: Callable[[int, RunHistory], None] | None = None) -> list[RunHistory]:
    """`run()` for many configs: cached histories are reused, the rest trained and cached;
    `on_result(i, history)` is called as each one is ready (cached ones first, per dataset).

    Runs that can share kernels (`group_key`) are trained together by `train_many` when
    `batched` (default: on CUDA, where it is faster; on a CPU one after another is faster).
    A run that diverges comes back with `diverged_at` set instead of raising, and is cached like
    any other (a second call does not retrain it).
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
                if on_result is not None:
                    on_result(i, cached)
        if todo and use_cache:
            cache.check_writable()
        together = (torch.device(first.device).type == "cuda") if batched is None else batched
        size = MAX_TOGETHER if together else 1
        for chunk in (todo[k:k + size] for k in range(0, len(todo), size)):
            group = [configs[i] for i in chunk]
            trained = (train_many(group, group_data, progress=progress) if len(group) > 1
                       else [_train_keeping_divergence(group[0], group_data, progress)])
            for i, history in zip(chunk, trained, strict=True):  # cached chunk by chunk
                if use_cache:
                    save_or_warn(history, group_data.fingerprint)
                histories[i] = history
                if on_result is not None:
                    on_result(i, history)
    return [histories[i] for i in range(len(configs))]


def _train_keeping_divergence(config: RunConfig, data: TensorData, progress: bool) -> RunHistory:
    try:
        return train(config, data, progress=progress)
    except TrainingDiverged as error:
        return error.history
