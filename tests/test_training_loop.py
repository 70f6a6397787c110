"""The training loop's contract: PSP as a loss term, divergence kept, caller's RNG untouched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import psp_lite.training.loop as train_module
from psp_lite import capture, psp_penalty
from psp_lite.data import load_dataset
from psp_lite.data.batches import batches
from psp_lite.training.config import RunConfig
from psp_lite.training.history import TrainingDiverged
from psp_lite.training.loop import init_model, train

SMALL = dict(dataset="synthetic-mnist", epochs=2, train_subset=300, test_subset=100, device="cpu",
             batch_size=50, test_batch_size=64)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic-mnist", device="cpu", train_subset=300, test_subset=100)


def test_psp_run_equals_a_hand_written_loop_with_the_penalty_in_the_loss(data):
    """train() with PSP = SGD on CE + psp_penalty, same init and batch order (float32)."""
    config = RunConfig(regularizer="psp", lam=0.05, **{**SMALL, "epochs": 1})
    history = train(config, data, progress=False)
    model = init_model(config, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(config.seed)
    for x, y in batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                        generator=order):
        out, z = capture(model, x)
        loss = F.cross_entropy(out, y) + psp_penalty(z, 0.05, "reference")
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(torch.from_numpy(history.weights[1][name]),
                                   p.detach().ravel(), rtol=1e-5, atol=1e-6)
    # and PSP really acted: without it the weights differ
    plain = train(RunConfig(**{**SMALL, "epochs": 1}), data, progress=False)
    w_plain, w_psp = plain.weights[1], history.weights[1]
    assert not all(torch.allclose(torch.from_numpy(w_plain[n]), torch.from_numpy(w_psp[n]))
                   for n in w_plain)


def test_train_leaves_the_callers_random_state_alone(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(RunConfig(**{**SMALL, "epochs": 1}), data, progress=False)
    torch.testing.assert_close(torch.rand(3), expected)


def test_divergence_keeps_the_epochs_before_and_marks_the_history(data):
    # lr 0.1 in epoch 1, then 1000x larger: epoch 2 blows up
    config = RunConfig(**{**SMALL, "epochs": 3}, lr_milestones=(1,), lr_gamma=1e4)
    with pytest.raises(TrainingDiverged, match="epoch 2") as caught:
        train(config, data, progress=False)
    history = caught.value.history
    assert history.diverged_at == 2
    assert len(history.test_error) == 1 and history.test_error[0] < 100


def test_divergence_is_noticed_within_the_epoch(data, monkeypatch):
    monkeypatch.setattr(train_module, "DIVERGENCE_CHECK_STEPS", 2)
    seen = []

    def counting(*args, **kwargs):
        for item in batches(*args, **kwargs):
            seen.append(1)
            yield item

    monkeypatch.setattr(train_module, "batches", counting)
    config = RunConfig(**{**SMALL, "epochs": 1, "lr": 1e6})
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(config, data, progress=False)
    assert len(seen) < 300 // 50  # stopped before the end of the epoch's 6 batches


def test_bfloat16_autocast_trains_like_float32(data):
    """precision="bfloat16": the forward pass in bf16, the rest in float32; numbers stay close."""
    config = RunConfig(regularizer="psp", lam=1e-2, **SMALL)
    full = train(config, data, progress=False)
    half = train(dataclasses.replace(config, precision="bfloat16"), data, progress=False)
    assert max(half.test_error[-1], full.test_error[-1]) < 60  # both learn (chance: 90 %)
    np.testing.assert_allclose(half.z2, full.z2, rtol=0.25)
    assert not np.allclose(half.z2, full.z2, rtol=1e-6)  # autocast really changed the arithmetic
    with pytest.raises(ValueError, match="precision"):
        RunConfig(precision="float16")


def test_the_penalty_of_bfloat16_potentials_is_summed_in_float32():
    z = torch.full((4, 3000), 1.01, dtype=torch.bfloat16, requires_grad=True)
    value = psp_penalty([z], 1.0, "paper")
    assert value.dtype == torch.float32
    exact = 0.5 * 3000 * float(torch.tensor(1.01, dtype=torch.bfloat16)) ** 2
    assert value.item() == pytest.approx(exact, rel=1e-5)
    value.backward()
    assert z.grad.dtype == torch.bfloat16
