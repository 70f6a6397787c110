"""The `ray` runner (the optional `cluster` extra): every run not already in the driver's cache
becomes one Ray task.

The driver resolves each config's device first ("auto" -> "cuda" when the tasks ask for GPUs,
else "cpu"), so the worker trains exactly the config the cache is keyed by. A worker loads each
dataset once per process, returns the history by value (a diverged one too), and the driver
writes it to its own cache as soon as it arrives (no shared filesystem). The cache is checked
writable before any task is sent; a run that arrives but cannot be saved is still returned, with
a warning naming its entry (issue 17: such runs were lost). Interrupting the driver keeps every
run that has arrived; calling again trains only the rest. A worker process that dies is retried
by Ray (`max_retries`, 2 by default); a run whose data is missing is not retried.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from psp_lite.data import TensorData, load_dataset
from psp_lite.runners.cached import save_or_warn
from psp_lite.runners.outcomes import (
    DATA_FAILURES,
    FailedRun,
    OnResult,
    Outcome,
    finish_bar,
    record_outcome,
    runs_bar,
)
from psp_lite.runners.spec import Runner
from psp_lite.store import cache
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged
from psp_lite.training.loop import train

CLUSTER_EXTRA = 'pip install -e ".[cluster]"'
#: Test-only: a path; the first Ray task that finds no file there creates it and kills its worker.
CRASH_ONCE_ENV = "PSP_LITE_TEST_CRASH_ONCE"


class RayUnavailable(RuntimeError):
    """The `ray` runner was asked for but Ray is not installed or the cluster cannot be joined."""


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
    package = str(Path(__file__).resolve().parents[1])  # this psp_lite's folder
    try:  # ship this psp_lite to the other nodes, so they train with the driver's code
        ray.init(address=address, runtime_env={"py_modules": [package]})
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
    check_fits(ray.nodes(), options)
    return options


def check_fits(nodes: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> None:
    """ValueError, before any task is sent, when no live node of the cluster (`ray.nodes()`) has
    the CPUs, GPUs and custom resources (`options["resources"]`) one task asks for: Ray would
    wait for such a node forever."""
    wanted = {"CPU": options.get("num_cpus", 1) or 0, "GPU": options.get("num_gpus", 0) or 0}
    for kind, amount in wanted.items():
        if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount >= 0):
            raise ValueError(f"each run asks for {amount!r} {kind}s; use a finite number >= 0.")
        if amount > 1 and amount != int(amount):
            raise ValueError(f"each run asks for {amount:g} {kind}s; Ray takes fractions only "
                             "below 1, so use a whole number above it.")
    custom = dict(options.get("resources") or {})  # e.g. {"big_memory": 1}
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    if any(all(res.get(k, 0) >= v for k, v in {**wanted, **custom}.items()) for res in alive):
        return
    asked = "".join(f", {v:g} {k}" for k, v in custom.items())

    def listed(res: Mapping[str, Any]) -> str:
        extra = "".join(f", {res.get(k, 0):g} {k}" for k in custom)
        return f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs{extra}"

    have = "; ".join(listed(res) for res in alive)
    raise ValueError(f"each run asks for {wanted['CPU']:g} CPUs and {wanted['GPU']:g} GPUs{asked}, "
                     f"but no node of the Ray cluster has that (its nodes: {have or 'none'}); "
                     "lower --cpus-per-run / --gpus-per-run (num_cpus / num_gpus)"
                     f"{' or drop the custom resource' if custom else ''}.")


def _resolve_for_ray(config: RunConfig, options: Mapping[str, Any]) -> RunConfig:
    """Resolve `device` on the driver the way the worker will train it."""
    gpus = options.get("num_gpus") or 0
    if config.device in ("auto", "cuda") or config.device.startswith("cuda:"):
        if config.device != "auto" and not gpus:
            raise ValueError(f"device {config.device!r} asks for a GPU but the Ray tasks request "
                             "none (the cluster has no GPU, or num_gpus=0 was given).")
        return dataclasses.replace(config, device="cuda" if gpus else "cpu")
    return config


def resolve_for_ray(configs: Iterable[RunConfig], address: str | None,
                    resources: Mapping[str, Any] | None) -> list[RunConfig]:
    """The configs as the Ray tasks will key and train them (joins the cluster to see its GPUs)."""
    ray = import_ray()
    connect(ray, address)
    configs = list(configs)
    options = _task_options(ray, resources, configs)
    return [_resolve_for_ray(c, options) for c in configs]


def _fingerprint(config: RunConfig, data_dir: str | Path | None) -> dict:
    """The fingerprint of the config's data (decoded on the driver's CPU, cached per process)."""
    return load_dataset(config.dataset, data_dir, device="cpu", train_subset=config.train_subset,
                        test_subset=config.test_subset).fingerprint


def _cached(config: RunConfig, data_dir: str | Path | None) -> RunHistory | None:
    """The driver's cache entry for `config` (the one place the ray path reads the cache)."""
    return cache.load(config, _fingerprint(config, data_dir))


def _store(history: RunHistory, data_dir: str | Path | None) -> bool:
    """Write a history that came back from a worker (the one place the ray path writes); if
    that fails, warn naming the entry (the history is returned all the same)."""
    return save_or_warn(history, _fingerprint(history.config, data_dir))


def _submit(task: Any, config: RunConfig, data_dir: str | Path | None) -> Any:
    """Send one run to Ray; its object reference."""
    return task.remote(config, None if data_dir is None else str(data_dir))


def run_ray(configs: list[RunConfig], spec: Runner, *, data_dir: str | Path | None,
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
    with runs_bar(len(configs), f"{desc} (ray)", progress) as bar:
        try:
            todo = []
            for i, config in enumerate(configs):
                history = _cached(config, data_dir) if use_cache else None
                if history is not None:
                    outcomes[i] = history
                    record_outcome(bar, i, history, on_result)
                else:
                    todo.append(i)
            if todo and use_cache:
                cache.check_writable()  # before any run is sent: arrived runs must be kept
            for i in todo:
                pending[_submit(task, configs[i], data_dir)] = i
            cached = len(configs) - len(pending)
            bar.set_postfix_str(f"{cached} from the cache, {len(pending)} sent to Ray")
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ref)
                outcomes[i] = _receive(ray, ref, configs[i], use_cache, data_dir)
                record_outcome(bar, i, outcomes[i], on_result)
            finish_bar(bar, outcomes, start, f"{cached} from the cache, ")
        except BaseException:
            _keep_arrived(ray, pending, configs, use_cache, data_dir)
            raise
    return outcomes  # type: ignore[return-value]


def _receive(ray: Any, ref: Any, config: RunConfig, use_cache: bool,
             data_dir: str | Path | None) -> Outcome:
    """The outcome of a finished task, cached if it is a history (finished or diverged). A task
    that raised re-raises its error here; a worker that died past its retries is a FailedRun."""
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
    """On an interrupt: cache the runs that finished but were not yet collected (a run that
    cannot be saved is named in a warning), cancel the rest."""
    if not pending:
        return
    try:
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in done:
            try:
                _receive(ray, ref, configs[pending[ref]], use_cache, data_dir)
            except Exception as error:  # noqa: BLE001 - the interrupt is what gets raised
                warnings.warn(f"{configs[pending[ref]].label}: its task raised {error!r}; "
                              "it was not kept.", stacklevel=3)
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
    """One Ray task: train `config` (already resolved) with no cache; its history (a diverged
    one too), or a `FailedRun` when its data is missing. Anything else propagates."""
    try:
        data = _data_for(config, data_dir)
    except DATA_FAILURES as error:
        return FailedRun(config, error)
    _crash_once_for_tests()
    try:
        return train(config, data, progress=False)
    except TrainingDiverged as diverged:
        return diverged.history
