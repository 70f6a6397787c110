"""analytic.layer_walk: the chain of layers is read off the model's own forward pass, so the
hand-derived gradients (Eqs. 11-16) work for models other than LeNet5 and nn.Sequential."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from psp_lite import analytic, capture
from psp_lite.analytic import layer_walk as layer_walk
from psp_lite.models import LeNet5

NORMS = ["paper", "reference"]


class ShuffledMLP(nn.Module):
    """An MLP on images, its layers registered in another order than its forward calls them,
    flattening the input inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(5, 3)
        self.act2 = nn.Sigmoid()
        self.hidden2 = nn.Linear(7, 5, bias=False)
        self.act1 = nn.LeakyReLU(0.2)
        self.hidden1 = nn.Linear(16, 7)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.hidden1(x.flatten(1)))
        return self.out(self.act2(self.hidden2(x)))


class OtherOrderCNN(nn.Module):
    """conv (stride 2, padding 1) - in-place ReLU - conv (dilation 2) - tanh - max pool -
    view - fc - leaky ReLU - fc: no pool after the first conv, a pool after the second, three
    potentials of the hidden layers plus the logits; registered out of order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(3 * 2 * 2, 6), nn.LeakyReLU(0.05), nn.Linear(6, 4))
        self.pool = nn.MaxPool2d(3, stride=1)
        self.conv2 = nn.Conv2d(4, 3, 2, dilation=2)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.tanh = nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv1(x))                  # 2x11x11 -> 4x6x6
        x = self.pool(self.tanh(self.conv2(x)))       # -> 3x4x4 -> 3x2x2
        return self.head(x.view(len(x), -1))


def shuffled_mlp() -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    return ShuffledMLP().double(), torch.randn(5, 1, 4, 4, dtype=torch.float64)


def other_order_cnn() -> tuple[nn.Module, Tensor]:
    torch.manual_seed(1)
    return OtherOrderCNN().double(), torch.randn(4, 2, 11, 11, dtype=torch.float64)


def names(model: nn.Module, x: Tensor) -> list[str]:
    return [n for n, _ in layer_walk.layer_stack(model, x)]


def test_lenet5_is_read_off_its_forward_pass() -> None:
    assert names(LeNet5(), torch.zeros(2, 1, 28, 28)) == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]


def test_the_order_is_the_forward_order_not_the_registration_order() -> None:
    assert names(*shuffled_mlp()) == ["flatten", "hidden1", "act1", "hidden2", "act2", "out"]
    assert names(*other_order_cnn()) == ["conv1", "relu", "conv2", "tanh", "pool", "flatten",
                                         "head.0", "head.1", "head.2"]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("make", [shuffled_mlp, other_order_cnn])
def test_other_stacks_match_autograd_in_float64(make, norm: str) -> None:
    model, x = make()
    rows = analytic.check_psp_gradients(model, x, 0.3, norm, rtol=1e-10)
    assert [r.name for r in rows] == [n for n, _ in model.named_parameters()]
    assert max(r.max_rel for r in rows) < 1e-10
    assert min(r.scale for r in rows) > 0                # every tensor gets a gradient
    ours = analytic.analytic_psp_gradients(model, x, 0.3, norm)
    assert list(ours) == [n for n, _ in model.named_parameters()]


@pytest.mark.parametrize("make", [shuffled_mlp, other_order_cnn])
def test_records_are_the_captured_potentials(make) -> None:
    """z of each record is capture's z (the in-place ReLU does not overwrite it)."""
    model, x = make()
    out, records = analytic.forward_record(model, x)
    ref_out, pots = capture(model, x)
    torch.testing.assert_close(out, ref_out.detach(), rtol=0, atol=1e-12)
    assert len(records) == len(pots)
    for r, z in zip(records, pots.values(), strict=True):
        torch.testing.assert_close(r.z, z.detach(), rtol=0, atol=1e-12)
    assert (records[0].z < 0).any()                      # the ReLU had something to clip


@pytest.mark.parametrize("norm", NORMS)
def test_decomposition_on_the_other_cnn(norm: str) -> None:
    """Eq. 14 per source layer, against autograd with only that layer's penalty."""
    model, x = other_order_cnn()
    _, records = analytic.forward_record(model, x)
    contributions = analytic.psp_contributions(records, 0.7, norm)
    for p, grads in enumerate(contributions.values()):
        analytic.compare_all(grads, analytic.autograd_psp_gradients(model, x, 0.7, norm,
                                                                    source=p), rtol=1e-10)


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)
        with torch.no_grad():  # fc1's outputs negative, so that F.relu changes them (the trace
            self.fc1.bias.fill_(-10.0)  # compares values: an all-positive z would pass unchanged)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(F.relu(self.fc1(x))))


class Residual(FunctionalRelu):
    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        return self.fc2(self.act(h) + h)


class Twice(FunctionalRelu):
    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.act(self.fc1(x))))


class Scaled(FunctionalRelu):
    def forward(self, x: Tensor) -> Tensor:
        return 2 * self.fc2(self.act(self.fc1(x)))


@pytest.mark.parametrize("model,match", [
    (FunctionalRelu(), "act does not take fc1's output"),
    (Residual(), "fc2 does not take act's output"),
    (Twice(), "act is called twice"),
    (Scaled(), "does not return fc2's output"),
])
def test_a_forward_that_is_not_a_chain_says_where_it_breaks(model, match) -> None:
    with pytest.raises(TypeError, match=match):
        analytic.forward_record(model, torch.randn(2, 3))
    assert all(not m._forward_hooks for m in model.modules())   # the hooks are gone


def test_a_model_without_an_input_or_submodules_says_what_to_do() -> None:
    with pytest.raises(TypeError, match="pass an example input"):
        layer_walk.layer_stack(LeNet5())

    class Empty(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(TypeError, match="no submodules"):
        layer_walk.layer_stack(Empty(), torch.zeros(1, 2))
