"""A list of `RunConfig`s -> their histories: here, one run after another (`local`), or as Ray
tasks on a cluster (`ray`, the optional `cluster` extra).

Both runners reuse the run cache and keep going past a run that fails for its own reasons
(`FAILURES`: divergence, a bad config, data missing): its place in the returned list holds a
`FailedRun` instead of a history (`psp_lite.outcomes`). Callers that need every run call
`histories_or_raise(outcomes)`, which raises the first failure's own error. The Ray path (device
resolution on the driver, the driver-side cache, retries) lives in `psp_lite.ray_runner`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from psp_lite import train
from psp_lite.batched import group_key
from psp_lite.outcomes import (
    FAILURES,
    FailedRun,
    OnResult,
    Outcome,
    finished,
    histories_or_raise,
    runs_bar,
    summarize,
)
from psp_lite.ray_runner import (
    CLUSTER_EXTRA,
    CRASH_ONCE_ENV,
    RayUnavailable,
    import_ray,
    resolve_for_ray,
    run_ray,
)
from psp_lite.train import RunConfig, RunHistory, TrainingDiverged

RUNNERS = ("local", "ray")

__all__ = ["CLUSTER_EXTRA", "CRASH_ONCE_ENV", "FAILURES", "RUNNERS", "FailedRun", "OnResult",
           "Outcome", "RayUnavailable", "Runner", "add_cli_arguments", "as_runner",
           "histories_or_raise", "resolve", "run_configs", "runner_from_cli"]


@dataclass(frozen=True)
class Runner:
    """Where runs train: `kind` "local" or "ray"; for Ray, the cluster `address` (None: start
    Ray on this machine; "auto" or "ray://host:10001": join) and per-task `resources` (Ray task
    options such as {"num_gpus": 0.25, "num_cpus": 2, "max_retries": 3})."""

    kind: str = "local"
    address: str | None = None
    resources: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown runner {self.kind!r}; use one of {RUNNERS}.")


def as_runner(runner: str | Runner, address: str | None = None,
              resources: Mapping[str, Any] | None = None) -> Runner:
    """`runner` as a `Runner` ("local" / "ray" with `address` and `resources`)."""
    if isinstance(runner, Runner):
        if address is not None or resources is not None:
            raise ValueError("give address and resources in the Runner, not beside it.")
        return runner
    return Runner(runner, address, resources)


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
    With `progress`, one bar over the runs (a single local run shows its epoch bar instead).
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
    `psp_lite.train.run_many` (`train_many`); every other run through `train.run`, one after
    another (on a CPU that is the faster way)."""
    outcomes: list[Outcome | None] = [None] * len(configs)
    start = time.perf_counter()
    with runs_bar(len(configs), desc, progress and len(configs) > 1) as bar:
        for indices in _local_groups(configs):
            group = [configs[i] for i in indices]
            bar.set_postfix_str(group[0].label if len(group) == 1 else f"{len(group)} together")
            try:
                if len(group) > 1:
                    done = [_as_outcome(h) for h in train.run_many(
                        group, data_dir=data_dir, use_cache=use_cache, progress=progress,
                        batched=True)]
                else:
                    done = [train.run(group[0], data_dir=data_dir, use_cache=use_cache,
                                      progress=progress and len(configs) == 1)]
            except FAILURES as error:
                done = [FailedRun(c, error) for c in group]
            for i, outcome in zip(indices, done, strict=True):
                outcomes[i] = outcome
                finished(bar, i, outcome, on_result)
        summarize(bar, outcomes, start)
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


# ----------------------------------------------------------------------------- command line


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """`--ray [ADDRESS]`, `--gpus-per-run`, `--cpus-per-run` (for `reproduce` and `sweep`)."""
    group = parser.add_argument_group("cluster (needs the extra: " + CLUSTER_EXTRA + ")")
    group.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="train the runs as Ray tasks: alone, start Ray on this machine; "
                       "'auto' or ray://HOST:10001 joins a running cluster")
    group.add_argument("--gpus-per-run", type=float, metavar="G",
                       help="with --ray: GPUs per run, fractions allowed (default: 1 where the "
                       "cluster has GPUs, else 0)")
    group.add_argument("--cpus-per-run", type=float, metavar="C",
                       help="with --ray: CPUs per run (default 1)")


def runner_from_cli(args: argparse.Namespace) -> Runner:
    """The runner the command line asks for; with --ray, Ray must be importable."""
    resources = {name: value for name, value in (("num_gpus", args.gpus_per_run),
                                                 ("num_cpus", args.cpus_per_run))
                 if value is not None}
    if args.ray is None:
        if resources:
            raise ValueError("--gpus-per-run and --cpus-per-run need --ray.")
        return Runner()
    if resources.get("num_gpus", 0) < 0 or resources.get("num_cpus", 1) <= 0:
        raise ValueError("--gpus-per-run must be >= 0 and --cpus-per-run > 0.")
    import_ray()
    return Runner("ray", args.ray or None, resources or None)
