"""Activation slopes: where phi'(z) is largest, and how weight decay moves a trained layer's z
distribution there (notebook 01's slider)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from psp_lite.analytic import activation_derivative
from psp_lite.potentials import capture
from psp_lite.report.style import legend_below, readable
from psp_lite.teaching.toy import make_activation, mlp, single_thread, toy_classification, train_sgd


def activation_and_slope(name: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """(phi(z), phi'(z)) for an activation by name; phi' from `psp_lite.analytic`."""
    module = make_activation(name)
    with torch.no_grad():
        return module(z), activation_derivative(module, z)


def largest_slopes(names: Sequence[str] = ("sigmoid", "tanh", "relu")) -> str:
    """Per activation, one line: its largest slope on a fine grid over [-6, 6], where it is,
    and its slope at z = 3. A piecewise-constant slope (ReLU's) has no peak: its line gives the
    slope on each side of z = 0 instead."""
    grid = torch.linspace(-6, 6, 12001, dtype=torch.float64)
    lines = []
    for name in names:
        slope = activation_and_slope(name, grid)[1]
        left, right = slope[grid < 0], slope[grid > 0]
        if (left == left[0]).all() and (right == right[0]).all():
            lines.append(f"{name:>8}: slope {left[0].item():g} for z < 0, {right[0].item():g} "
                         "for z > 0: it switches at z = 0")
            continue
        at = round(grid[slope.argmax()].item(), 4) + 0.0      # + 0.0 turns -0.0 into 0.0
        lines.append(f"{name:>8}: largest slope {slope.max().item():.4f} at z = {at:+.4f}, "
                     f"slope at z = 3: {slope[grid.sub(3).abs().argmin()].item():.4f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ZDistribution:
    """The first hidden layer's z on held-out data after training with one weight decay."""

    activation: str
    lam: float
    z: np.ndarray
    test_accuracy: float

    @property
    def mean_slope(self) -> float:
        """<phi'(z)>: how much of a gradient this layer passes on, on average."""
        return activation_and_slope(self.activation, torch.from_numpy(self.z))[1].mean().item()


def first_layer_z_after_training(activations: Sequence[str], lambdas: Sequence[float], *,
                                 n_train: int, epochs: int,
                                 widths: Sequence[int] = (32, 128, 128, 4), seed: int = 0
                                 ) -> dict[tuple[str, float], ZDistribution]:
    """Train one small MLP per (activation, weight decay) on `toy_classification` and keep its
    first hidden layer's z on 2000 held-out points; all precomputed so a slider can be instant."""
    x, y = toy_classification(n_train, widths[0], widths[-1], seed=seed)
    xt, yt = toy_classification(2000, widths[0], widths[-1], seed=seed + 1)
    out = {}
    with single_thread():
        for act, lam in itertools.product(activations, lambdas):
            model = train_sgd(mlp(widths, act, seed=seed), x, y, regularizer="l2", lam=lam,
                              epochs=epochs, seed=seed)
            with torch.no_grad():
                logits, pots = capture(model, xt)
            z = next(iter(pots.values())).flatten().numpy()
            acc = (logits.argmax(1) == yt).float().mean().item()
            out[(act, lam)] = ZDistribution(act, lam, z, acc)
    return out


def plot_z_over_activations(dists: Mapping[tuple[str, float], ZDistribution], lam: float,
                            baseline: float | None = 0.0, fig: Figure | None = None) -> Figure:
    """One panel per activation: phi, phi' and the trained layer's z histogram at weight decay
    `lam` (filled), with the `baseline` weight decay's histogram as an outline. Each histogram
    is scaled to its own peak, so a wide one is not drawn flat beside a narrow one, and drawn
    over the lines (translucent), so the z = 0 line and phi' never hide its tallest bar."""
    acts = list(dict.fromkeys(a for a, _ in dists))
    fig = fig or plt.figure(figsize=(3.0 * len(acts), 3.9))
    fig.clear()
    axes = fig.subplots(1, len(acts), squeeze=False)[0]
    grid = torch.linspace(-4, 4, 401)
    bins = np.linspace(-4, 4, 61)
    twins = []
    for ax, act in zip(axes, acts, strict=True):
        phi, dphi = activation_and_slope(act, grid)
        hist_ax = ax.twinx()
        twins.append(hist_ax)
        if baseline is not None and (act, baseline) in dists:
            counts = np.histogram(np.clip(dists[(act, baseline)].z, -4, 4), bins=bins)[0]
            hist_ax.stairs(counts / counts.max(), bins, color="gray", lw=1.5,
                           label=f"z, λ = {baseline:g}")
        d = dists[(act, lam)]
        counts = np.histogram(np.clip(d.z, -4, 4), bins=bins)[0]
        hist_ax.stairs(counts / counts.max(), bins, fill=True, color="tab:orange", alpha=0.45,
                       label=f"z, λ = {lam:.1e}")
        hist_ax.set_yticks([])
        ax.plot(grid, phi, color="tab:blue", lw=2, label="φ(z)")
        ax.plot(grid, dphi, color="tab:green", lw=2, ls="--", label="φ'(z)")
        # the histograms' axes (a twin, transparent) stay on top: no line hides a bar
        ax.set(xlabel="z", xlim=(-4, 4), ylim=(-1.1, 1.1) if act == "tanh" else (-0.1, 1.1),
               title=f"{act}\n<φ'(z)> = {d.mean_slope:.2f}, test acc {d.test_accuracy:.0%}")
        hist_ax.set_ylim(ax.get_ylim())  # a peak of 1 sits at the left axis' 1
        ax.axvline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    legend_below(fig, [axes[0], twins[0]])
    fig.suptitle("first hidden layer's z after training with weight decay "
                 "(each histogram scaled to its peak)")
    return readable(fig)


def lambda_explorer(dists: Mapping[tuple[str, float], ZDistribution]):
    """An ipywidgets slider over the precomputed weight decays, redrawing
    `plot_z_over_activations`. Its steps are exactly the trained lambdas (a `SelectionSlider`
    in log order, labelled as the plot's title labels them), so the readout and the picture
    always name the same run."""
    import ipywidgets as widgets
    from IPython.display import display

    lambdas = sorted({lam for _, lam in dists if lam > 0})
    slider = widgets.SelectionSlider(options=[(f"{lam:.1e}", lam) for lam in lambdas],
                                     value=lambdas[len(lambdas) // 2], description="λ (l2)",
                                     continuous_update=True)
    out = widgets.Output()

    def redraw(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = plot_z_over_activations(dists, slider.value)
            plt.show()
            plt.close(fig)

    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, out])
    display(box)
    redraw()
    return box


def slope_table(dists: Mapping[tuple[str, float], ZDistribution]) -> str:
    """Text table: std(z), <phi'(z)> and test accuracy per activation and weight decay."""
    lines = [f"{'activation':<10} {'λ':>8} {'std z':>7} {'<φ′(z)>':>8} {'test acc':>9}"]
    for (act, lam), d in dists.items():
        lines.append(f"{act:<10} {lam:>8.1e} {d.z.std():>7.3f} {d.mean_slope:>8.3f} "
                     f"{d.test_accuracy:>9.1%}")
    return "\n".join(lines)
