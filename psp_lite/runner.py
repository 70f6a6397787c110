"""A list of `RunConfig`s -> their histories: here, one run after another (`local`), or as Ray
tasks on a cluster (`ray`, the optional `cluster` extra).

Both runners reuse the run cache and keep going past a run that fails for its own reasons
(`FAILURES`: divergence, a bad config, data missing): its place in the returned list holds a
`FailedRun` instead of a history. Callers that need every run call
`histories_or_raise(outcomes)`, which raises the first failure's own error.

On `ray`, every run not already in the driver's cache becomes one task. The driver resolves each
config's device first ("auto" -> "cuda" when the tasks ask for GPUs, else "cpu"), so the worker
trains exactly the config the cache is keyed by. A worker loads each dataset once per process,
returns the history by value, and the driver writes it to its own cache as soon as it arrives (no
shared filesystem). Interrupting the driver keeps every run that has arrived; calling again trains
only the rest. A worker process that dies is retried by Ray (`max_retries`, 2 by default); a run
that fails for its own reasons is not retried.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from psp_lite import cache, train
from psp_lite.batched import group_key
from psp_lite.data import DatasetNotFoundError, TensorData, load_dataset
from psp_lite.train import RunConfig, RunHistory, TrainingDiverged

RUNNERS = ("local", "ray")
#: Errors that belong to one run: reported in its place, never retried, the others go on.
FAILURES: tuple[type[BaseException], ...] = (TrainingDiverged, ValueError, DatasetNotFoundError)
CLUSTER_EXTRA = 'pip install -e ".[cluster]"'
#: Test-only: a path; the first Ray task that finds no file there creates it and kills its worker.
CRASH_ONCE_ENV = "PSP_LITE_TEST_CRASH_ONCE"


class RayUnavailable(RuntimeError):
    """The `ray` runner was asked for but Ray is not installed or the cluster cannot be joined."""


@dataclass
class FailedRun:
    """A run that did not finish: its (resolved) config and the error that stopped it."""

    config: RunConfig
    error: BaseException

    @property
    def diverged(self) -> bool:
        return isinstance(self.error, TrainingDiverged)

    def __str__(self) -> str:
        return (f"{self.config.label}, seed {self.config.seed}: "
                f"{type(self.error).__name__}: {self.error}")


Outcome = RunHistory | FailedRun
OnResult = Callable[[int, Outcome], None]


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
    return _run_ray(configs, spec, data_dir=data_dir, use_cache=use_cache, progress=progress,
                    on_result=on_result, desc=desc)


def resolve(configs: Iterable[RunConfig], runner: str | Runner = "local") -> list[RunConfig]:
    """The configs as `runner` will key and train them (device "auto" resolved)."""
    spec = as_runner(runner)
    if spec.kind == "local":
        return [c.resolved() for c in configs]
    ray = import_ray()
    connect(ray, spec.address)
    configs = list(configs)
    options = _task_options(ray, spec.resources, configs)
    return [_resolve_for_ray(c, options) for c in configs]


def histories_or_raise(outcomes: Sequence[Outcome]) -> list[RunHistory]:
    """The histories, or the first failed run's own error raised."""
    for outcome in outcomes:
        if isinstance(outcome, FailedRun):
            raise outcome.error
    return list(outcomes)  # type: ignore[arg-type]


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="run", disable=not progress)


def _finished(bar: tqdm, i: int, outcome: Outcome, on_result: OnResult | None) -> None:
    """Driver-side bookkeeping of one ended run: report a failure, advance the bar, callback."""
    if isinstance(outcome, FailedRun) and not bar.disable:
        bar.write(f"run failed: {outcome}")
    bar.update()
    if on_result is not None:
        on_result(i, outcome)


def _summary(bar: tqdm, outcomes: Sequence[Outcome | None], start: float, note: str = "") -> None:
    failed = sum(isinstance(o, FailedRun) for o in outcomes)
    bar.set_postfix_str(f"{note}{failed} failed, {time.perf_counter() - start:.0f} s")


# ----------------------------------------------------------------------------- local


def _run_local(configs: list[RunConfig], *, data_dir: str | Path | None, use_cache: bool,
               progress: bool, on_result: OnResult | None, desc: str) -> list[Outcome]:
    """On this machine: runs that can share kernels on CUDA go together through
    `psp_lite.train.run_many` (`train_many`); every other run through `train.run`, one after
    another (on a CPU that is the faster way)."""
    outcomes: list[Outcome | None] = [None] * len(configs)
    start = time.perf_counter()
    with _bar(len(configs), desc, progress and len(configs) > 1) as bar:
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
                _finished(bar, i, outcome, on_result)
        _summary(bar, outcomes, start)
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


# ----------------------------------------------------------------------------- ray


def import_ray() -> Any:
    """The `ray` module, or `RayUnavailable` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            f"the ray runner needs Ray, which is not installed; install the cluster extra: "
            f"{CLUSTER_EXTRA}") from None
    return ray


def connect(ray: Any, address: str | None) -> None:
    """Start Ray on this machine (`address` None) or join a cluster, unless already connected
    (then `address` is not looked at: the existing connection is used)."""
    if ray.is_initialized():
        return
    if address is None:
        ray.init(address="local", include_dashboard=False)
        return
    _check_reachable(address)
    import psp_lite

    try:  # ship this psp_lite to the other nodes, so they train with the driver's code
        ray.init(address=address, runtime_env={"py_modules": [psp_lite]})
    except ConnectionError as error:
        reason = str(error).splitlines()[0]
        raise RayUnavailable(f"could not join the Ray cluster at {address!r} ({reason}); start "
                             "one with `ray start --head`, or check the address.") from None


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at HOST:PORT (ray.init would retry for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not 'auto', HOST:PORT or ray://HOST:PORT.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise RayUnavailable(f"nothing answers at the Ray address {address!r} ({error}); "
                             "start the head node with `ray start --head`, or check the "
                             "address.") from None


def _task_options(ray: Any, resources: Mapping[str, Any] | None,
                  configs: Sequence[RunConfig]) -> dict[str, Any]:
    """Ray task options: 1 CPU, 1 GPU per run where the cluster has GPUs (unless every config
    asks for the CPU), 2 retries of a dead worker, none for an exception; `resources` overrides
    any of them."""
    on_cpu = all(c.device == "cpu" for c in configs)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 and not on_cpu else 0
    options: dict[str, Any] = dict(num_cpus=1, num_gpus=gpus, max_retries=2,
                                   retry_exceptions=False)
    options.update(resources or {})
    return options


def _resolve_for_ray(config: RunConfig, options: Mapping[str, Any]) -> RunConfig:
    """Resolve `device` on the driver the way the worker will train it."""
    gpus = options.get("num_gpus") or 0
    if config.device in ("auto", "cuda") or config.device.startswith("cuda:"):
        if config.device != "auto" and not gpus:
            raise ValueError(f"device {config.device!r} asks for a GPU but the Ray tasks request "
                             "none (the cluster has no GPU, or num_gpus=0 was given).")
        return dataclasses.replace(config, device="cuda" if gpus else "cpu")
    return config


def _fingerprint(config: RunConfig, data_dir: str | Path | None) -> dict:
    """The fingerprint of the config's data (decoded on the driver's CPU, cached per process)."""
    return load_dataset(config.dataset, data_dir, device="cpu", train_subset=config.train_subset,
                        test_subset=config.test_subset).fingerprint


def _cached(config: RunConfig, data_dir: str | Path | None) -> RunHistory | None:
    """The driver's cache entry for `config` (the one place the ray path reads the cache)."""
    return cache.load(config, _fingerprint(config, data_dir))


def _store(history: RunHistory, data_dir: str | Path | None) -> None:
    """Write a history that came back from a worker (the one place the ray path writes)."""
    cache.save(history, _fingerprint(history.config, data_dir))


def _submit(task: Any, config: RunConfig, data_dir: str | Path | None) -> Any:
    """Send one run to Ray; its object reference."""
    return task.remote(config, None if data_dir is None else str(data_dir))


def _run_ray(configs: list[RunConfig], spec: Runner, *, data_dir: str | Path | None,
             use_cache: bool, progress: bool, on_result: OnResult | None,
             desc: str) -> list[Outcome]:
    ray = import_ray()
    connect(ray, spec.address)
    options = _task_options(ray, spec.resources, configs)
    configs = [_resolve_for_ray(c, options) for c in configs]
    task = ray.remote(train_on_worker).options(**options)
    outcomes: list[Outcome | None] = [None] * len(configs)
    pending: dict[Any, int] = {}
    start = time.perf_counter()
    with _bar(len(configs), f"{desc} (ray)", progress) as bar:
        try:
            for i, config in enumerate(configs):
                history = _cached(config, data_dir) if use_cache else None
                if history is not None:
                    outcomes[i] = history
                    _finished(bar, i, history, on_result)
                else:
                    pending[_submit(task, config, data_dir)] = i
            cached = len(configs) - len(pending)
            bar.set_postfix_str(f"{cached} from the cache, {len(pending)} sent to Ray")
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ref)
                outcomes[i] = _receive(ray, ref, configs[i], use_cache, data_dir)
                _finished(bar, i, outcomes[i], on_result)
            _summary(bar, outcomes, start, f"{cached} from the cache, ")
        except BaseException:
            _keep_arrived(ray, pending, configs, use_cache, data_dir)
            raise
    return outcomes  # type: ignore[return-value]


def _receive(ray: Any, ref: Any, config: RunConfig, use_cache: bool,
             data_dir: str | Path | None) -> Outcome:
    """The outcome of a finished task, cached if it is a history. A task that raised something
    other than `FAILURES` re-raises it here; a worker that died past its retries is a failure."""
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        raise error.as_instanceof_cause() from None
    except ray.exceptions.RayError as error:  # the worker died max_retries + 1 times
        return FailedRun(config, error)
    if use_cache and isinstance(outcome, RunHistory):
        _store(outcome, data_dir)
    return outcome


def _keep_arrived(ray: Any, pending: dict[Any, int], configs: list[RunConfig],
                  use_cache: bool, data_dir: str | Path | None) -> None:
    """On an interrupt: cache the runs that finished but were not yet collected, cancel the rest."""
    if not pending:
        return
    try:
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in done:
            try:
                _receive(ray, ref, configs[pending[ref]], use_cache, data_dir)
            except Exception:  # noqa: BLE001, S112 - the interrupt is what gets raised
                continue
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


# ----------------------------------------------------------------------------- on the worker

_DATA: dict[tuple, TensorData] = {}


def _data_for(config: RunConfig, data_dir: str | None) -> TensorData:
    """This worker process's copy of the config's dataset (the last one loaded is kept)."""
    key = (config.dataset, data_dir, config.device, config.train_subset, config.test_subset)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(config.dataset, data_dir, device=config.device,
                                  train_subset=config.train_subset,
                                  test_subset=config.test_subset)
    return _DATA[key]


def _crash_once_for_tests() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def train_on_worker(config: RunConfig, data_dir: str | None) -> Outcome:
    """One Ray task: train `config` (already resolved) with no cache; the history, or a
    `FailedRun` for a run that fails for its own reasons."""
    try:
        data = _data_for(config, data_dir)
        _crash_once_for_tests()
        return train.train(config, data, progress=False)
    except FAILURES as error:
        return FailedRun(config, error)


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
