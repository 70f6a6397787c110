"""psp_lite.models: shapes, parameter counts, and the potentials capture sees in each network."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from psp_lite import capture, psp_penalty
from psp_lite.models import MODELS, AllCNNC, BasicBlock, LeNet5, MobileNetV2, ResNet18, get_model

CIFAR = {"resnet18": (ResNet18, 11_173_962, 18), "mobilenetv2": (MobileNetV2, 2_236_682, 36),
         "allcnnc": (AllCNNC, 1_369_738, 9)}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def input_for(name: str) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 1, 28, 28) if name == "lenet5" else torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_backward_through_psp(name):
    torch.manual_seed(0)
    model = get_model(name)
    flags = [getattr(m, "inplace", None) for m in model.modules()]
    out, potentials = capture(model, input_for(name))
    assert out.shape == (2, 10)
    expected = 4 if name == "lenet5" else CIFAR[name][2]
    assert len(potentials) == expected and list(potentials)[-1] == "output"
    loss = nn.functional.cross_entropy(out, torch.tensor([1, 2])) \
        + psp_penalty(potentials, 1e-3, "reference")
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert [getattr(m, "inplace", None) for m in model.modules()] == flags  # restored


@pytest.mark.parametrize("name", list(CIFAR))
def test_parameter_counts_in_the_expected_ballpark(name):
    cls, reference, _ = CIFAR[name]
    model = get_model(name)
    assert isinstance(model, cls)
    assert abs(n_params(model) - reference) / reference < 0.03


def test_known_parameter_counts():
    assert n_params(ResNet18()) == 11_173_962  # the usual CIFAR ResNet-18
    # the same layers as torchvision's MobileNetV2; only the strides differ
    assert n_params(MobileNetV2()) == n_params(torchvision.models.mobilenet_v2(num_classes=10))
    assert 2_200_000 <= n_params(MobileNetV2()) <= 2_300_000
    assert 1_340_000 <= n_params(AllCNNC()) <= 1_400_000


def test_resnet18_potentials_after_bn_and_residual_sum():
    torch.manual_seed(0)
    model = ResNet18().eval()
    x = torch.randn(2, 3, 32, 32)
    _, z = capture(model, x)
    names = list(z)
    assert names[0] == "relu" and names[1:3] == ["layer1.0.relu1", "layer1.0.relu2"]
    assert sum(n.endswith(("relu1", "relu2")) for n in names) == 16
    assert z["relu"].shape == (2, 64, 32, 32) and z["layer4.1.relu2"].shape == (2, 512, 4, 4)
    with torch.no_grad():
        stem = model.bn1(model.conv1(x))
        block: BasicBlock = model.layer1[0]
        inner = block.bn1(block.conv1(stem.relu()))
        summed = block.bn2(block.conv2(inner.relu())) + stem.relu()
    assert torch.allclose(z["relu"], stem, atol=1e-6)
    assert torch.allclose(z["layer1.0.relu1"], inner, atol=1e-6)
    assert torch.allclose(z["layer1.0.relu2"], summed, atol=1e-6)
    assert (z["layer1.0.relu2"] < 0).any()  # pre-activation values, not the ReLU's output


def test_shapes_of_cifar_feature_maps():
    torch.manual_seed(0)
    _, z = capture(MobileNetV2(), torch.randn(2, 3, 32, 32))
    shapes = [tuple(t.shape) for t in z.values()]
    assert shapes[0] == (2, 32, 32, 32)  # stride-1 stem
    assert shapes[-2] == (2, 1280, 4, 4)  # 32 / 8 after the CIFAR strides
    assert all(isinstance(m, nn.ReLU6) for m in MobileNetV2().modules()
               if isinstance(m, (nn.ReLU, nn.ReLU6)))
    _, z = capture(AllCNNC(), torch.randn(2, 3, 32, 32))
    assert [t.shape[-1] for t in z.values()] == [32, 32, 16, 16, 16, 8, 6, 6, 10]
    assert not any(isinstance(m, nn.Dropout) for name in MODELS
                   for m in get_model(name).modules())


def test_lenet5_potentials_equal_hand_computed_pre_activations():
    torch.manual_seed(0)
    model = LeNet5()
    x = torch.randn(3, 1, 28, 28)
    out, z = capture(model, x)
    assert list(z) == ["relu1", "relu2", "relu3", "output"]
    with torch.no_grad():
        z1 = model.conv1(x)
        z2 = model.conv2(model.pool1(torch.relu(z1)))
        z3 = model.fc1(model.pool2(torch.relu(z2)).flatten(1))
        z4 = model.fc2(torch.relu(z3))
    for got, want in zip(z.values(), (z1, z2, z3, z4), strict=True):
        assert torch.equal(got.detach(), want)
    assert torch.equal(out.detach(), z4)
    assert [t[0].numel() for t in z.values()] == [11520, 3200, 500, 10]


def test_build_model_names():
    assert MODELS == ("lenet5", "resnet18", "mobilenetv2", "allcnnc")
    assert isinstance(get_model("ResNet-18"), ResNet18)
    assert get_model("lenet5", num_classes=7)(torch.zeros(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(ValueError) as info:
        get_model("vgg16")
    assert all(name in str(info.value) for name in MODELS)
