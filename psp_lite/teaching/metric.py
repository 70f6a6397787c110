"""PSP as weight decay in the metric of the data.

For one Linear layer z = W y + b and a batch of inputs y with second moment C = <y y^T> and mean
mu = <y>, the batch mean of Eq. 7's 1/2 |z|^2 is

    1/2 tr(W C W^T) + b^T W mu + 1/2 |b|^2,

which is the l2 penalty of Eq. 3 for that layer exactly when C = I and mu = 0. Its gradient
W C + b mu^T is weight decay's W only for white, centred inputs (Eq. 12's special case).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def input_moments(y: Tensor) -> tuple[Tensor, Tensor]:
    """(C, mu): the batch second moment y^T y / B (not centred) and the batch mean of y (B, J)."""
    return y.T @ y / y.shape[0], y.mean(0)


def layer_psp_penalty_by_trace(weight: Tensor, bias: Tensor | None, y: Tensor) -> Tensor:
    """1/2 tr(W C W^T) + b^T W mu + 1/2 |b|^2: one Linear layer's PSP penalty (Eq. 7 with
    lam = 1, summed over neurons, averaged over the batch), written with the input's moments."""
    second, mean = input_moments(y)
    value = 0.5 * torch.trace(weight @ second @ weight.T)
    if bias is not None:
        value = value + bias @ weight @ mean + 0.5 * bias.square().sum()
    return value


def layer_psp_penalty_direct(weight: Tensor, bias: Tensor | None, y: Tensor) -> Tensor:
    """The same penalty straight from the potentials: mean over the batch of 1/2 sum_k z_k^2."""
    z = y @ weight.T + (0 if bias is None else bias)
    return 0.5 * z.square().sum() / y.shape[0]


def layer_l2_penalty(weight: Tensor, bias: Tensor | None) -> Tensor:
    """Eq. 3 for one layer: 1/2 (|W|^2 + |b|^2)."""
    return 0.5 * (weight.square().sum() + (0 if bias is None else bias.square().sum()))


def whiten(y: Tensor) -> Tensor:
    """y transformed so that its batch second moment y^T y / B is exactly the identity."""
    chol = torch.linalg.cholesky(y.T @ y / y.shape[0])
    return torch.linalg.solve_triangular(chol, y.T, upper=False).T


def centre_and_whiten(y: Tensor) -> Tensor:
    """y with batch mean exactly 0 and second moment exactly I (C = I, mu = 0)."""
    return whiten(y - y.mean(0))


def local_psp_gradient_vs_weight_decay(weight: Tensor, bias: Tensor | None, y: Tensor
                                       ) -> tuple[float, float, float]:
    """How far one Linear layer's own PSP gradient (Eq. 9, batch mean) is from weight decay's w.

    g = mean_b z_b y_b^T = W C + b mu^T. Returns (||g - W|| / ||W||, cosine(g, W),
    <g, W> / <W, W>): the distance, the direction, and the effective weight-decay factor.
    """
    z = y @ weight.T + (0 if bias is None else bias)
    g = z.T @ y / y.shape[0]
    rel = ((g - weight).norm() / weight.norm()).item()
    cos = F.cosine_similarity(g.flatten(), weight.flatten(), dim=0).item()
    scale = ((g * weight).sum() / weight.square().sum()).item()
    return rel, cos, scale
