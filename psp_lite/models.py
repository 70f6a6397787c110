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
