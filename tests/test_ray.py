"""The `ray` runner on a real local Ray (2 CPUs, no dashboard): same numbers as the local runner,
the cache as resume point, a killed worker retried, a diverging run cached, Ctrl-C keeps every
arrived run; and the one-line error when Ray is missing."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys

import numpy as np
import pytest
import torch

from psp_lite import cli
from psp_lite.data import load_dataset
from psp_lite.experiments.lambda_sweep import sweep
from psp_lite.explorer.widgets import LambdaExplorer
from psp_lite.runners import ray_cluster as ray_runner
from psp_lite.runners.local import run_configs
from psp_lite.runners.outcomes import FailedRun, histories_or_raise
from psp_lite.runners.ray_cluster import CLUSTER_EXTRA, CRASH_ONCE_ENV
from psp_lite.store import cache
from psp_lite.training.config import QUICK, RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged

pytestmark = pytest.mark.ray

TINY = dict(dataset="synthetic-mnist", psp_lambdas=(1e-3, 1e-2), l2_lambdas=(1e-4,), epochs=1,
            train_subset=200, test_subset=100, device="cpu", progress=False)
BASE = RunConfig(dataset="synthetic-mnist", regularizer="psp", lam=1e-3, epochs=1,
                 train_subset=200, test_subset=100, device="cpu")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module; skipped without Ray, except in CI."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Ray is not installed in CI; .ci/run must install it: {CLUSTER_EXTRA}")
        pytest.skip(f"needs Ray, the cluster extra: {CLUSTER_EXTRA}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' one thread per task, so float sums match exactly
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
    torch.set_num_threads(threads)


def cached(config: RunConfig) -> bool:
    """Whether the driver's cache holds `config`'s history (keyed by its data's fingerprint)."""
    data = load_dataset(config.dataset, device="cpu", train_subset=config.train_subset,
                        test_subset=config.test_subset)
    return cache.load(config, data.fingerprint) is not None


@pytest.fixture
def submitted(monkeypatch):
    """The configs the driver sends to Ray."""
    sent: list[RunConfig] = []
    real = ray_runner._submit

    def counting(task, config, data_dir):
        sent.append(config)
        return real(task, config, data_dir)

    monkeypatch.setattr(ray_runner, "_submit", counting)
    return sent


def assert_same_numbers(a: RunHistory, b: RunHistory) -> None:
    assert a.config == b.config
    assert (a.train_loss, a.test_loss, a.test_error, a.z2, a.z2_layers) == (
        b.train_loss, b.test_loss, b.test_error, b.z2, b.z2_layers)
    assert sorted(a.weights) == sorted(b.weights)
    for epoch, ws in a.weights.items():
        assert sorted(ws) == sorted(b.weights[epoch])
        for name, w in ws.items():
            np.testing.assert_array_equal(w, b.weights[epoch][name])


def seeds(n: int, **changes) -> list[RunConfig]:
    return [dataclasses.replace(BASE, seed=s, **changes) for s in range(n)]


def test_a_sweep_through_ray_equals_the_local_one_and_reuses_the_cache(
        ray_local, tmp_path, monkeypatch, submitted):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "local"))
    local = sweep(**TINY)
    assert submitted == []  # the local runner never goes near Ray
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "ray"))
    remote = sweep(**TINY, runner="ray")
    assert len(submitted) == 4 and sorted(remote.runs) == sorted(local.runs)
    for key, history in local.runs.items():
        assert_same_numbers(remote.runs[key], history)
        assert cached(history.config)  # written to the driver's cache

    more = sweep(**{**TINY, "psp_lambdas": (1e-3, 1e-2, 3e-2)}, runner="ray")
    assert [(c.regularizer, c.lam) for c in submitted[4:]] == [("psp", 3e-2)]  # only the new one
    assert len(more.runs) == 5
    assert_same_numbers(more.runs[("psp", 1e-2)], local.runs[("psp", 1e-2)])


def test_a_killed_worker_is_retried_and_every_run_completes(ray_local, tmp_path, isolated_cache):
    configs = seeds(3)
    expected = run_configs(configs, use_cache=False, progress=False)
    marker = tmp_path / "crashed"
    crash = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(marker)}}}
    outcomes = run_configs(configs, runner="ray", resources=crash, progress=False)
    assert marker.exists()  # one worker process did die (os._exit) in the middle of its task
    for got, want in zip(outcomes, expected, strict=True):
        assert_same_numbers(got, want)

    marker.unlink()  # again, now with no retry left: that run fails, the others complete
    outcomes = run_configs(seeds(3, lam=2e-3), runner="ray", progress=False,
                           resources={**crash, "max_retries": 0})
    failed = [o for o in outcomes if isinstance(o, FailedRun)]
    assert len(failed) == 1
    assert "died" in str(failed[0]).lower() or "crash" in str(failed[0]).lower()
    assert sum(isinstance(o, RunHistory) for o in outcomes) == 2


def test_a_diverging_run_comes_back_as_a_cached_history_not_retried(
        ray_local, isolated_cache, submitted):
    configs = [*seeds(2), dataclasses.replace(BASE, seed=5, lr=1e6, batch_size=10)]
    reported: list[tuple[int, object]] = []
    outcomes = run_configs(configs, runner="ray", progress=False,
                           on_result=lambda i, o: reported.append((i, o)))
    assert all(isinstance(o, RunHistory) for o in outcomes)
    assert [o.diverged_at for o in outcomes] == [None, None, 1]
    assert outcomes[2].config == configs[2]
    assert sorted(i for i, _ in reported) == [0, 1, 2]
    assert cached(configs[2])  # stored like any other history: a second call does not retrain
    assert len(submitted) == 3  # each sent once: no retry for a run's own failure
    again = run_configs(configs, runner="ray", progress=False)
    assert len(submitted) == 3 and again[2].diverged_at == 1
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        histories_or_raise(again)


def test_ctrl_c_keeps_every_arrived_run_and_the_next_call_trains_only_the_rest(
        ray_local, isolated_cache, submitted):
    # two quick runs, then two that take several times longer: when the second quick one has
    # arrived, the long ones are still training even on a loaded machine (with four equal runs
    # all four could be done by the time the driver sees the second, and nothing would be left)
    configs = [dataclasses.replace(c, epochs=1 if c.seed < 2 else 8) for c in seeds(4, lam=5e-3)]
    arrived: list[int] = []

    def interrupt_at_second(i, outcome):
        arrived.append(i)
        if len(arrived) == 2:
            raise KeyboardInterrupt  # Ctrl-C on the driver between two results

    with pytest.raises(KeyboardInterrupt):
        run_configs(configs, runner="ray", progress=False, on_result=interrupt_at_second)
    kept = [c for c in configs if cached(c)]
    assert {configs[i] for i in arrived} <= set(kept) and len(kept) < 4
    assert not list(isolated_cache.glob(".tmp-*"))

    del submitted[:]
    outcomes = run_configs(configs, runner="ray", progress=False)
    assert sorted(c.seed for c in submitted) == sorted(c.seed for c in configs if c not in kept)
    assert all(isinstance(o, RunHistory) for o in outcomes)
    assert all(cached(c) for c in configs)


def test_reproduce_with_ray_and_the_explorers_train_button_go_through_ray(
        ray_local, tmp_path, monkeypatch, isolated_cache, submitted):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setitem(QUICK, "synthetic-mnist",
                        dict(epochs=1, train_subset=200, test_subset=100))
    out = tmp_path / "out"
    assert cli.main(["reproduce", "table1", "--dataset", "synthetic-mnist", "--quick", "--ray",
                     "--out", str(out), "--no-progress"]) == 0  # joins the running Ray
    assert [c.regularizer for c in submitted] == ["none", "l2", "psp"]
    assert {c.device for c in submitted} == {"cpu"}  # "auto" resolved on the driver: no GPU
    assert (out / "table1.csv").exists()

    result = sweep(**{**TINY, "device": None, "psp_lambdas": (1e-3,), "l2_lambdas": ()},
                   runner="ray")
    explorer = LambdaExplorer(result, runner="ray")
    history = explorer.train_lambda("psp", 4e-3, progress=False)
    assert submitted[-1] == history.config == result.config_for("psp", 4e-3)
    assert len(submitted) == 6 and result.get("psp", 4e-3) is history


@pytest.mark.parametrize("command", [
    ["sweep", "--dataset", "synthetic-mnist", "--epochs", "1", "--ray"],
    ["reproduce", "fig2", "--dataset", "synthetic-mnist", "--epochs", "1", "--ray", "auto"],
])
def test_missing_ray_is_one_line_naming_the_extra_and_exit_2(command, tmp_path, monkeypatch,
                                                             capsys, isolated_cache):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert cli.main([*command, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("psp-lite: error:")
    assert CLUSTER_EXTRA in err[0] and "Traceback" not in err[0]
    assert not isolated_cache.exists() and not (tmp_path / "out").exists()  # nothing trained


class NotConnected:
    """Stands in for the ray module before ray.init; init must not be reached."""

    @staticmethod
    def is_initialized() -> bool:
        return False

    @staticmethod
    def init(*args, **kwargs):
        raise AssertionError("ray.init was called")


@pytest.mark.parametrize("address, error, text", [
    ("127.0.0.1:1", ray_runner.RayUnavailable, "nothing answers at the Ray address '127.0.0.1:1'"),
    ("ray://127.0.0.1:1", ray_runner.RayUnavailable, "ray start --head"),
    ("head-node", ValueError, "HOST:PORT"),
])
def test_an_unreachable_or_malformed_address_fails_at_once(address, error, text):
    with pytest.raises(error, match=re.escape(text)):
        ray_runner.connect(NotConnected, address)


class FakeCluster:
    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def cluster_resources(self) -> dict:
        return {"CPU": 8.0, "GPU": float(self.gpus)} if self.gpus else {"CPU": 8.0}

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": self.cluster_resources()}]


def test_auto_device_is_resolved_on_the_driver_from_the_gpus_each_task_gets():
    auto = dataclasses.replace(BASE, device="auto")
    on_gpus = ray_runner._task_options(FakeCluster(4), None, [auto])
    assert (on_gpus["num_gpus"], on_gpus["num_cpus"], on_gpus["max_retries"]) == (1, 1, 2)
    assert ray_runner._resolve_for_ray(auto, on_gpus).device == "cuda"
    shared = ray_runner._task_options(FakeCluster(4), {"num_gpus": 0.25}, [auto])
    assert shared["num_gpus"] == 0.25 and ray_runner._resolve_for_ray(auto, shared).device == "cuda"
    no_gpus = ray_runner._task_options(FakeCluster(0), None, [auto])
    assert no_gpus["num_gpus"] == 0 and ray_runner._resolve_for_ray(auto, no_gpus).device == "cpu"
    assert ray_runner._task_options(FakeCluster(4), None, [BASE])["num_gpus"] == 0  # all on "cpu"
    with pytest.raises(ValueError, match="asks for a GPU"):
        ray_runner._resolve_for_ray(dataclasses.replace(BASE, device="cuda"), no_gpus)
    # the key the driver caches under is the key of the config the worker trains
    resolved = ray_runner._resolve_for_ray(auto, on_gpus)
    fingerprint = {"name": "synthetic-mnist"}
    assert cache.key(resolved, fingerprint) == cache.key(
        dataclasses.replace(BASE, device="cuda"), fingerprint)
