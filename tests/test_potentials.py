"""capture(): the PSP contract of DESIGN.md."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from psp_lite import capture, psp_penalty
from psp_lite.potentials import mean_square


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(inplace=True),
                         nn.Linear(5, 3)).double()


def test_capture_values_equal_hand_computed_preactivations():
    net = mlp()
    x = torch.randn(7, 4, dtype=torch.float64)
    out, z = capture(net, x)
    z1 = x @ net[0].weight.T + net[0].bias
    z2 = torch.tanh(z1) @ net[2].weight.T + net[2].bias
    z3 = torch.relu(z2) @ net[4].weight.T + net[4].bias
    assert list(z) == ["1", "3", "output"]
    torch.testing.assert_close(z["1"], z1, rtol=0, atol=1e-14)
    torch.testing.assert_close(z["3"], z2, rtol=0, atol=1e-14)
    torch.testing.assert_close(z["output"], z3, rtol=0, atol=1e-14)
    assert out is z["output"]
    assert (z["3"] < 0).any(), "in-place ReLU must not clip the captured pre-activation"


def test_include_output_false_leaves_only_activation_inputs():
    _, z = capture(mlp(), torch.randn(2, 4, dtype=torch.float64), include_output=False)
    assert list(z) == ["1", "3"]


def test_resnet18_inplace_relu_gives_17_potentials_plus_output_and_restores_flags():
    model = torchvision.models.resnet18(num_classes=10)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert all(m.inplace for m in relus)
    out, z = capture(model, torch.randn(2, 3, 32, 32))
    assert len(z) == 18 and list(z)[-1] == "output"
    assert len(set(z)) == 18, "a module called twice must give two distinct names"
    assert "layer1.0.relu" in z and "layer1.0.relu#2" in z
    assert any((t < 0).any() for name, t in z.items() if name != "output")
    psp_penalty(z, 1e-3, "reference").backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0
    assert all(m.inplace for m in relus)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_model_is_restored_when_forward_raises():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            self.act(x)
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, torch.randn(3))
    assert model.act.inplace is True
    assert not model.act._forward_pre_hooks


def test_capture_gives_the_output_of_a_model_without_activation_modules():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return torch.relu(self.fc(x))

    _, z = capture(Functional(), torch.randn(4, 3), include_output=False)
    assert len(z) == 0
    with pytest.raises(ValueError, match="no post-synaptic potentials.*nn.ReLU"):
        psp_penalty(z, 1e-3)


def test_mean_square_is_per_layer_mean_of_z_squared():
    z = {"a": torch.tensor([[1.0, -3.0]]), "b": torch.tensor([[2.0], [0.0]])}
    assert mean_square(z) == {"a": 5.0, "b": 2.0}


def test_names_restart_at_every_forward_pass_while_watching():
    from psp_lite.potentials import watch_potentials

    net, seen = mlp(), []
    with watch_potentials(net, lambda name, z: seen.append(name)):
        for _ in range(3):
            net(torch.randn(2, 4, dtype=torch.float64))
    assert seen == ["1", "3"] * 3
