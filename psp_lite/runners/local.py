"""A list of `RunConfig`s -> their histories: here, one run after another (`local`), or as Ray
tasks on a cluster (`ray`, the optional `cluster` extra).

Both runners reuse the run cache and keep going past a run that fails for its own reasons
(`FAILURES`: divergence, a bad config, data missing): its place in the returned list holds a
`FailedRun` instead of a history (`psp_lite.runners.outcomes`). Callers that need every run call
`histories_or_raise(outcomes)`, which raises the first failure's own error. The Ray path (device
resolution on the driver, the driver-side cache, retries) lives in `psp_lite.runners.ray_cluster`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from psp_lite.runners.cached import run, run_many
from psp_lite.runners.outcomes import (
    FAILURES,
    FailedRun,
    OnResult,
    Outcome,
    finish_bar,
    record_outcome,
    runs_bar,
)
from psp_lite.runners.ray_cluster import resolve_for_ray, run_ray
from psp_lite.runners.spec import Runner, as_runner
from psp_lite.training.batched import group_key
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged


def run_configs(
    configs: Iterable[RunConfig],
    *,
    runner: str | Runner = "local",
    address: str | None = None,
    resources: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    on_result: OnResult | None = None,
    desc: str = "runs",
) -> list[Outcome]:
    """Train (or load from the cache) every config; one outcome per config, in order.

    `on_result(i, outcome)` is called on the driver as each run ends (cached runs included).
    With `progress`, one bar over the runs and, for each local run, one over its epochs.
    """
    spec = as_runner(runner, address, resources)
    configs = list(configs)
    if spec.kind == "local":
        return _run_local(configs, data_dir=data_dir, use_cache=use_cache, progress=progress,
                          on_result=on_result, desc=desc)
    return run_ray(configs, spec, data_dir=data_dir, use_cache=use_cache, progress=progress,
                    on_result=on_result, desc=desc)


def resolve(configs: Iterable[RunConfig], runner: str | Runner = "local") -> list[RunConfig]:
    """The configs as `runner` will key and train them (device "auto" resolved)."""
    spec = as_runner(runner)
    if spec.kind == "local":
        return [c.resolved() for c in configs]
    return resolve_for_ray(configs, spec.address, spec.resources)


# ----------------------------------------------------------------------------- local


def _run_local(configs: list[RunConfig], *, data_dir: str | Path | None, use_cache: bool,
               progress: bool, on_result: OnResult | None, desc: str) -> list[Outcome]:
    """On this machine: runs that can share kernels on CUDA go together through
    `psp_lite.runners.cached.run_many` (`train_many`); every other run through `run`, one after
    another (on a CPU that is the faster way)."""
    outcomes: list[Outcome | None] = [None] * len(configs)
    start = time.perf_counter()
    with runs_bar(len(configs), desc, progress and len(configs) > 1) as bar:
        for indices in _local_groups(configs):
            group = [configs[i] for i in indices]
            bar.set_postfix_str(group[0].label if len(group) == 1 else f"{len(group)} together")
            try:
                if len(group) > 1:
                    done = [_as_outcome(h) for h in run_many(
                        group, data_dir=data_dir, use_cache=use_cache, progress=progress,
                        batched=True)]
                else:
                    done = [run(group[0], data_dir=data_dir, use_cache=use_cache,
                                progress=progress)]  # its epochs: error, <z^2>
            except FAILURES as error:
                done = [FailedRun(c, error) for c in group]
            for i, outcome in zip(indices, done, strict=True):
                outcomes[i] = outcome
                record_outcome(bar, i, outcome, on_result)
        finish_bar(bar, outcomes, start)
    return outcomes  # type: ignore[return-value]


def _local_groups(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of the runs to train together: CUDA runs that can share kernels; others alone."""
    groups: dict[object, list[int]] = {}
    for i, config in enumerate(configs):
        resolved = config.resolved()
        cuda = torch.device(resolved.device).type == "cuda"
        groups.setdefault(group_key(resolved) if cuda else i, []).append(i)
    return list(groups.values())


def _as_outcome(history: RunHistory) -> Outcome:
    if history.diverged_at is None:
        return history
    return FailedRun(history.config, TrainingDiverged(
        f"{history.config.label}: the training loss became NaN/inf in epoch "
        f"{history.diverged_at}", history))


