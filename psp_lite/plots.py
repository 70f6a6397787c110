"""The paper's figures as functions of run histories (Figs. 2a, 2b, 3)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from psp_lite.experiments import Results

COLORS = {"none": "tab:gray", "l2": "tab:blue", "psp": "tab:red"}
LABELS = {"none": "no regularization", "l2": "l2 (weight decay)", "psp": "PSP"}


def _band(ax, epochs, curves: np.ndarray, color: str, label: str, log: bool = False) -> None:
    mean = np.exp(np.log(curves).mean(0)) if log else curves.mean(0)
    ax.plot(epochs, mean, color=color, label=label)
    if len(curves) > 1:
        ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.2, lw=0)


def test_error_curves(results: Results, ax=None) -> Figure:
    """Fig. 2a: test error (%) per epoch, one line per regularizer (band: min-max over seeds)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    for reg, histories in results.items():
        curves = np.array([h.test_error for h in histories])
        _band(ax, histories[0].epochs, curves, COLORS.get(reg, "k"),
              f"{LABELS.get(reg, reg)} (λ={histories[0].config.lam:g})")
    ax.set(xlabel="epoch", ylabel="test error [%]", title="Test error (Fig. 2a)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def z2_curves(results: Results, per_layer: bool = True) -> Figure:
    """Fig. 2b: layer-mean <z^2> on the test set per epoch (log scale), and per layer."""
    layers = list(next(iter(results.values()))[0].z2_layers) if per_layer else []
    fig, axes = plt.subplots(1, 1 + len(layers), figsize=(4.2 * (1 + len(layers)), 3.6),
                             squeeze=False, sharey=False)
    panels = [("layer mean (Fig. 2b)", lambda h: h.z2)]
    panels += [(name, lambda h, n=name: h.z2_layers[n]) for name in layers]
    for ax, (title, get) in zip(axes[0], panels, strict=True):
        for reg, histories in results.items():
            curves = np.array([get(h) for h in histories])
            _band(ax, histories[0].epochs, curves, COLORS.get(reg, "k"), LABELS.get(reg, reg),
                  log=True)
        ax.set(yscale="log", xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("<z²> on the test set")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def weight_histograms(results: Results, regularizers: tuple[str, ...] = ("l2", "psp"),
                      epoch: int | None = None, seed_index: int = 0) -> Figure:
    """Fig. 3: per-layer distribution of the trained weights, one panel per layer."""
    chosen = [r for r in regularizers if r in results]
    snapshots = {r: results[r][seed_index].weights[epoch or max(results[r][seed_index].weights)]
                 for r in chosen}
    layers = [n for n in next(iter(snapshots.values())) if n.endswith("weight")]
    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.2), squeeze=False)
    for ax, name in zip(axes[0], layers, strict=True):
        values = np.concatenate([snapshots[r][name] for r in chosen])
        lo, hi = np.percentile(values, [0.1, 99.9])
        bins = np.linspace(lo, hi, 80)
        for r in chosen:
            ax.hist(snapshots[r][name], bins=bins, density=True, histtype="step", lw=1.5,
                    color=COLORS.get(r, "k"), label=LABELS.get(r, r))
        ax.set(title=name.removesuffix(".weight"), xlabel="weight", yscale="log")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend()
    fig.suptitle("Trained weights per layer (Fig. 3)")
    fig.tight_layout()
    return fig
