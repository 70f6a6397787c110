"""A list of `RunConfig`s -> their histories: here, one run after another (`local`), or as Ray
tasks on a cluster (`ray`, the optional `cluster` extra).

Both runners reuse the run cache and return every run's history, a diverged one with
`diverged_at` set (cached, not retrained). A run that cannot be prepared (a device this machine
lacks, its data missing) holds a `FailedRun` in its place and the others go on; anything raised
while training (a bug) propagates (`psp_lite.runners.outcomes`). Callers that need every run
finished call `histories_or_raise(outcomes)`. The Ray path (device
resolution on the driver, the driver-side cache, retries) lives in `psp_lite.runners.ray_cluster`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from psp_lite.data import load_dataset
from psp_lite.runners.cached import run_many
from psp_lite.runners.outcomes import (
    DATA_FAILURES,
    RESOLVE_FAILURES,
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
    """On this machine, through `psp_lite.runners.cached.run_many`: runs that can share kernels
    on CUDA go together (`train_many`); every other run alone, one after another (on a CPU that
    is the faster way)."""
    outcomes: list[Outcome | None] = [None] * len(configs)
    start = time.perf_counter()
    with runs_bar(len(configs), desc, progress and len(configs) > 1) as bar:
        resolved: dict[int, RunConfig] = {}
        for i, config in enumerate(configs):
            try:
                resolved[i] = config.resolved()
            except RESOLVE_FAILURES as error:  # e.g. "cuda" on a machine without one
                outcomes[i] = FailedRun(config, error)
                record_outcome(bar, i, outcomes[i], on_result)
        for indices in _local_groups(resolved):
            group = [resolved[i] for i in indices]
            bar.set_postfix_str(group[0].label if len(group) == 1 else f"{len(group)} together")
            done = _run_group(group, data_dir, use_cache,
                              progress)  # every run shows its epochs: error, <z^2>
            for i, outcome in zip(indices, done, strict=True):
                outcomes[i] = outcome
                record_outcome(bar, i, outcome, on_result)
        finish_bar(bar, outcomes, start)
    return outcomes  # type: ignore[return-value]


def _run_group(group: list[RunConfig], data_dir: str | Path | None, use_cache: bool,
               progress: bool) -> list[Outcome]:
    """One group's outcomes: its data loaded (missing data fails the group's runs), then
    `run_many`, outside any except: what training raises propagates."""
    first = group[0]
    try:
        data = load_dataset(first.dataset, data_dir, device=first.device,
                            train_subset=first.train_subset, test_subset=first.test_subset)
    except DATA_FAILURES as error:
        return [FailedRun(c, error) for c in group]
    return list(run_many(group, data=data, use_cache=use_cache, progress=progress,
                         batched=len(group) > 1))


def _local_groups(configs: dict[int, RunConfig]) -> list[list[int]]:
    """Indices of the runs to train together: CUDA runs that can share kernels; others alone."""
    groups: dict[object, list[int]] = {}
    for i, config in configs.items():
        cuda = torch.device(config.device).type == "cuda"
        groups.setdefault(group_key(config) if cuda else i, []).append(i)
    return list(groups.values())
