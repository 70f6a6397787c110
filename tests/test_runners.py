"""The runners' contract (issue 17): a run's own failures (a device this machine lacks, its data
missing) are FailedRuns and the others go on; a bug raised while training propagates; a diverged
run is a history; the Ray driver keeps every run that arrived, cached or returned with a warning."""

from __future__ import annotations

import dataclasses
import types

import pytest

import psp_lite.runners.cached
from psp_lite.data import DatasetNotFoundError
from psp_lite.runners import local
from psp_lite.runners import ray_cluster as ray_runner
from psp_lite.runners.local import run_configs
from psp_lite.runners.outcomes import FailedRun, histories_or_raise
from psp_lite.store import cache
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged

BASE = RunConfig(dataset="synthetic-mnist", epochs=1, train_subset=100, test_subset=50,
                 device="cpu", batch_size=50)


@pytest.fixture(autouse=True)
def _own_cache(isolated_cache):
    """Each test here runs with an empty run cache of its own (tests/conftest.py)."""


def test_a_value_error_raised_while_training_is_a_bug_and_propagates(monkeypatch):
    def buggy(config, *args, **kwargs):
        raise ValueError("a bug in psp_lite")

    monkeypatch.setattr(psp_lite.runners.cached, "train", buggy)
    with pytest.raises(ValueError, match="a bug in psp_lite"):
        run_configs([BASE, dataclasses.replace(BASE, seed=1)], progress=False)


def test_missing_data_and_an_absent_device_are_the_runs_own_failures(monkeypatch):
    real = local.load_dataset

    def no_fashion(name, *args, **kwargs):
        if name == "fashion-mnist":
            raise DatasetNotFoundError("Fashion-MNIST is not on this machine")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(local, "load_dataset", no_fashion)
    monkeypatch.setattr(RunConfig, "resolved", lambda self: (_ for _ in ()).throw(
        ValueError("CUDA is not available")) if self.device == "cuda" else self)
    configs = [dataclasses.replace(BASE, dataset="fashion-mnist"),
               dataclasses.replace(BASE, device="cuda"), BASE]
    outcomes = run_configs(configs, progress=False)
    assert [type(o) for o in outcomes] == [FailedRun, FailedRun, RunHistory]
    assert isinstance(outcomes[0].error, DatasetNotFoundError)
    assert "CUDA is not available" in str(outcomes[1])


def test_a_diverged_run_is_a_history_and_histories_or_raise_says_so():
    blown = dataclasses.replace(BASE, seed=5, lr=1e6, batch_size=10)
    outcomes = run_configs([BASE, blown], progress=False)
    assert all(isinstance(o, RunHistory) for o in outcomes)
    assert outcomes[0].diverged_at is None and outcomes[1].diverged_at == 1
    with pytest.raises(TrainingDiverged, match="epoch 1") as info:
        histories_or_raise(outcomes)
    assert info.value.history is outcomes[1]


# ----------------------------------------------------------------------------- Ray's driver


class RayError(Exception):
    pass


class RayTaskError(RayError):
    pass


class FakeRay:
    """Just what `_receive` and `_keep_arrived` call: results by reference, all already done."""

    exceptions = types.SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)

    def __init__(self, results: dict) -> None:
        self.results, self.cancelled = results, []

    def get(self, ref):
        return self.results[ref]

    def wait(self, refs, num_returns, timeout):
        return list(refs), []

    def cancel(self, ref, force):
        self.cancelled.append(ref)


def trained(seed: int = 0) -> RunHistory:
    return psp_lite.runners.cached.run(dataclasses.replace(BASE, seed=seed), use_cache=False,
                                       progress=False)


def disk_full(history, fingerprint):
    raise cache.CacheWriteError(cache.path_for(history.config, fingerprint),
                                OSError(28, "No space left on device"))


def test_a_run_that_arrives_but_cannot_be_saved_is_returned_with_a_warning(monkeypatch):
    history = trained()
    monkeypatch.setattr(cache, "save", disk_full)
    with pytest.warns(UserWarning, match=r"could not save the finished run to .*\.npz.*No space"):
        got = ray_runner._receive(FakeRay({"ref": history}), "ref", history.config, True, None)
    assert got is history


def test_on_an_interrupt_arrived_runs_are_cached_or_named_in_a_warning(monkeypatch,
                                                                     isolated_cache):
    histories = [trained(0), trained(1)]
    ray = FakeRay({"a": histories[0], "b": histories[1]})
    configs = [h.config for h in histories]
    ray_runner._keep_arrived(ray, {"a": 0, "b": 1}, configs, True, None)
    assert len(list(isolated_cache.glob("*.npz"))) == 2  # both arrived runs kept
    for p in isolated_cache.glob("*.npz"):
        p.unlink()
    monkeypatch.setattr(cache, "save", disk_full)
    with pytest.warns(UserWarning, match="could not save the finished run") as warned:
        ray_runner._keep_arrived(ray, {"a": 0, "b": 1}, configs, True, None)
    assert len(warned) == 2 and ray.cancelled == ["a", "b"] * 2


def test_the_ray_path_checks_the_cache_is_writable_before_sending_any_run(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PSP_LITE_CACHE", str(blocker / "cache"))
    sent = []

    class Cluster(FakeRay):
        def is_initialized(self):
            return True

        def cluster_resources(self):
            return {"CPU": 2.0}

        def nodes(self):
            return [{"Alive": True, "Resources": {"CPU": 2.0}}]

        def remote(self, fn):
            return types.SimpleNamespace(options=lambda **kw: fn)

    monkeypatch.setattr(ray_runner, "import_ray", lambda: Cluster({}))
    monkeypatch.setattr(ray_runner, "_submit", lambda *args: sent.append(args))
    with pytest.raises(cache.CacheNotWritableError, match="a-file/cache is not writable"):
        run_configs([BASE], runner="ray", progress=False)
    assert sent == []
