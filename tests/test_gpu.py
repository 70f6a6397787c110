"""The GPU path (run by benchmarks/gpu_check.sh on a CUDA machine; skipped without CUDA)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import psp_lite.runners.cached as train_module
import psp_lite.training.loop as loop
from psp_lite.data import load_dataset
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs CUDA: run benchmarks/gpu_check.sh on a GPU machine"),
]

BASE = dict(dataset="synthetic-mnist", epochs=2, train_subset=1000, test_subset=1000,
            batch_size=100, momentum=0.5)


def test_a_cuda_run_learns_like_the_cpu_run():
    config = RunConfig(**BASE, regularizer="psp", lam=1e-2)
    cpu = train(dataclasses.replace(config, device="cpu"), progress=False)
    gpu = train(dataclasses.replace(config, device="cuda"), progress=False)
    assert gpu.device.startswith("cuda")
    np.testing.assert_allclose(gpu.test_error, cpu.test_error, atol=1.0)
    np.testing.assert_allclose(gpu.z2, cpu.z2, rtol=2e-2)


def test_train_many_on_cuda_equals_train_in_float64(monkeypatch):
    build = loop.get_model
    monkeypatch.setattr(loop, "get_model", lambda name: build(name).double())
    data = load_dataset("synthetic-mnist", device="cuda", train_subset=1000, test_subset=1000)
    data = dataclasses.replace(data, train_x=data.train_x.double(), test_x=data.test_x.double())
    configs = [RunConfig(**BASE, device="cuda", seed=s, regularizer=r, lam=lam)
               for s, (r, lam) in enumerate([("none", 0.0), ("l2", 1e-2), ("psp", 3e-2)])]
    together = train_many_(configs, data)
    for config, got in zip(configs, together, strict=True):
        want = train(config, data, progress=False)
        assert got.test_error == want.test_error
        np.testing.assert_allclose(got.z2, want.z2, rtol=1e-6)
        for name, w in want.weights[2].items():
            assert np.linalg.norm(got.weights[2][name] - w) <= 1e-5 * np.linalg.norm(w)


def test_run_many_batches_on_cuda_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path))
    calls = []
    real = train_module.train_many

    def spy(configs, data=None, *, progress=True):
        calls.append(len(configs))
        return real(configs, data, progress=progress)

    monkeypatch.setattr(train_module, "train_many", spy)
    configs = [RunConfig(**{**BASE, "epochs": 1}, device="cuda", seed=s) for s in range(3)]
    histories = train_module.run_many(configs, progress=False)
    assert calls == [3]
    assert all(h.diverged_at is None and len(h.test_error) == 1 for h in histories)


def train_many_(configs, data):
    return train_module.train_many(configs, data, progress=False)
