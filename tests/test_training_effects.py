"""`evaluate()` on numbers worked out by hand, and every training knob checked by the size of its
effect: lr milestones, momentum, l2's weight decay and augmentation.

The knob tests train on one batch per epoch (the whole 50-image subset), so that each epoch is
one SGD step and the step's size can be predicted from two other runs: with w0 the initial
weights, w1 = w0 - lr g0 in every run, and the knob changes the next step in a known way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import psp_lite.analytic.cross_layer
import psp_lite.experiments.comparison
import psp_lite.report
import psp_lite.training
from psp_lite.data import TensorData, load_dataset
from psp_lite.potentials import OUTPUT
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import evaluate, train

ONE_BATCH = dict(dataset="synthetic-mnist", train_subset=50, test_subset=20, batch_size=50,
                 test_batch_size=20, device="cpu", lr=0.1)
CHECKED = ("conv1.weight", "fc1.weight", "fc2.weight", "fc2.bias")


@pytest.fixture(autouse=True)
def one_thread_and_isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def weights_after(epoch: int, **config) -> dict[str, np.ndarray]:
    history = train(RunConfig(**{**ONE_BATCH, **config}), progress=False)
    return {k: v.astype(np.float64) for k, v in history.weights[epoch].items()}


@pytest.fixture(scope="module")
def init() -> dict[str, np.ndarray]:
    """The initial weights of seed 0, as a run with a negligible learning rate leaves them."""
    history = train(RunConfig(**{**ONE_BATCH, "epochs": 1, "lr": 1e-12}), progress=False)
    return {k: v.astype(np.float64) for k, v in history.weights[1].items()}


def assert_close(actual: dict, expected: dict, rtol: float = 2e-3) -> None:
    for name in CHECKED:
        a, e = actual[name], expected[name]
        assert np.linalg.norm(e) > 0, name
        assert np.linalg.norm(a - e) <= rtol * np.linalg.norm(e), (
            f"{name}: relative error {np.linalg.norm(a - e) / np.linalg.norm(e):.2e}")


def diff(a: dict, b: dict) -> dict:
    return {k: a[k] - b[k] for k in a}


# ----------------------------------------------------------------------------- evaluate()


def toy() -> tuple[nn.Module, TensorData]:
    """Two linear layers with a ReLU between them and weights chosen by hand.

    x -> z = W1 x + b1 -> ReLU -> logits = W2 relu(z) + b2, with W1 = [[1, 0], [0, -1]],
    b1 = [0, 1], W2 = [[1, 0], [0, 2], [0, 0]], b2 = [0, 0, 0.5]. On the five inputs below:

        x        z         logits           label  prediction
        (1, 0)   (1, 1)    (1, 2, 0.5)      1      1
        (2, 2)   (2, -1)   (2, 0, 0.5)      0      0
        (0, 3)   (0, -2)   (0, 0, 0.5)      0      2   wrong
        (-1, -1) (-1, 2)   (0, 4, 0.5)      2      1   wrong
        (3, 1)   (3, 0)    (3, 0, 0.5)      0      0

    so the error is 2/5 = 40 %, <z^2> = (1+1+4+1+0+4+1+4+9+0) / 10 = 2.5 and the logits'
    <z^2> = (5.25 + 4.25 + 0.25 + 16.25 + 9.25) / 15 = 2.35.
    """
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        model[1].bias.copy_(torch.tensor([0.0, 1.0]))
        model[3].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
        model[3].bias.copy_(torch.tensor([0.0, 0.0, 0.5]))
    x = torch.tensor([[1, 0], [2, 2], [0, 3], [-1, -1], [3, 1]], dtype=torch.float32)
    x = x.view(5, 1, 1, 2)
    y = torch.tensor([1, 0, 0, 2, 0])
    return model, TensorData("toy", x[:0], y[:0], x, y)


def hand_loss() -> float:
    """Mean cross-entropy of the table in `toy`: log-sum-exp of the logits minus the label's."""
    rows = [((1, 2, 0.5), 1), ((2, 0, 0.5), 0), ((0, 0, 0.5), 0), ((0, 4, 0.5), 2),
            ((3, 0, 0.5), 0)]
    return sum(math.log(sum(math.exp(v) for v in logits)) - logits[label]
               for logits, label in rows) / len(rows)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
def test_evaluate_gives_the_hand_computed_loss_error_and_z2(batch_size):
    model, data = toy()
    loss, error, z2 = evaluate(model, data, batch_size)
    assert loss == pytest.approx(hand_loss(), rel=1e-6)
    assert error == pytest.approx(40.0)
    assert list(z2) == ["2", OUTPUT]
    assert z2["2"] == pytest.approx(2.5, rel=1e-6)
    assert z2[OUTPUT] == pytest.approx(2.35, rel=1e-6)


def test_evaluate_leaves_the_weights_and_gradients_alone():
    model, data = toy()
    before = [p.detach().clone() for p in model.parameters()]
    evaluate(model, data, 2)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- the knobs


def test_first_step_is_the_same_plain_sgd_step_for_every_knob(init):
    plain = weights_after(1, epochs=1)
    for knob in (dict(momentum=0.9), dict(lr_milestones=(1,), lr_gamma=0.5)):
        assert_close(diff(weights_after(1, epochs=1, **knob), init), diff(plain, init), 1e-4)


def test_lr_milestone_scales_the_steps_after_it_by_gamma():
    base = train(RunConfig(**ONE_BATCH, epochs=2, snapshot_epochs=(1,)), progress=False)
    drop = train(RunConfig(**ONE_BATCH, epochs=2, snapshot_epochs=(1,), lr_milestones=(1,),
                           lr_gamma=0.5), progress=False)
    b, d = ({e: {k: v.astype(np.float64) for k, v in ws.items()} for e, ws in h.weights.items()}
            for h in (base, drop))
    assert_close(d[1], b[1], 1e-6)  # epoch 1 runs at the full lr in both
    # epoch 2: the same gradient (same weights, same batch), half the step
    assert_close(diff(d[2], d[1]), {k: 0.5 * v for k, v in diff(b[2], b[1]).items()})


def test_lr_milestone_at_the_last_epoch_changes_nothing_in_the_run():
    base = weights_after(2, epochs=2)
    late = weights_after(2, epochs=2, lr_milestones=(2,), lr_gamma=0.01)
    assert_close(late, base, 1e-6)


def test_momentum_adds_momentum_times_the_previous_step(init):
    plain1, plain2 = (weights_after(e, epochs=2, snapshot_epochs=(1,)) for e in (1, 2))
    heavy2 = weights_after(2, epochs=2, snapshot_epochs=(1,), momentum=0.9)
    # step 2 with momentum: -lr (g1 + 0.9 g0) = plain step 2 + 0.9 (w1 - w0)
    expected = {k: 0.9 * v for k, v in diff(plain1, init).items()}
    assert_close(diff(heavy2, plain2), expected)


def test_l2_weight_decay_shrinks_the_step_by_lr_times_lambda_times_w(init):
    lam = 0.1
    plain = weights_after(1, epochs=1)
    decayed = weights_after(1, epochs=1, regularizer="l2", lam=lam)
    # w1 = w0 - lr (g0 + lam w0): the difference to the plain step is -lr lam w0
    expected = {k: -ONE_BATCH["lr"] * lam * v for k, v in init.items()}
    assert_close(diff(decayed, plain), expected)


def test_augmentation_changes_training_but_not_evaluation():
    config = RunConfig(**ONE_BATCH, epochs=1)
    plain = train(config, progress=False)
    augmented = [train(RunConfig(**ONE_BATCH, epochs=1, augment=True), progress=False)
                 for _ in range(2)]
    w_plain = plain.weights[1]["conv1.weight"]
    w_aug = [h.weights[1]["conv1.weight"] for h in augmented]
    np.testing.assert_array_equal(w_aug[0], w_aug[1])  # deterministic for a seed
    assert np.abs(w_aug[0] - w_plain).max() > 1e-4  # the crops and flips were trained on
    # the test set is not augmented: the run's numbers are those of its final weights
    data = load_dataset("synthetic-mnist", train_subset=50, test_subset=20)
    loss, error, z2 = evaluate(psp_lite.training.rebuild(augmented[0]), data, 7)
    assert error == pytest.approx(augmented[0].test_error[-1])
    assert loss == pytest.approx(augmented[0].test_loss[-1], rel=1e-5)
    assert float(np.mean(list(z2.values()))) == pytest.approx(augmented[0].z2[-1], rel=1e-5)
