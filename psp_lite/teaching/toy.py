"""Toy networks and data: a seeded MLP, a teacher-labelled Gaussian dataset, and plain SGD with
no regularizer, l2 weight decay (Eqs. 3-5) or PSP (Eq. 7), small enough to train in seconds."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from psp_lite.potentials import capture
from psp_lite.regularizers import REGULARIZERS, check_lambda, check_normalization, psp_penalty

ACTIVATION_NAMES: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name: tanh, sigmoid, relu or leaky_relu."""
    try:
        return ACTIVATION_NAMES[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; use one of {list(ACTIVATION_NAMES)}") \
            from None


def mlp(widths: Sequence[int], activation: str = "tanh", *, bias: bool = True, seed: int = 0,
        dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Linear - phi - Linear - phi - ... - Linear: one z per hidden neuron, logits last (Eq. 1-2).

    widths = (inputs, hidden..., outputs); PyTorch's default init, seeded from `seed` without
    touching the caller's global random state.
    """
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b, bias=bias))
            if i < len(widths) - 2:
                layers.append(make_activation(activation))
    return nn.Sequential(*layers).to(dtype)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's nn.Linear layers in order (layer l = 1..N of the paper is entry l - 1)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def toy_classification(n: int, dim: int = 32, classes: int = 4, seed: int = 0
                       ) -> tuple[Tensor, Tensor]:
    """n Gaussian inputs labelled by one fixed random tanh 'teacher' network (same for any seed).

    A stand-in for real data that takes no download and trains in seconds.
    """
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(dim, 64, generator=g) * 3 / math.sqrt(dim)
    w2 = torch.randn(64, classes, generator=g) / 8
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return x, (torch.tanh(x @ w1) @ w2).argmax(1)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restored after).

    Tiny networks gain nothing from more threads, and on a busy machine several threads waiting
    for each other can make them many times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_sgd(model: nn.Module, x: Tensor, y: Tensor, *, regularizer: str = "l2",
              lam: float = 0.0, epochs: int, lr: float = 0.2, batch_size: int = 50,
              seed: int = 0, normalization: str = "reference") -> nn.Module:
    """Plain SGD on cross-entropy plus a regularizer; trains `model` in place and returns it.

    regularizer "none"; "l2": theta <- theta - lr (dL/dtheta + lam theta) (Eqs. 3-5, what
    ``torch.optim.SGD(weight_decay=lam)`` does); "psp": the loss gets ``psp_penalty`` (Eq. 7) on
    every z, logits included, in the given normalization. Batch order is seeded.
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; use one of {REGULARIZERS}")
    lam = check_lambda(lam)
    check_normalization(normalization)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    with single_thread():
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                out, zs = capture(model, x[idx])
                loss = F.cross_entropy(out, y[idx])
                if regularizer == "psp" and lam > 0:
                    loss = loss + psp_penalty(zs, lam, normalization)
                grads = torch.autograd.grad(loss, params)
                decay = lam if regularizer == "l2" else 0.0
                with torch.no_grad():
                    for p, grad in zip(params, grads, strict=True):
                        p.sub_(lr * (grad + decay * p))
    return model
