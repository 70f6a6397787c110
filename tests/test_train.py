"""Training runs: real learning on Fashion-MNIST, determinism, caching, failures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from psp_lite.data import load_dataset
from psp_lite.runners.cached import run
from psp_lite.training.config import RunConfig, paper_config
from psp_lite.training.history import TrainingDiverged
from psp_lite.training.loop import train

SMALL = dict(dataset="synthetic-mnist", epochs=2, train_subset=400, test_subset=200, device="cpu",
             batch_size=50, test_batch_size=64)


@pytest.fixture(autouse=True)
def _every_test_has_its_own_cache(isolated_cache):
    """Each test here runs with an empty run cache of its own (tests/conftest.py)."""


@pytest.fixture(scope="module")
def fashion(fashion_mnist):
    return load_dataset("fashion-mnist", device="cpu", train_subset=12000, test_subset=2000)


@pytest.mark.slow
def test_lenet5_learns_fashion_mnist_and_psp_lowers_z2(fashion):
    base = paper_config("fashion-mnist", "none", epochs=1, train_subset=12000, test_subset=2000,
                        device="cpu")
    plain = train(base, fashion, progress=False)
    psp = train(paper_config("fashion-mnist", "psp", epochs=1, train_subset=12000,
                             test_subset=2000, device="cpu"), fashion, progress=False)
    assert plain.test_error[0] < 30.0
    assert psp.test_error[0] < 30.0
    assert psp.z2[0] < plain.z2[0]
    assert list(psp.z2_layers) == ["conv1", "conv2", "fc1", "fc2"]
    assert psp.z2[0] == pytest.approx(np.mean([v[0] for v in psp.z2_layers.values()]))


def test_same_seed_gives_identical_history_and_other_seed_differs():
    a = train(RunConfig(**SMALL), progress=False)
    b = train(RunConfig(**SMALL), progress=False)
    c = train(RunConfig(**{**SMALL, "seed": 1}), progress=False)
    assert a.test_error == b.test_error and a.train_loss == b.train_loss and a.z2 == b.z2
    assert a.train_loss != c.train_loss
    assert list(a.z2_layers) == ["conv1", "conv2", "fc1", "fc2"]  # 4 test batches, 4 layers
    assert a.z2 == pytest.approx(np.mean([v for v in a.z2_layers.values()], axis=0).tolist())


def test_l2_and_psp_start_from_the_same_initialization():
    configs = [RunConfig(**SMALL, regularizer=r, lam=lam, snapshot_epochs=(1,))
               for r, lam in [("l2", 1e-4), ("psp", 1e-3)]]
    zero = [dataclasses.replace(c, lr=1e-12) for c in configs]  # barely moves from init
    w = [train(c, progress=False).weights[1]["conv1.weight"] for c in zero]
    np.testing.assert_allclose(w[0], w[1], atol=1e-9)


def test_cache_round_trip_returns_the_same_history(isolated_cache):
    config = RunConfig(**SMALL, regularizer="psp", lam=1e-3)
    first = run(config, progress=False)
    entries = list(isolated_cache.glob("*.npz"))
    assert len(entries) == 1
    second = run(config, progress=False)
    assert second.test_error == first.test_error and second.z2_layers == first.z2_layers
    np.testing.assert_array_equal(second.weights[2]["fc1.weight"], first.weights[2]["fc1.weight"])
    assert first.weights[2]["fc1.weight"].shape == (500 * 800,)


def test_interrupted_run_leaves_no_entry(isolated_cache, monkeypatch):
    import psp_lite.training.loop as train_module

    calls = {"n": 0}
    real = train_module.evaluate

    def interrupt_on_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", interrupt_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(**SMALL), progress=False)
    assert not list(isolated_cache.glob("*")) or not list(isolated_cache.glob("*.npz"))
    assert not [p for p in isolated_cache.glob(".tmp-*")]


def test_divergence_names_the_epoch_and_is_cached_as_a_diverged_history(isolated_cache):
    config = RunConfig(**SMALL, regularizer="psp", lam=1e3, lr=10.0)
    with pytest.raises(TrainingDiverged, match=r"epoch 1.*smaller lambda") as info:
        run(config, progress=False)
    assert info.value.history.diverged_at == 1
    assert len(list(isolated_cache.glob("*.npz"))) == 1  # kept, so it is not retrained


@pytest.mark.parametrize("bad, message", [
    (dict(regularizer="dropout"), "unknown regularizer"),
    (dict(regularizer="psp", lam=-1.0), "lambda"),
    (dict(regularizer="psp", lam=1e-3, normalization="sum"), "normalization"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(regularizer="none", lam=0.1), "takes lam=0"),
])
def test_bad_config_is_a_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{**SMALL, **bad})


def test_paper_protocol_defaults():
    mnist = paper_config("mnist", "l2")
    assert (mnist.model, mnist.epochs, mnist.lr, mnist.batch_size, mnist.lam) == (
        "lenet5", 50, 0.1, 100, 1e-4)
    assert paper_config("fashion-mnist", "psp").epochs == 150
    cifar = paper_config("cifar10", "psp")
    assert (cifar.model, cifar.momentum, cifar.batch_size, cifar.lr_milestones, cifar.augment) == (
        "resnet18", 0.9, 128, (150, 250, 350), True)
