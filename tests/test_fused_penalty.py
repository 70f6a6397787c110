"""psp_penalty's fused node against autograd of the plain formula (Eq. 7), in float64.

The reference below is written out independently of psp_lite: `plain_penalty` squares and sums
each z through ordinary autograd. Every case compares all parameter gradients.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from psp_lite import capture, psp_penalty
from psp_lite.models import LeNet5

LAM = 0.05


def plain_penalty(zs: list[torch.Tensor], lam: float, normalization: str,
                  batch: int | None = None) -> torch.Tensor:
    """Eq. 7 by its definition, differentiated by ordinary autograd."""
    if normalization == "paper":
        batch = zs[0].shape[0] if batch is None else batch
        return lam * 0.5 * sum((z * z).sum() for z in zs) / batch
    return lam * sum((z * z).mean() for z in zs) / len(zs)


def grads(model: nn.Module) -> list[torch.Tensor]:
    out = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return out


def assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-13)


def fused_and_plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalization: str,
                    *, scale: float = 1.0, include_output: bool = True, **kw):
    """Parameter gradients of scale * (CE + penalty) by the fused node and by the plain formula,
    then the penalty values."""
    out, z = capture(model, x, include_output=include_output)
    fused = psp_penalty(z, LAM, normalization, **kw)
    (scale * (F.cross_entropy(out, y) + fused)).backward()
    got = grads(model)
    out, z = capture(model, x, include_output=include_output)
    plain = plain_penalty(list(z.values()), LAM, normalization, kw.get("batch_size"))
    (scale * (F.cross_entropy(out, y) + plain)).backward()
    want = grads(model)
    return got, want, fused.item(), plain.item()


class BNResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)  # called twice, in place
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)) + h)  # residual sum, then the same ReLU again
        return self.fc(h.mean((2, 3)))


def data(shape: tuple[int, ...], classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    return x, torch.randint(0, classes, (shape[0],), generator=g)


@pytest.mark.parametrize("normalization", ["paper", "reference"])
def test_lenet5_gradients_and_value(normalization):
    torch.manual_seed(2)
    net = LeNet5().double()
    x, y = data((5, 1, 28, 28), 10)
    got, want, fused, plain = fused_and_plain(net, x, y, normalization)
    assert_same(got, want)
    assert fused == pytest.approx(plain, rel=1e-12)


@pytest.mark.parametrize("normalization", ["paper", "reference"])
def test_batchnorm_residual_inplace_relu_called_twice(normalization):
    torch.manual_seed(3)
    net = BNResidual().double()
    x, y = data((6, 3, 8, 8))
    _, z = capture(net, x)
    assert list(z) == ["relu", "relu#2", "output"]
    got, want, fused, plain = fused_and_plain(net, x, y, normalization)
    assert_same(got, want)
    assert fused == pytest.approx(plain, rel=1e-12)
    assert net.relu.inplace is True


def test_include_output_false_leaves_the_logits_out():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    x, y = data((7, 6), 4)
    got, want, fused, plain = fused_and_plain(net, x, y, "reference", include_output=False)
    assert_same(got, want)
    # the last layer's weight gets only the cross-entropy's gradient: compare with CE alone
    F.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(got[2], net[2].weight.grad, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(got[0], net[0].weight.grad)


@pytest.mark.parametrize("scale", [0.25, 65536.0])
def test_scaled_loss_scales_the_penalty_gradient_too(scale):
    """(loss * 0.25).backward() as in gradient accumulation; 65536 as a GradScaler would."""
    torch.manual_seed(5)
    net = LeNet5().double()
    x, y = data((4, 1, 28, 28), 10)
    got, want, _, _ = fused_and_plain(net, x, y, "reference", scale=scale)
    assert_same(got, want)
    unscaled, _, _, _ = fused_and_plain(net, x, y, "reference")
    assert_same([g / scale for g in got], unscaled)


def test_gradient_accumulation_over_micro_batches_equals_the_sum():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    x, y = data((8, 3), 2)
    for half in (slice(0, 4), slice(4, 8)):
        out, z = capture(net, x[half])
        ((F.cross_entropy(out, y[half]) + psp_penalty(z, LAM, "paper")) / 2).backward()
    got = grads(net)
    for half in (slice(0, 4), slice(4, 8)):
        out, z = capture(net, x[half])
        ((F.cross_entropy(out, y[half]) + plain_penalty(list(z.values()), LAM, "paper")) / 2
         ).backward()
    assert_same(got, grads(net))


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_no_grad_and_inference_mode_give_the_value_without_a_graph(context):
    torch.manual_seed(7)
    net = LeNet5().double()
    x, _ = data((3, 1, 28, 28), 10)
    _, z = capture(net, x)
    expected = plain_penalty(list(z.values()), LAM, "paper").item()
    with context():
        _, z = capture(net, x)
        value = psp_penalty(z, LAM, "paper")
    assert not value.requires_grad
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_a_model_returning_a_tuple_is_a_clear_error():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act = nn.Linear(3, 2), nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x)), x

    with pytest.raises(TypeError, match="include_output=False"):
        capture(Pair(), torch.randn(2, 3))


def test_an_activation_named_output_keeps_its_z_beside_the_logits():
    torch.manual_seed(8)
    net = nn.Sequential()
    net.add_module("hidden", nn.Linear(4, 3))
    net.add_module("output", nn.Tanh())
    net.add_module("head", nn.Linear(3, 2))
    net = net.double()
    x, y = data((5, 4), 2)
    out, z = capture(net, x)
    assert list(z) == ["output", "output#logits"]
    torch.testing.assert_close(z["output"], net.hidden(x))
    torch.testing.assert_close(z["output#logits"], out)
    got, want, _, _ = fused_and_plain(net, x, y, "paper")
    assert_same(got, want)


def test_a_potential_that_does_not_reach_the_loss_still_pulls_its_weights():
    class DeadBranch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.side, self.act, self.side_act = (
                nn.Linear(4, 3), nn.Linear(4, 2), nn.ReLU(), nn.Tanh())

        def forward(self, x):
            self.side_act(self.side(x))  # computed, then unused
            return self.act(self.fc(x))

    torch.manual_seed(9)
    net = DeadBranch().double()
    x, y = data((6, 4), 3)
    got, want, _, _ = fused_and_plain(net, x, y, "reference")
    assert_same(got, want)
    side_weight_grad = got[2]
    assert side_weight_grad.abs().sum() > 0  # the penalty alone reaches the unused branch


def test_paper_normalization_with_potentials_that_are_not_batch_first():
    """A sequence model's z is (time, batch, features): the batch size is passed explicitly."""
    torch.manual_seed(10)
    cell = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).double()
    x = torch.randn(7, 2, 3, dtype=torch.float64)  # 7 steps, batch 2
    _, z = capture(cell, x, include_output=False)
    psp_penalty(z, LAM, "paper", batch_size=2).backward()
    got = grads(cell)
    _, z = capture(cell, x, include_output=False)
    plain_penalty(list(z.values()), LAM, "paper", batch=2).backward()
    assert_same(got, grads(cell))
    # and the default (leading dimension, 7) would be a different, wrong number
    _, z = capture(cell, x, include_output=False)
    assert psp_penalty(z, LAM, "paper").item() == pytest.approx(
        psp_penalty(z, LAM, "paper", batch_size=2).item() * 2 / 7)


def test_functional_activations_warn_once_naming_the_fix():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    net = Functional()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, z = capture(net, torch.randn(2, 3))
        capture(net, torch.randn(2, 3))
    assert list(z) == ["output"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "nn.ReLU()" in messages[0] and "Functional" in messages[0]


@pytest.mark.parametrize("normalization", ["paper", "reference"])
def test_under_vmap_and_grad_each_model_gets_its_own_gradient(normalization):
    """torch.func: three stacked MLPs, per-model gradients equal to ordinary autograd's."""
    torch.manual_seed(11)
    nets = [nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
            for _ in range(3)]
    params, buffers = stack_module_state(nets)
    x, y = data((6, 4), 3)
    xs = torch.stack([x, x + 1, x * 2])

    def loss(p, b, xb):
        out, z = capture_functional(p, b, xb)
        return F.cross_entropy(out, y) + psp_penalty(z, LAM, normalization)

    def capture_functional(p, b, xb):
        return capture(_Call(nets[0], p, b), xb)

    per_model = vmap(grad(loss))(params, buffers, xs)
    for k, net in enumerate(nets):
        out, z = capture(net, xs[k])
        (F.cross_entropy(out, y) + plain_penalty(list(z.values()), LAM, normalization)).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(per_model[name][k], p.grad, rtol=1e-10, atol=1e-13)


class _Call(nn.Module):
    """`base` run with the given parameters and buffers through functional_call."""

    def __init__(self, base: nn.Module, params: dict, buffers: dict) -> None:
        super().__init__()
        self.base, self.params, self.buffers_ = base, params, buffers

    def forward(self, x):
        return functional_call(self.base, (self.params, self.buffers_), (x,))
