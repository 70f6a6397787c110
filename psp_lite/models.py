"""The networks of the paper's experiments. Every activation is an nn module, so that
`capture` sees each post-synaptic potential z."""

from __future__ import annotations

from torch import Tensor, nn


class LeNet5(nn.Module):
    """LeNet5 as in the authors' MNIST / Fashion-MNIST scripts (for 1x28x28 inputs).

    conv 1->20 (5x5) - ReLU - maxpool 2 - conv 20->50 (5x5) - ReLU - maxpool 2 -
    fc 800->500 - ReLU - fc 500->10; no padding, biases everywhere, PyTorch's default init.
    z per image: 20*24*24 = 11520, 50*8*8 = 3200, 500 and 10 (the logits).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(800, 500)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(x.flatten(1)))
        return self.fc2(x)

    #: The layer that produces each captured potential, in capture order (for plots).
    potential_layers = ("conv1", "conv2", "fc1", "fc2")


# ----------------------------------------------------------------------------- CIFAR-10 models
#
# The paper does not say where z is taken in networks with batch norm. Here z is the input of each
# activation module: after batch norm, before the nonlinearity (in ResNet-18 the ReLU after a
# residual sum sees, and PSP penalizes, the sum itself). The logits are the last potential.


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1
) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU.

    z of `relu1` is bn1's output; z of `relu2` is the residual sum bn2(...) + shortcut(x).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.relu2(out)


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant (3x32x32 inputs), about 11.17M parameters.

    3x3 stem conv 64 with stride 1 and no max-pool, BasicBlocks [2, 2, 2, 2] with 64/128/256/512
    channels (strides 1/2/2/2), global average pool, fc. 17 ReLUs: z is taken after BN and before
    each ReLU; after a block's residual sum, z is that sum. With the logits: 18 potentials.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        layers = []
        c_in = 64
        for i, (c_out, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            blocks = nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))
            setattr(self, f"layer{i}", blocks)
            layers.append(blocks)
            c_in = c_out
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand-BN-ReLU6 (skipped when t = 1), 3x3 depthwise-BN-ReLU6,
    1x1 project-BN (linear bottleneck: no activation, so its output is not a potential);
    identity shortcut when stride is 1 and the channel count is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(c_in, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, c_out, 1)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0), CIFAR variant (3x32x32 inputs), about 2.24M parameters.

    As in torchvision's MobileNetV2, except for the strides adapted to 32x32 inputs as usual for
    CIFAR: the stem conv and the second stage (24 channels) have stride 1, so the last feature map
    is 4x4. ReLU6 everywhere; no dropout (the paper's Table 2 baselines have none). z is taken
    after BN and before each ReLU6: 1 after the stem, 33 in the 17 blocks (the projection output
    is linear, so not a potential) and 1 after the final 1x1 conv to 1280 channels; with the
    logits, 36 potentials.
    """

    #: (expansion t, channels c, repeats n, stride s of the first block), CIFAR strides.
    config = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(in_channels, 32, 3, 1), nn.ReLU6(inplace=True)]
        c_in = 32
        for t, c, n, s in self.config:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers += [*_conv_bn(c_in, 1280, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class AllCNNC(nn.Module):
    """All-CNN-C (Springenberg et al. 2014) for 3x32x32 inputs, about 1.37M parameters.

    3x3 conv 96, 96, 96 (stride 2), 192, 192, 192 (stride 2), 3x3 conv 192 (no padding, 8x8 ->
    6x6), 1x1 conv 192, 1x1 conv 10, global average pool. Choices: BatchNorm after each of the
    first eight convs (before the ReLU), as in most CIFAR reimplementations, because the original
    needs careful initialization and learning rates to train and the paper trains all three
    networks with SGD at lr 0.1; no dropout, since the paper's Table 2 baseline has none; no ReLU
    after the last 1x1 conv, whose spatial mean are the logits (the output layer's potentials).
    z is taken after BN and before each of the 8 ReLUs; with the logits, 9 potentials.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        plan = ((in_channels, 96, 3, 1), (96, 96, 3, 1), (96, 96, 3, 2), (96, 192, 3, 1),
                (192, 192, 3, 1), (192, 192, 3, 2), (192, 192, 3, 1), (192, 192, 1, 1))
        layers: list[nn.Module] = []
        for i, (c_in, c_out, kernel, stride) in enumerate(plan):
            padding = 0 if i == 6 else kernel // 2  # conv7 is 'valid': 8x8 -> 6x6
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(192, num_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.classifier(self.features(x))).flatten(1)


MODELS = ("lenet5", "resnet18", "mobilenetv2", "allcnnc")
#: Each model's name as the paper writes it, for titles and labels.
MODEL_TITLES = {"lenet5": "LeNet5", "resnet18": "ResNet-18", "mobilenetv2": "MobileNetV2",
                "allcnnc": "All-CNN-C"}
_BUILDERS: dict[str, type[nn.Module]] = {
    "lenet5": LeNet5, "resnet18": ResNet18, "mobilenetv2": MobileNetV2, "allcnnc": AllCNNC,
}


#: (C, H, W) of the images each model is built for.
MODEL_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "lenet5": (1, 28, 28), "resnet18": (3, 32, 32), "mobilenetv2": (3, 32, 32),
    "allcnnc": (3, 32, 32),
}


def canonical_model(name: str) -> str:
    """The MODELS name of `name` ("LeNet-5" -> "lenet5"); ValueError naming the choices."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}.")
    return key


def check_input_shape(model: str, dataset: str, shape: tuple[int, int, int]) -> None:
    """ValueError unless `model` is built for images of `shape` (C, H, W) as `dataset` has."""
    key = canonical_model(model)
    wanted = MODEL_INPUT_SHAPES[key]
    if tuple(shape) != wanted:
        fits = [m for m, s in MODEL_INPUT_SHAPES.items() if s == tuple(shape)]
        raise ValueError(
            f"model {key!r} takes {'x'.join(map(str, wanted))} images but dataset {dataset!r} "
            f"has {'x'.join(map(str, shape))} images; use "
            + (f"model {' or '.join(repr(m) for m in fits)}" if fits else "another model")
            + " for it.")


def get_model(name: str, num_classes: int = 10) -> nn.Module:
    """A fresh model by name (one of `list_models()`), PyTorch's default init (as
    `torchvision.models.get_model`)."""
    return _BUILDERS[canonical_model(name)](num_classes=num_classes)


def list_models() -> list[str]:
    """The networks of the paper's experiments, by name."""
    return list(MODELS)
