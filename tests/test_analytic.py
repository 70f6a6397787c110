"""psp_lite.analytic: hand-derived PSP gradients (Eqs. 9-16) equal autograd's."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from psp_lite import analytic, capture, psp_penalty
from psp_lite.models import LeNet5

ACTS = [nn.Tanh, nn.Sigmoid, nn.ReLU, lambda: nn.LeakyReLU(0.1)]
NORMS = ["paper", "reference"]


def random_mlp(seed: int) -> tuple[nn.Sequential, torch.Tensor]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    depth = rng.randint(1, 5)                       # number of affine layers
    widths = [rng.randint(1, 12) for _ in range(depth + 1)]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(widths[i], widths[i + 1], bias=rng.random() < 0.8))
        if i < depth - 1:
            layers.append(rng.choice(ACTS)())
    x = torch.randn(rng.randint(1, 7), widths[0], dtype=torch.float64)
    return nn.Sequential(*layers).double(), x


def random_cnn(seed: int) -> tuple[nn.Sequential, torch.Tensor]:
    """Conv2d (random kernel, stride, padding, dilation) - activation - optional MaxPool2d,
    one to three times, then Flatten and a Linear output layer."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    in_channels, in_size = rng.randint(1, 3), rng.randint(9, 14)
    channels, size = in_channels, in_size
    layers: list[nn.Module] = []
    for _ in range(rng.randint(1, 3)):
        out, k = rng.randint(2, 5), rng.choice([1, 2, 3])
        stride, pad, dil = rng.choice([1, 2]), rng.choice([0, 1]), rng.choice([1, 2])
        new_size = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
        if new_size < 2:
            break
        layers += [nn.Conv2d(channels, out, k, stride=stride, padding=pad, dilation=dil,
                             bias=rng.random() < 0.8), rng.choice(ACTS)()]
        channels, size = out, new_size
        if size >= 4 and rng.random() < 0.6:
            pk, ps = rng.choice([(2, 2), (3, 2), (3, 1)])
            layers.append(nn.MaxPool2d(pk, ps))
            size = (size - pk) // ps + 1
    if not layers:
        layers = [nn.Conv2d(channels, 2, 1), nn.ReLU()]
        channels = 2
    layers += [nn.Flatten(), nn.Linear(channels * size * size, rng.randint(2, 6))]
    x = torch.randn(rng.randint(1, 4), in_channels, in_size, in_size, dtype=torch.float64)
    return nn.Sequential(*layers).double(), x


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("seed", range(12))
def test_mlp_matches_autograd(seed: int, norm: str) -> None:
    model, x = random_mlp(seed)
    rows = analytic.check_psp_gradients(model, x, lam=0.37, normalization=norm, rtol=1e-10)
    assert len(rows) == len(list(model.parameters()))
    assert all(r.max_rel <= 1e-10 for r in rows)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("seed", range(12))
def test_cnn_matches_autograd(seed: int, norm: str) -> None:
    model, x = random_cnn(seed)
    rows = analytic.check_psp_gradients(model, x, lam=0.5, normalization=norm, rtol=1e-10)
    assert all(r.max_rel <= 1e-10 for r in rows)


def test_random_cnns_cover_the_cases() -> None:
    """The random CNNs include pooling, strides, padding, dilation and every activation."""
    modules = [m for s in range(12) for m in random_cnn(s)[0]]
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert any(isinstance(m, nn.MaxPool2d) for m in modules)
    assert {c.stride[0] for c in convs} == {1, 2} and {c.dilation[0] for c in convs} == {1, 2}
    assert {c.padding[0] for c in convs} == {0, 1}
    assert {type(m) for m in modules} >= {nn.Tanh, nn.Sigmoid, nn.ReLU, nn.LeakyReLU}


@pytest.mark.parametrize("norm", NORMS)
def test_lenet5_float64(norm: str) -> None:
    torch.manual_seed(0)
    model = LeNet5().double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64) * 2 - 1
    rows = analytic.check_psp_gradients(model, x, 1e-3, norm)
    assert [r.name for r in rows] == [n for n, _ in model.named_parameters()]
    assert max(r.max_rel for r in rows) < 1e-12


def test_lenet5_float32_within_float32_precision() -> None:
    torch.manual_seed(0)
    model = LeNet5()
    rows = analytic.check_psp_gradients(model, torch.rand(2, 1, 28, 28), 1e-3, "reference")
    assert max(r.max_rel for r in rows) < 1e-4


def test_forward_record_matches_capture() -> None:
    model, x = random_cnn(3)
    out, records = analytic.forward_record(model, x)
    ref_out, pots = capture(model, x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    assert len(records) == len(pots)
    for r, z in zip(records, pots.values(), strict=True):
        torch.testing.assert_close(r.z, z.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(analytic.psp_value(records, 0.3), psp_penalty(pots, 0.3).detach())


@pytest.mark.parametrize("norm", NORMS)
def test_output_layer_alone(norm: str) -> None:
    """A network that is just its output layer: the gradient is c * z^T y (Eqs. 9, 16)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    grads = analytic.analytic_psp_gradients(model, x, 0.2, norm)
    z = model(x).detach()
    c = 0.2 / 4 if norm == "paper" else 2 * 0.2 / z.numel()
    torch.testing.assert_close(grads["0.weight"], c * z.T @ x, rtol=1e-13, atol=0)
    torch.testing.assert_close(grads["0.bias"], c * z.sum(0), rtol=1e-13, atol=0)
    analytic.compare_all(grads, analytic.autograd_psp_gradients(model, x, 0.2, norm))


def test_output_term_reaches_hidden_layers() -> None:
    """The logits' penalty (p = N) contributes to every earlier layer, and matches autograd."""
    model, x = random_mlp(5)
    _, records = analytic.forward_record(model, x)
    if len(records) < 2:
        model, x = random_mlp(1)
        _, records = analytic.forward_record(model, x)
    contributions = analytic.psp_contributions(records, 1.0)
    last = list(contributions)[-1]
    reference = analytic.autograd_psp_gradients(model, x, 1.0, source=len(records) - 1)
    analytic.compare_all(contributions[last], reference)
    assert contributions[last][f"{records[0].name}.weight"].abs().max() > 0


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("make,seed", [(random_mlp, 2), (random_mlp, 7), (random_cnn, 4)])
def test_decomposition_sums_to_total_and_matches_autograd(make, seed: int, norm: str) -> None:
    model, x = make(seed)
    _, records = analytic.forward_record(model, x)
    contributions = analytic.psp_contributions(records, 0.7, norm)
    total = analytic.psp_gradients(records, 0.7, norm)
    for name in total:
        summed = sum(c[name] for c in contributions.values())
        analytic.compare_gradients(name, summed, total[name], rtol=1e-12)
    for p, (src, grads) in enumerate(contributions.items()):
        analytic.compare_all(grads, analytic.autograd_psp_gradients(model, x, 0.7, norm, source=p))
        for layer in records[p + 1:]:                   # Eq. 14, p < l: exactly zero
            for name in layer.params:
                assert torch.count_nonzero(grads[name]) == 0, (src, name)


def test_eq12_terms_sum_to_eq9() -> None:
    torch.manual_seed(0)
    w, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    y = torch.randn(3, 6, dtype=torch.float64)
    self_term, cross_term = analytic.eq12_terms(w, b, y)
    z = y @ w.T + b
    torch.testing.assert_close(self_term + cross_term, z[:, :, None] * y[:, None, :],
                               rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(self_term, w[None] * y[:, None, :] ** 2, rtol=0, atol=0)


def test_weight_decay_special_case_is_exact() -> None:
    """dz/dw = 1, cross term dropped: Eq. 12 gives lam * w, bit for bit."""
    torch.manual_seed(0)
    w = torch.randn(5, 7, dtype=torch.float64)
    assert torch.equal(analytic.weight_decay_gradient(w, 1e-3), 1e-3 * w)
    self_term, _ = analytic.eq12_terms(w, None, torch.ones(1, 7, dtype=torch.float64))
    assert torch.equal(self_term[0], w)


def test_single_layer_white_inputs_is_weight_decay() -> None:
    """Batch form: the local gradient is lam * (W <y y^T> + b <y>^T) = lam * W for white y."""
    from psp_lite.teaching.metric import whiten

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3, bias=False)).double()
    y = whiten(torch.randn(50, 6, dtype=torch.float64))
    grads = analytic.analytic_psp_gradients(model, y, 1e-3, "paper")
    analytic.compare_gradients("w", grads["0.weight"], 1e-3 * model[0].weight.detach(),
                               rtol=1e-12)


def test_finite_difference_agrees_and_restores() -> None:
    model, x = random_mlp(3)
    before = copy.deepcopy(model.state_dict())
    grads = analytic.analytic_psp_gradients(model, x, 1.0)
    name = next(iter(grads))
    index = tuple(int(i) for i in torch.unravel_index(grads[name].abs().argmax(),
                                                      grads[name].shape))
    fd = analytic.finite_difference(model, x, 1.0, name, index)
    assert fd == pytest.approx(grads[name][index].item(), rel=1e-6, abs=1e-10)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_compare_gradients_rows_and_errors() -> None:
    ref = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    row = analytic.compare_gradients("t", ref + torch.tensor([0, 1e-12, 0], dtype=torch.float64),
                                     ref)
    assert row.name == "t" and row.shape == (3,)
    assert row.max_abs == pytest.approx(1e-12) and row.max_rel == pytest.approx(5e-13)
    assert row.scale == 2.0 and "t" in str(row)
    with pytest.raises(AssertionError, match="t: max abs error"):
        analytic.compare_gradients("t", ref + 1e-6, ref)
    with pytest.raises(AssertionError, match="shape"):
        analytic.compare_gradients("t", ref[:2], ref)
    with pytest.raises(AssertionError, match="names differ"):
        analytic.compare_all({"a": ref}, {"b": ref})
    assert analytic.compare_gradients("f32", ref.float() * (1 + 1e-6), ref.float()).max_rel < 1e-4
    zeros = torch.zeros(2)
    assert analytic.compare_gradients("z", zeros, zeros).max_rel == 0.0
    assert "parameter" in analytic.format_table([row], "title")


@pytest.mark.parametrize("layers,match", [
    ([nn.Linear(3, 3), nn.GELU(), nn.Linear(3, 2)], "GELU"),
    ([nn.Linear(3, 3), nn.Linear(3, 2)], "followed by an activation"),
    ([nn.Linear(3, 3), nn.Tanh()], "must end with its output layer"),
    ([nn.Tanh(), nn.Linear(3, 2)], "before the first affine"),
    ([nn.Conv2d(1, 2, 3, groups=1, padding="same"), nn.ReLU(), nn.Flatten(),
      nn.Linear(2 * 25, 2)], "groups=1"),
])
def test_unsupported_stacks_say_why(layers, match) -> None:
    model = nn.Sequential(*layers)
    x = torch.randn(2, 1, 5, 5) if isinstance(layers[0], nn.Conv2d) else torch.randn(2, 3)
    with pytest.raises(TypeError, match=match):
        analytic.forward_record(model, x)


def test_bad_lambda_and_normalization() -> None:
    model, x = random_mlp(0)
    _, records = analytic.forward_record(model, x)
    with pytest.raises(ValueError):
        analytic.psp_gradients(records, -1.0)
    with pytest.raises(ValueError):
        analytic.psp_gradients(records, 1.0, "sum")
