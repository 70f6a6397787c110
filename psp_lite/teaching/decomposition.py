"""Gradient decomposition: hand-derived PSP gradients checked against autograd in one line per
check, and Eq. 14's split of each parameter's gradient by the layer whose penalty produced it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from torch import Tensor

from psp_lite.analytic import GradientCheckRow, LayerRecord
from psp_lite.report.style import legend_below, readable


def check_line(label: str, rows: Sequence[GradientCheckRow]) -> str:
    """One line for a passed gradient check: 'label: matches (max rel. error 2e-16, n tensors)'.

    The rows come from `analytic.compare_gradients` / `check_psp_gradients`, which raise on a
    mismatch, so a line is only printed for a check that passed.
    """
    worst = max(r.max_rel for r in rows)
    return (f"{label}: matches (max rel. error {worst:.0e}, "
            f"{len(rows)} tensor{'s' if len(rows) != 1 else ''})")


def plot_check_rows(tables: Mapping[str, Sequence[GradientCheckRow]]) -> Figure:
    """Relative error per parameter tensor (log scale), one bar group per table (e.g. dtype)."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    names = [r.name for r in next(iter(tables.values()))]
    pos = np.arange(len(names))
    width = 0.8 / len(tables)
    for i, (label, rows) in enumerate(tables.items()):
        vals = [max(r.max_rel, 1e-18) for r in rows]
        ax.bar(pos + (i - (len(tables) - 1) / 2) * width, vals, width, label=label)
    for eps, dt in ((np.finfo(np.float64).eps, "float64"), (np.finfo(np.float32).eps, "float32")):
        ax.axhline(eps, color="k", ls=":", lw=1)
        ax.text(1.01, eps, f"{dt}\neps", va="center", ha="left",
                transform=ax.get_yaxis_transform())
    ax.set(xticks=pos, yscale="log", ylabel="max|ours - autograd| / max|autograd|",
           title="hand-derived PSP gradient vs autograd")
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.grid(alpha=0.3, axis="y")
    legend_below(fig, [ax])
    return readable(fig)


def gradient_parts_by_source_layer(contributions: Mapping[str, Mapping[str, Tensor]], param: str
                       ) -> OrderedDict[str, tuple[float, float]]:
    """For one parameter: source layer p -> (||dR_p/dtheta||, cosine with the total)."""
    total = sum(c[param] for c in contributions.values())
    out = OrderedDict()
    for src, c in contributions.items():
        g = c[param]
        norm = g.norm().item()
        cos = F.cosine_similarity(g.flatten(), total.flatten(), dim=0).item() if norm else 0.0
        out[src] = (norm, cos)
    out["total"] = (total.norm().item(), 1.0)
    return out


def plot_contribution_matrix(contributions: Mapping[str, Mapping[str, Tensor]],
                             records: Sequence[LayerRecord]) -> Figure:
    """Eq. 14 as a picture: row p (penalty at layer p), column l (weights of layer l), colour
    ||dR_p/dw_l|| on a log scale; exact zeros (p < l) are drawn white."""
    n = len(records)
    m = np.zeros((n, n))
    for p, src in enumerate(contributions):
        for l, r in enumerate(records):  # noqa: E741
            m[p, l] = contributions[src][f"{r.name}.weight"].norm().item()
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.5, 1.0 * n + 1.2))
    shown = np.ma.masked_where(m == 0, m)
    image = ax.imshow(np.ma.log10(shown), cmap="viridis")
    for p in range(n):
        for l in range(n):  # noqa: E741
            text = "0" if m[p, l] == 0 else f"{m[p, l]:.1e}"
            ax.text(l, p, text, ha="center", va="center", fontsize=10,
                    color="k" if m[p, l] == 0 else _ink_on(image, np.log10(m[p, l])))
    ticks = range(n)
    ax.set_xticks(ticks, [f"l={i + 1}" for i in ticks])
    ax.set_yticks(ticks, [f"p={p + 1}" for p in ticks])
    ax.set(xlabel="weights of layer l", ylabel="penalty at layer p",
           title="‖∂R_p/∂w_l‖  (Eq. 14)")
    fig.colorbar(image, ax=ax, label="log10 norm")
    return readable(fig)


def _ink_on(image, value: float) -> str:
    """Black on a light cell of `image`'s colour map, white on a dark one."""
    r, g, b, _ = image.cmap(image.norm(value))
    return "k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w"


def plot_contributions(contributions: Mapping[str, Mapping[str, Tensor]],
                       params: Sequence[str]) -> Figure:
    """One panel per parameter: the norm of each source layer's part of its PSP gradient; under
    each bar its cosine with the total ("cos")."""
    fig, axes = plt.subplots(len(params), 1, figsize=(9, 1.9 * len(params) + 0.8),
                             squeeze=False)
    for ax, param in zip(axes[:, 0], params, strict=True):
        formatter = ScalarFormatter(useMathText=True)
        formatter.set_powerlimits((0, 0))   # every panel as "x 10^k", never plain 0.00016
        ax.xaxis.set_major_formatter(formatter)
        norms = gradient_parts_by_source_layer(contributions, param)
        labels = list(norms)
        vals = [norms[k][0] for k in labels]
        colors = ["tab:gray" if k == "total" else "tab:blue" for k in labels]
        ax.barh(range(len(labels)), vals, color=colors)
        ticks = [k if k == "total" or vals[i] == 0 else f"{k} (cos {norms[k][1]:+.2f})"
                 for i, k in enumerate(labels)]
        ax.set_yticks(range(len(labels)), ticks)
        ax.invert_yaxis()
        ax.set_title(f"{param}: each layer p's part of its PSP gradient", loc="left")
        ax.grid(alpha=0.3, axis="x")
    axes[-1, 0].set_xlabel("norm of the part, ‖∂R_p/∂θ‖ (each panel its own scale)")
    return readable(fig)
