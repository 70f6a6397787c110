"""train_many: K runs trained together give what train(config) gives each; run_many's cache.

The equality checks run in float64: in float32 a strong PSP pulls many z to the ReLU's kink, where
rounding differences between batched and single kernels grow (one run here drifted 3e-3 in two
epochs), which would hide a real difference. In float64 every history agrees to float precision.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import psp_lite.runners.cached as train_module
import psp_lite.training.loop as loop
from psp_lite.data import load_dataset
from psp_lite.models import get_model
from psp_lite.runners.cached import run_many
from psp_lite.store import cache
from psp_lite.training.batched import check_compatible, group_key, train_many
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import train

#: momentum and an lr drop after epoch 1, so the shared SGD and schedule are checked too
BASE = dict(dataset="synthetic-mnist", epochs=2, train_subset=300, test_subset=1000,
            device="cpu", batch_size=50, test_batch_size=64, momentum=0.5, lr_milestones=(1,),
            lr_gamma=0.5)
CONFIGS = [
    RunConfig(**BASE, seed=0),
    RunConfig(**BASE, regularizer="l2", lam=1e-2, seed=1),
    RunConfig(**BASE, regularizer="psp", lam=1e-2, seed=0),
    RunConfig(**BASE, regularizer="psp", lam=3e-2, seed=1, snapshot_epochs=(1,)),
]


@pytest.fixture(scope="module")
def float64():
    """Models built in float64 (for train and train_many alike) while the module runs."""
    build = loop.get_model
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "get_model", lambda name: build(name).double())
        yield


@pytest.fixture(scope="module")
def data(float64):
    data = load_dataset("synthetic-mnist", device="cpu", train_subset=300, test_subset=1000)
    return dataclasses.replace(data, train_x=data.train_x.double(), test_x=data.test_x.double())


@pytest.fixture(scope="module")
def together(data):
    return train_many(CONFIGS, data, progress=False)


@pytest.fixture(scope="module")
def alone(data):
    return [train(c, data, progress=False) for c in CONFIGS]


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("k", range(len(CONFIGS)))
def test_each_history_equals_its_own_run(together, alone, k):
    got, want = together[k], alone[k]
    assert got.config == want.config
    assert got.diverged_at is None
    assert got.test_error == want.test_error
    np.testing.assert_allclose(got.test_loss, want.test_loss, rtol=1e-5)
    np.testing.assert_allclose(got.train_loss, want.train_loss, rtol=1e-5)
    np.testing.assert_allclose(got.z2, want.z2, rtol=1e-5)
    assert list(got.z2_layers) == list(want.z2_layers) == ["conv1", "conv2", "fc1", "fc2"]
    for layer in want.z2_layers:
        np.testing.assert_allclose(got.z2_layers[layer], want.z2_layers[layer], rtol=1e-5)
    assert sorted(got.weights) == sorted(want.weights)
    for epoch, weights in want.weights.items():
        for name, w in weights.items():  # snapshots are stored in float32
            assert relative(got.weights[epoch][name], w) < 1e-6, (epoch, name)


def test_the_runs_really_differ(together):
    """Different seeds, regularizers and lambdas give different numbers (no run copies another)."""
    finals = {tuple(np.round(h.weights[2]["fc2.weight"][:5], 6)) for h in together}
    assert len(finals) == len(CONFIGS)
    psp_weak, psp_strong = together[2], together[3]
    assert psp_strong.z2[-1] < together[1].z2[-1]
    assert psp_weak.z2[-1] != psp_strong.z2[-1]


def test_a_diverging_run_stops_alone(data, alone):
    exploding = RunConfig(**BASE, regularizer="l2", lam=1000.0, seed=0)  # p <- p (1 - 100)
    histories = train_many([CONFIGS[0], exploding, CONFIGS[2]], data, progress=False)
    assert histories[1].diverged_at == 1 and histories[1].test_error == []
    for got, want in zip([histories[0], histories[2]], [alone[0], alone[2]], strict=True):
        assert got.diverged_at is None
        assert got.test_error == want.test_error


def test_runs_that_cannot_share_kernels_are_refused_naming_the_field():
    other = RunConfig(**{**BASE, "batch_size": 25})
    assert group_key(other) != group_key(CONFIGS[0])
    with pytest.raises(ValueError, match="batch_size"):
        check_compatible([CONFIGS[0], other])
    with pytest.raises(ValueError, match="at least one"):
        train_many([])


def test_run_many_trains_only_what_is_not_cached(data, together, tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path))
    cache.save(together[0], data.fingerprint)
    cache.save(together[3], data.fingerprint)
    trained = []

    def spy(configs, data=None, *, progress=True):
        trained.extend(configs)
        return [together[CONFIGS.index(c)] for c in configs]

    monkeypatch.setattr(train_module, "train_many", spy)
    histories = run_many(CONFIGS, data=data, progress=False, batched=True)
    assert trained == [CONFIGS[1].resolved(), CONFIGS[2].resolved()]
    assert [h.test_error for h in histories] == [h.test_error for h in together]
    assert cache.load(CONFIGS[1].resolved(), data.fingerprint) is not None  # now cached


def test_bfloat16_runs_together_stay_close_to_their_own_runs(monkeypatch):
    monkeypatch.setattr(loop, "get_model", get_model)  # float32 models, whatever ran before
    base = dict(dataset="synthetic-mnist", epochs=1, train_subset=200, test_subset=200,
                device="cpu", batch_size=50, precision="bfloat16")
    configs = [RunConfig(**base, regularizer="psp", lam=1e-2), RunConfig(**base, seed=1)]
    data = load_dataset("synthetic-mnist", device="cpu", train_subset=200, test_subset=200)
    for got, config in zip(train_many(configs, data, progress=False), configs, strict=True):
        want = train(config, data, progress=False)
        np.testing.assert_allclose(got.test_error, want.test_error, atol=2.0)
        np.testing.assert_allclose(got.z2, want.z2, rtol=0.02)


def test_run_many_trains_in_chunks_and_caches_each(data, together, tmp_path, monkeypatch):
    """An interruption loses at most the chunk in training, never the chunks before."""
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path))
    monkeypatch.setattr(train_module, "MAX_TOGETHER", 2)
    chunks = []

    def spy(configs, data=None, *, progress=True):
        chunks.append(len(configs))
        if len(chunks) == 2:
            raise KeyboardInterrupt
        return [together[CONFIGS.index(c)] for c in configs]

    monkeypatch.setattr(train_module, "train_many", spy)
    with pytest.raises(KeyboardInterrupt):
        run_many(CONFIGS, data=data, progress=False, batched=True)
    assert chunks == [2, 2]
    cached = [cache.load(c.resolved(), data.fingerprint) is not None for c in CONFIGS]
    assert cached == [True, True, False, False]


def test_run_many_keeps_every_history_when_the_cache_cannot_be_written(
        data, together, tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "save", disk_full)
    monkeypatch.setattr(train_module, "train_many",
                        lambda configs, data=None, *, progress=True:
                        [together[CONFIGS.index(c)] for c in configs])
    with pytest.warns(UserWarning, match="could not save"):
        histories = run_many(CONFIGS, data=data, progress=False, batched=True)
    assert [h.test_error for h in histories] == [h.test_error for h in together]
