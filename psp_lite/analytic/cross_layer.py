"""Eq. 15, measured on a trained network: how much of the PSP gradient on one layer's weights
comes from that layer's own potentials and how much from every later layer's (Eq. 14)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from psp_lite.potentials import capture, layer_names
from psp_lite.regularizers import psp_penalty


@dataclass
class PullRow:
    """The PSP gradient on one layer's weights that comes from one layer's potentials."""

    source: str  # the layer whose z^2 term is differentiated (R_p in Eq. 14)
    norm: float  # || dR_p / dW ||
    share: float  # norm / sum of the norms over sources


def cross_layer_pull(model: nn.Module, x: torch.Tensor, layer: str = "conv1", lam: float = 1e-3,
                     normalization: str = "reference") -> list[PullRow]:
    """Split the PSP gradient on `layer`'s weights by the potentials it comes from (Eq. 14-15):
    the layer's own z (p = l) and every later layer's z (p > l; earlier layers give zero).

    Per source p, the term of the penalty that holds z_p alone (`psp_penalty`'s per-layer share:
    the full penalty is their sum) is differentiated with respect to `layer.weight` on input x.
    """
    weight = dict(model.named_parameters())[f"{layer}.weight"]
    _, potentials = capture(model, x)
    names = layer_names(model, list(potentials))
    count = len(potentials)
    grads = []
    for name, z in zip(names, potentials.values(), strict=True):
        term = psp_penalty({name: z}, lam, normalization)
        if normalization == "reference":
            term = term / count  # the full penalty is the mean over layers
        (g,) = torch.autograd.grad(term, weight, retain_graph=True, allow_unused=True)
        if g is not None:
            grads.append((name, float(g.norm())))
    total = sum(n for _, n in grads) or 1.0
    return [PullRow(name, n, n / total) for name, n in grads]


def pull_markdown(pulls: dict[str, list[PullRow]]) -> str:
    """`cross_layer_pull` for several target layers as a Markdown table: per target layer, the
    share of its PSP gradient norm coming from each source layer's potentials (Eq. 15)."""
    sources = list(dict.fromkeys(r.source for rows in pulls.values() for r in rows))
    head = ["weights of", *[f"from {s}'s z" for s in sources], "from later layers"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target, rows in pulls.items():
        share = {r.source: r.share for r in rows}
        later = sum(r.share for r in rows if r.source != target)
        cells = [target] + [f"{share[s]:.0%}" if s in share else "—" for s in sources]
        lines.append("| " + " | ".join([*cells, f"**{later:.0%}**"]) + " |")
    return "\n".join(lines) + "\n"
