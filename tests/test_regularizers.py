"""psp_penalty's two normalizations, its gradient (Eq. 15), and l2 (Eq. 3-5).

The fused form's gradients on what users train are in tests/test_fused_penalty.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from psp_lite import capture, l2_penalty, psp_penalty


def known_potentials() -> dict[str, torch.Tensor]:
    # batch of 2; layer a has 3 neurons, layer b has 2x2 positions of 1 channel
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    b = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 4.0]]]])
    return {"a": a, "b": b}


def test_paper_normalization_is_half_sum_per_example_averaged_over_batch():
    # sum z^2: a -> 1+4+9+0+1+1 = 16, b -> 4+16 = 20; 0.5 * 36 / 2 = 9
    assert psp_penalty(known_potentials(), 0.1, "paper").item() == pytest.approx(0.9)


def test_reference_normalization_is_mean_over_layers_of_mean_z_squared():
    # mean z^2: a -> 16/6, b -> 20/8; mean over the 2 layers
    expected = 0.1 * (16 / 6 + 20 / 8) / 2
    assert psp_penalty(known_potentials(), 0.1, "reference").item() == pytest.approx(expected)


def test_penalty_accepts_a_sequence_and_defaults_to_paper():
    zs = list(known_potentials().values())
    assert psp_penalty(zs, 2.0).item() == pytest.approx(18.0)


@pytest.mark.parametrize("lam", [-1e-3, math.nan, math.inf, "0.1", None, True])
def test_bad_lambda_is_a_value_error(lam):
    with pytest.raises(ValueError, match="lambda"):
        psp_penalty(known_potentials(), lam)


def test_unknown_normalization_is_a_value_error_naming_both():
    with pytest.raises(ValueError, match="'paper'.*'reference'"):
        psp_penalty(known_potentials(), 1e-3, "layer")


def test_empty_potentials_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="F.relu"):
        psp_penalty({}, 1e-3)


def test_autograd_gradient_of_paper_penalty_equals_eq15_by_hand_float64():
    """Two-layer tanh MLP: the local term of Eq. 13 plus the term from the later layer (Eq. 15)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    _, z = capture(net, x)
    lam, batch = 0.3, x.shape[0]
    psp_penalty(z, lam, "paper").backward()

    w1, b1, w2 = net[0].weight.detach(), net[0].bias.detach(), net[2].weight.detach()
    z1 = x @ w1.T + b1
    y1 = torch.tanh(z1)
    z2 = y1 @ w2.T + net[2].bias.detach()
    # layer 2 (the output): only its own (local) term, dz/dw = y1, dz/db = 1 (Eq. 16)
    g_w2 = lam * z2.T @ y1 / batch
    g_b2 = lam * z2.sum(0) / batch
    # layer 1: local term z1 * x plus the p > l term reaching back through w2 and tanh'
    delta1 = z1 + (z2 @ w2) * (1 - y1**2)
    g_w1 = lam * delta1.T @ x / batch
    g_b1 = lam * delta1.sum(0) / batch
    for got, want in [(net[2].weight.grad, g_w2), (net[2].bias.grad, g_b2),
                      (net[0].weight.grad, g_w1), (net[0].bias.grad, g_b1)]:
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_l2_penalty_gradient_is_sgd_weight_decay():
    torch.manual_seed(3)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, weight_decay=1e-2)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    a(x).square().mean().backward()
    (b(x).square().mean() + l2_penalty(b, 1e-2)).backward()
    opt_a.step()
    opt_b.step()
    torch.testing.assert_close(a.weight, b.weight)
    torch.testing.assert_close(a.bias, b.bias)
    assert l2_penalty([torch.tensor([3.0, 4.0])], 0.5).item() == pytest.approx(6.25)


# ----------------------------------------------------------------------------- bad input


def test_a_bare_tensor_is_one_layers_z_batch_first():
    z = torch.arange(12.0).reshape(4, 3) / 10  # batch 4, 3 neurons
    lam = 0.01
    paper = lam * 0.5 * z.square().sum() / 4
    assert psp_penalty(z, lam, "paper").item() == pytest.approx(paper.item())
    assert psp_penalty(z, lam, "reference").item() == pytest.approx(lam * z.square().mean().item())
    assert psp_penalty(z, lam).item() == psp_penalty([z], lam).item()


@pytest.mark.parametrize("potentials, message", [
    ([1.0, 2.0], "potential 0 is float, not a floating-point tensor"),
    ([torch.ones(2, 3), None], "potential 1 is NoneType"),
    (torch.ones(2, 3, dtype=torch.bool), "potential 0 is torch.bool"),
    (torch.ones(2, 3, dtype=torch.int64), "potential 0 is torch.int64"),
    (torch.zeros(0, 3), r"potential 0 has shape \(0, 3\); each z must be batch-first"),
    (torch.tensor(2.0), r"potential 0 has shape \(\)"),
    (3.0, "potentials must be capture"),
])
def test_potentials_that_are_not_batches_of_float_tensors_are_refused(potentials, message):
    with pytest.raises(ValueError, match=message):
        psp_penalty(potentials, 1e-3)


@pytest.mark.parametrize("batch_size", [-4, 0, True, 2.5])
def test_a_batch_size_that_is_not_positive_is_refused(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None"):
        psp_penalty(known_potentials(), 1e-3, "paper", batch_size=batch_size)


def test_a_lambda_of_one_element_is_accepted_as_tensor_and_numpy_alike():
    import numpy as np

    want = psp_penalty(known_potentials(), 0.1).item()
    for lam in (torch.tensor(0.1), np.array(0.1), np.array([0.1]), np.float64(0.1)):
        assert psp_penalty(known_potentials(), lam).item() == pytest.approx(want)


def test_a_lambda_that_requires_grad_is_refused_not_silently_detached():
    lam = torch.tensor(0.1, requires_grad=True)
    with pytest.raises(ValueError, match="requires grad.*lam.detach"):
        psp_penalty(known_potentials(), lam)


def test_gradient_scale_refuses_a_misspelled_normalization():
    from psp_lite.regularizers import psp_gradient_scale

    with pytest.raises(ValueError, match="unknown normalization 'papr'"):
        psp_gradient_scale(torch.ones(2, 3), 1, 0.1, "papr")


def test_l2_penalty_of_a_model_without_parameters_is_a_zero_tensor():
    penalty = l2_penalty(nn.ReLU(), 0.1)
    assert isinstance(penalty, torch.Tensor) and penalty.dim() == 0 and penalty.item() == 0.0
    assert isinstance(l2_penalty([], 0.1), torch.Tensor)
