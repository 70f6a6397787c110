"""Activation slopes: where phi'(z) is largest, and how weight decay moves a trained layer's z
distribution there (notebook 01's slider)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from psp_lite.analytic import activation_derivative
from psp_lite.potentials import capture
from psp_lite.teaching.toy import make_activation, mlp, single_thread, toy_classification, train_sgd


def activation_and_slope(name: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """(phi(z), phi'(z)) for an activation by name; phi' from `psp_lite.analytic`."""
    module = make_activation(name)
    with torch.no_grad():
        return module(z), activation_derivative(module, z)


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
    `lam` (filled), with the `baseline` weight decay's histogram as an outline."""
    acts = list(dict.fromkeys(a for a, _ in dists))
    fig = fig or plt.figure(figsize=(4.6 * len(acts), 3.8))
    fig.clear()
    axes = fig.subplots(1, len(acts), squeeze=False)[0]
    grid = torch.linspace(-4, 4, 401)
    bins = np.linspace(-4, 4, 61)
    for ax, act in zip(axes, acts, strict=True):
        phi, dphi = activation_and_slope(act, grid)
        hist_ax = ax.twinx()
        peaks = []
        if baseline is not None and (act, baseline) in dists:
            counts, *_ = hist_ax.hist(np.clip(dists[(act, baseline)].z, -4, 4), bins=bins,
                                      density=True, histtype="step", color="gray", lw=1.5,
                                      label=f"z, λ = {baseline:g}")
            peaks.append(counts.max())
        d = dists[(act, lam)]
        counts, *_ = hist_ax.hist(np.clip(d.z, -4, 4), bins=bins, density=True,
                                  color="tab:orange", alpha=0.45, label=f"z, λ = {lam:.1e}")
        peaks.append(counts.max())
        hist_ax.set_ylim(0, 1.25 * max(peaks))
        hist_ax.set_yticks([])
        ax.plot(grid, phi, color="tab:blue", lw=2, label="φ(z)")
        ax.plot(grid, dphi, color="tab:green", lw=2, ls="--", label="φ'(z)")
        ax.set_zorder(hist_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set(xlabel="z", xlim=(-4, 4), ylim=(-1.1, 1.1) if act == "tanh" else (-0.1, 1.1),
               title=f"{act}: <φ'(z)> = {d.mean_slope:.2f}, test acc {d.test_accuracy:.0%}")
        ax.title.set_fontsize(10)
        ax.axvline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    handles = axes[0].get_legend_handles_labels()
    twin = fig.axes[-1].get_legend_handles_labels()
    axes[0].legend(handles[0] + twin[0], handles[1] + twin[1], fontsize=8, loc="upper left")
    fig.suptitle(f"histograms: the first hidden layer's z after training with weight decay "
                 f"λ = {lam:.1e} (gray outline: λ = {baseline:g})", fontsize=11)
    fig.tight_layout()
    return fig


def lambda_explorer(dists: Mapping[tuple[str, float], ZDistribution]):
    """An ipywidgets log-slider over the precomputed weight decays, redrawing
    `plot_z_over_activations` (snaps to the nearest precomputed lambda)."""
    import ipywidgets as widgets
    from IPython.display import display

    lambdas = sorted({lam for _, lam in dists if lam > 0})
    exps = np.log10(lambdas)
    step = float(np.min(np.diff(exps))) if len(exps) > 1 else 1.0
    slider = widgets.FloatLogSlider(value=lambdas[len(lambdas) // 2], base=10, min=exps[0],
                                    max=exps[-1], step=step, description="λ (l2)",
                                    readout_format=".1e", continuous_update=True)
    out = widgets.Output()

    def redraw(change=None) -> None:
        lam = min(lambdas, key=lambda v: abs(math.log10(v) - math.log10(slider.value)))
        with out:
            out.clear_output(wait=True)
            fig = plot_z_over_activations(dists, lam)
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
