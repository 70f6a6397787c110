"""The series' first look: one small network trained three times (no regularizer, l2 weight
decay, PSP), and what each does to the weights and to the potentials z of every layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from psp_lite.paper import PAPER_LAMBDA
from psp_lite.potentials import capture, mean_square
from psp_lite.report.style import legend_below, readable
from psp_lite.teaching.toy import linear_layers, mlp, toy_classification, train_sgd

#: The paper's lambda for LeNet5 on MNIST (Sec. 4.1): PSP, and l2 weight decay.
PAPER_PSP_LAMBDA, PAPER_L2_LAMBDA = PAPER_LAMBDA["psp"], PAPER_LAMBDA["l2"]
#: The likely slip in notebook 01's Exercise 1 (which run has layer 2's smallest weights), as a
#: `check_prediction` hint: reading PSP's far smaller <z^2> as far smaller weights.
SMALLEST_WEIGHTS_HINTS = (
    (lambda run: "psp", "PSP has by far the smallest <z^2> in layer 2, but z can be small "
     "because the weights are small or because of where they point: compare both panels"),
    (lambda run: "none", "no penalty pulls the unregularized run's weights toward 0, and both "
     "others are pulled: one on every weight, one only through the z they make"),
)
#: The likely slip in notebook 01's Exercise 4 (which layer's weights a thirty times weaker PSP
#: shrinks most), as a `check_prediction` hint: section 1's ranking, where the reach-back rules.
WEAK_PSP_HINTS = (
    (lambda layer: 1, "layer 1 is where section 1's strong PSP shrinks the weights most, pulled by "
     "every later layer; at a weak lambda compare each layer's own pull, 2 lambda z_l / (N B K_l): "
     "which layer has the fewest neurons and the largest z?"),
)


@dataclass(frozen=True)
class FirstLookSettings:
    """The settings of notebook 01's first experiment (seconds on one CPU core)."""

    widths: tuple[int, ...] = (32, 64, 64, 4)
    activation: str = "relu"
    n_train: int = 1000
    n_test: int = 2000
    epochs: int = 20
    lr: float = 0.1
    batch_size: int = 50
    l2_lambda: float = 1e-2
    psp_lambda: float = 1.0      # layer-mean ("reference") normalization
    seed: int = 0


@dataclass(frozen=True)
class TrainedLayers:
    """Per layer l = 1..N of one trained network: weight RMS, <z_l^2> on test data, accuracy."""

    regularizer: str
    lam: float
    weight_rms: list[float]
    mean_z2: list[float]
    test_accuracy: float


def train_none_l2_psp(settings: FirstLookSettings = FirstLookSettings()
                      ) -> dict[str, TrainedLayers]:
    """Train the same seeded MLP with no regularizer, with l2 and with PSP; measure each layer."""
    s = settings
    x, y = toy_classification(s.n_train, s.widths[0], s.widths[-1], seed=s.seed)
    xt, yt = toy_classification(s.n_test, s.widths[0], s.widths[-1], seed=s.seed + 1)
    out = {}
    for regularizer, lam in (("none", 0.0), ("l2", s.l2_lambda), ("psp", s.psp_lambda)):
        model = train_sgd(mlp(s.widths, s.activation, seed=s.seed), x, y, regularizer=regularizer,
                          lam=lam, epochs=s.epochs, lr=s.lr, batch_size=s.batch_size, seed=s.seed)
        with torch.no_grad():
            logits, zs = capture(model, xt)
        rms = [layer.weight.detach().square().mean().sqrt().item()
               for layer in linear_layers(model)]
        acc = (logits.argmax(1) == yt).float().mean().item()
        out[regularizer] = TrainedLayers(regularizer, lam, rms, list(mean_square(zs).values()),
                                         acc)
    return out


def ratios_to_unregularized(runs: dict[str, TrainedLayers], regularizer: str
                            ) -> tuple[list[float], list[float]]:
    """(weight RMS ratio, <z^2> ratio) per layer: `regularizer`'s run over the unregularized."""
    base, run = runs["none"], runs[regularizer]
    return ([a / b for a, b in zip(run.weight_rms, base.weight_rms, strict=True)],
            [a / b for a, b in zip(run.mean_z2, base.mean_z2, strict=True)])


def smallest_weights(runs: dict[str, TrainedLayers], layer: int) -> str:
    """The run ('none', 'l2' or 'psp') whose weights in `layer` (from 1) have the smallest RMS."""
    return min(runs.values(), key=lambda run: run.weight_rms[layer - 1]).regularizer


def weights_line(runs: dict[str, TrainedLayers], layer: int) -> str:
    """One line: each run's weight RMS in `layer` (from 1), the numbers behind a bar chart."""
    parts = ", ".join(f"{run.regularizer} {run.weight_rms[layer - 1]:.3f}"
                      for run in runs.values())
    return f"layer {layer}'s weight RMS: {parts}"


def plot_none_l2_psp(runs: dict[str, TrainedLayers]) -> Figure:
    """Two panels, one bar group per layer: weight RMS, and <z^2> (log scale) per regularizer;
    the legend gives each run's test accuracy."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
    n = len(runs["none"].weight_rms)
    pos = np.arange(n)
    labels = [f"layer {i}" + (" (logits)" if i == n else "") for i in range(1, n + 1)]
    for i, run in enumerate(runs.values()):
        label = (run.regularizer if run.regularizer == "none" else
                 f"{run.regularizer}, λ = {run.lam:g}") + f" (test acc. {run.test_accuracy:.1%})"
        a.bar(pos + (i - 1) * 0.27, run.weight_rms, 0.27, label=label)
        b.bar(pos + (i - 1) * 0.27, run.mean_z2, 0.27, label=label)
    a.set(ylabel="RMS of the layer's weights", title="weights")
    b.set(ylabel="<z²> on test inputs", yscale="log", title="post-synaptic potentials z")
    for ax in (a, b):
        ax.set_xticks(pos, labels)
        ax.grid(alpha=0.3, axis="y")
    legend_below(fig, [a])
    return readable(fig)


def lambda_in_paper_units(settings: FirstLookSettings = FirstLookSettings()) -> str:
    """Where the settings' two lambda sit: multiples of the paper's values, PSP's lambda in the
    literal Eq. 7 normalization (one lambda per layer), and l2's shrink factor per SGD step."""
    s = settings
    widths = s.widths[1:]
    per_layer = ", ".join(f"{2 * s.psp_lambda / (len(widths) * n):.3g}" for n in widths)
    steps = s.epochs * -(-s.n_train // s.batch_size)
    return (f"PSP λ = {s.psp_lambda:g} on the layer mean ('reference') = "
            f"{s.psp_lambda / PAPER_PSP_LAMBDA:g} × the paper's {PAPER_PSP_LAMBDA:g}; "
            f"in Eq. 7's literal units ('paper') the same pull is λ = {per_layer} "
            f"for layers 1..{len(widths)}\n"
            f"l2 λ = {s.l2_lambda:g} = {s.l2_lambda / PAPER_L2_LAMBDA:g} × the paper's "
            f"{PAPER_L2_LAMBDA:g}: each SGD step multiplies every weight by "
            f"1 - lr·λ = {1 - s.lr * s.l2_lambda:g}, {steps} steps in all")


def describe_ratios(runs: dict[str, TrainedLayers], layers: Sequence[int] | None = None) -> str:
    """One line per regularizer: per layer, weight RMS and <z^2> as a fraction of 'none'."""
    lines = []
    for reg in ("l2", "psp"):
        w, z = ratios_to_unregularized(runs, reg)
        idx = range(len(w)) if layers is None else [i - 1 for i in layers]
        parts = ", ".join(f"layer {i + 1}: weights x{w[i]:.2f}, <z²> x{z[i]:.2f}" for i in idx)
        lines.append(f"{reg:>4} vs none: {parts}")
    accuracy = ", ".join(f"{r.regularizer} {r.test_accuracy:.1%}" for r in runs.values())
    lines.append(f"test accuracy: {accuracy}")
    return "\n".join(lines)
