"""Decay dynamics: what the pure weight-decay update theta <- (1 - lam) theta (Eq. 5) does to
the potentials <z_l^2> of every layer (Eq. 6)."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from psp_lite.potentials import OUTPUT, capture, mean_square
from psp_lite.regularizers import check_lambda
from psp_lite.report.style import legend_below, readable
from psp_lite.teaching.toy import mlp, single_thread


@torch.no_grad()
def mean_z2_during_weight_decay(model: nn.Module, x: Tensor, lam: float, steps: int
                                ) -> OrderedDict[str, np.ndarray]:
    """<z^2> per layer after 0..steps pure weight-decay updates theta <- (1 - lam) theta (Eq. 5).

    Works on a copy; the model passed in is left as it was.
    """
    lam = check_lambda(lam)
    model = copy.deepcopy(model)
    history: OrderedDict[str, list[float]] = OrderedDict()
    with single_thread():
        for step in range(steps + 1):
            if step:
                for p in model.parameters():
                    p.mul_(1 - lam)
            for name, value in mean_square(capture(model, x)[1]).items():
                history.setdefault(name, []).append(value)
    return OrderedDict((k, np.array(v)) for k, v in history.items())


#: Notebook 01's two decay networks, both 16-32-32-32-10: title -> (activation, with biases).
DECAY_NETWORKS = {"ReLU, no biases": ("relu", False), "tanh, with biases": ("tanh", True)}


def decay_network(title: str, n_points: int, lam: float, steps: int, seed: int = 1
                  ) -> OrderedDict[str, np.ndarray]:
    """`mean_z2_during_weight_decay` on one of `DECAY_NETWORKS` (seeded weights), on `n_points`
    Gaussian inputs."""
    if title not in DECAY_NETWORKS:
        raise ValueError(f"unknown decay network {title!r}; choose one of {list(DECAY_NETWORKS)}")
    activation, bias = DECAY_NETWORKS[title]
    x = torch.randn(n_points, 16, generator=torch.Generator().manual_seed(seed))
    return mean_z2_during_weight_decay(mlp((16, 32, 32, 32, 10), activation, bias=bias, seed=0),
                                       x, lam, steps)


def decay_two_networks(n_points: int, lam: float, steps: int, seed: int = 1
                       ) -> OrderedDict[str, OrderedDict[str, np.ndarray]]:
    """`decay_network` for both of `DECAY_NETWORKS`, on the same inputs."""
    return OrderedDict((title, decay_network(title, n_points, lam, steps, seed))
                       for title in DECAY_NETWORKS)


def bias_free_relu_prediction(z2_at_start: float, layer: int, lam: float, steps: np.ndarray
                              ) -> np.ndarray:
    """(1 - lam)^(2 l t) <z_l^2>_0: the exact <z_l^2> of layer l (1-based) of a bias-free ReLU
    network after t steps of Eq. 5 (z_l is a product of l weight layers, ReLU commutes with a
    positive factor)."""
    return z2_at_start * (1 - lam) ** (2 * layer * np.asarray(steps))


def plot_mean_z2_during_decay(trajectories: Mapping[str, Mapping[str, np.ndarray]], lam: float,
                              predicted: str | None = None, reference: str | None = None
                              ) -> Figure:
    """One panel per network: <z_l^2> over decay steps relative to its start (so every line
    starts at 1 and the one lowest at the end shrank by the largest factor), log scale, one line
    per layer l.

    For the network named `predicted` (bias-free, ReLU) also draw `bias_free_relu_prediction`
    as wide pale lines underneath, labelled without its formula (the formula is notebook 01's
    exercise: a legend that printed it would answer it). For the network named `reference` (with
    biases) draw (1 - lam)^(2t) dashed: layer 1 lies on it, each later layer runs parallel to it
    once its z is its own bias's.
    """
    fig, axes = plt.subplots(1, len(trajectories), figsize=(4.5 * len(trajectories), 3.8),
                             squeeze=False)
    for ax, (title, traj) in zip(axes[0], trajectories.items(), strict=True):
        for l, (name, values) in enumerate(traj.items(), start=1):  # noqa: E741
            steps = np.arange(len(values))
            if title == predicted:
                ax.plot(steps, bias_free_relu_prediction(1.0, l, lam, steps), lw=6,
                        alpha=0.25, color=f"C{l - 1}")
            label = f"layer {l}" + (" (logits)" if name == OUTPUT else "")
            ax.plot(steps, values / values[0], color=f"C{l - 1}", label=label)
        if title == reference:
            steps = np.arange(len(next(iter(traj.values()))))
            ax.plot(steps, (1 - lam) ** (2 * steps), ls="--", color="black", lw=1.2,
                    label="(1 - λ)^(2t)")
            ax.legend(handles=ax.lines[-1:], loc="lower left")
        ax.set(yscale="log", xlabel="weight-decay step t", ylabel="<z²> / <z²> at t = 0",
               title=title)
        ax.grid(alpha=0.3)
    if predicted is not None:
        axes[0][0].plot([], [], lw=6, alpha=0.25, color="gray",
                        label="prediction without biases (derived in the solutions)")
    legend_below(fig, [axes[0][0]], ncol=3)
    return readable(fig)


def decay_exponent(shrink: float, lam: float, steps: int) -> float:
    """The a in shrink = (1 - lam)^(a * steps): how many factors (1 - lam) one decay step puts on
    a layer's <z^2> (2 l for layer l of a bias-free ReLU network)."""
    return float(np.log(shrink) / (steps * np.log1p(-lam)))


#: The likely slips in notebook 01's Exercise 2 (which layer's <z^2> shrinks fastest), as
#: `check_prediction` hints: each names the slip without the answer.
_ONE_MORE = ("each layer's z is made by one more decaying weight layer than the z of the layer "
             "below it (the ReLUs pass the factors through); which layer's z is made by the most?")
FASTEST_LAYER_HINTS = (
    (lambda layer: 1, "layer 1's z is one weight layer deep; each later layer multiplies in one "
     "more decaying weight layer (the ReLUs pass the factors through)"),
    (lambda layer: layer - 1, "one layer short: " + _ONE_MORE),
    (lambda layer: layer - 2, _ONE_MORE),
)
#: The likely slips in notebook 01's Exercise 3 (the exponent a of layer 2's <z^2>,
#: which one decay step multiplies by (1 - lam)^a), as `check_prediction` hints: each names the
#: slip without the answer.
LAYER_2_EXPONENT_HINTS = (
    (lambda m: m / 2, "that is the exponent of z_2 itself (two weight layers, one factor each); "
     "<z_2²> is the mean of z_2's square, so its exponent is twice z_2's"),
    (lambda m: m / 4, "that is one weight layer's exponent on z; z_2 is a product of two weight "
     "layers, and <z_2²> squares z_2"),
    (lambda m: m * 2, "that counts four weight layers, the logits'; z_2 is computed by layers 1 "
     "and 2 only"),
)
