"""The two normalizations of Eq. 7 on a batch ("paper": literal sum over neurons, batch mean;
"reference": the authors' mean per layer, then over layers): which layer each one penalizes, and
how the penalty compares with the cross-entropy. Used in notebook 04, where lambda's meaning
matters."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from psp_lite.analytic import autograd_gradient, autograd_psp_gradients
from psp_lite.potentials import capture
from psp_lite.regularizers import NORMALIZATIONS, psp_gradient_scale, psp_penalty
from psp_lite.report.style import legend_below, readable


@dataclass(frozen=True)
class LayerBalance:
    """One layer's weight in the PSP penalty under the two normalizations."""

    name: str
    potentials_per_example: int
    mean_z2: float
    paper: float       # this layer's part of the penalty, "paper" (Eq. 7 literal)
    reference: float   # this layer's part of the penalty, "reference" (per-layer mean)
    paper_scale: float      # c_p in dP/dz = c_p z, "paper"
    reference_scale: float  # c_p in dP/dz = c_p z, "reference"


@torch.no_grad()
def penalty_share_per_layer(model: nn.Module, x: Tensor, lam: float) -> list[LayerBalance]:
    """Per layer: potentials per example, <z^2>, its share of the penalty and its dP/dz factor
    under the literal Eq. 7 ("paper") and the authors' per-layer mean ("reference")."""
    zs = capture(model, x)[1]
    n = len(zs)
    names = getattr(model, "potential_layers", None)
    names = names if names is not None and len(names) == n else list(zs)
    rows = []
    for name, z in zip(names, zs.values(), strict=True):
        rows.append(LayerBalance(
            name, z[0].numel(), z.square().mean().item(),
            psp_penalty([z], lam, "paper").item(),
            psp_penalty([z], lam, "reference").item() / n,
            psp_gradient_scale(z, n, lam, "paper"), psp_gradient_scale(z, n, lam, "reference")))
    return rows


def penalty_and_gradients_vs_cross_entropy(model: nn.Module, x: Tensor, labels: Tensor,
                                           lam: float
                                           ) -> OrderedDict[str, OrderedDict[str, float]]:
    """PSP against cross-entropy for both normalizations: the values, and per parameter tensor
    the ratio ||dP/dtheta|| / ||dCE/dtheta||, all by autograd."""
    ce_grads = autograd_gradient(model, x, lambda out, _: F.cross_entropy(out, labels))
    with torch.no_grad():
        out, zs = capture(model, x)
        ce = F.cross_entropy(out, labels).item()
    result: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
    for norm in NORMALIZATIONS:
        grads = autograd_psp_gradients(model, x, lam, norm)
        row = OrderedDict(penalty=psp_penalty(zs, lam, norm).item(), cross_entropy=ce)
        row.update((k, (grads[k].norm() / ce_grads[k].norm()).item()) for k in grads)
        result[norm] = row
    return result


def shares(rows: Sequence[LayerBalance], normalization: str) -> list[float]:
    """Each layer's fraction of the whole penalty under one normalization."""
    values = [r.paper if normalization == "paper" else r.reference for r in rows]
    total = sum(values)
    return [v / total for v in values]


def plot_penalty_shares(cases: dict[str, Sequence[LayerBalance]]) -> Figure:
    """One panel per normalization: per case (e.g. untrained on noise, trained), a stacked bar of
    each layer's share of the penalty."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    names = [r.name for r in next(iter(cases.values()))]
    for ax, norm in zip(axes, NORMALIZATIONS, strict=True):
        bottom = np.zeros(len(cases))
        for i, name in enumerate(names):
            values = np.array([shares(rows, norm)[i] for rows in cases.values()])
            ax.barh(list(cases), values, left=bottom, label=name, color=f"C{i}")
            bottom += values
        ax.set(xlim=(0, 1), xlabel="share of the penalty",
               title=f"{norm!r}" + (" (Eq. 7 literal)" if norm == "paper" else " (layer mean)"))
    axes[0].invert_yaxis()  # shared: once inverts both
    legend_below(fig, [axes[0]])
    return readable(fig)


def shares_table(cases: dict[str, Sequence[LayerBalance]]) -> str:
    """Text table: per case and normalization, each layer's share of the penalty."""
    names = [r.name for r in next(iter(cases.values()))]
    lines = [f"{'case':<34} {'normalization':<10} " + " ".join(f"{n:>7}" for n in names)]
    for case, rows in cases.items():
        for norm in NORMALIZATIONS:
            cells = " ".join(f"{v:>7.1%}" for v in shares(rows, norm))
            lines.append(f"{case:<34} {norm:<10} {cells}")
    return "\n".join(lines)
