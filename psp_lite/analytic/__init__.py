"""Hand-derived PSP gradients (Eqs. 9-16), computed without autograd, and a check against autograd.

The derivation works on a chain of layers: affine maps (``nn.Linear``, ``nn.Conv2d``), each
followed by an elementwise activation (tanh, sigmoid, ReLU, leaky ReLU) and optionally by
``nn.MaxPool2d`` or a flattening; the last affine layer gives the logits, which count as a layer of
potentials. This module is the entry point and gathers the pieces, each in its own module:

* `layer_walk`: the chain read off the model (`layer_stack`: an ``nn.Sequential`` as
  written, any other model traced through its forward pass), the supported modules, phi'.
* `by_hand`: `forward_record` (y_{l-1} and z_l per layer, Eq. 2), the backward
  steps (Eq. 16), `psp_contributions` (Eq. 14) and `psp_gradients` (Eq. 15).
* `gradient_check`: autograd's gradients, `compare_gradients` and the table of rows.

Here: Eq. 12 split into its self and cross terms (weight decay as its special case), the whole
check `check_psp_gradients`, and `finite_difference`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from psp_lite.analytic.by_hand import (
    LayerRecord,
    affine_forward,
    analytic_psp_gradients,
    back_through,
    back_to_input,
    forward_record,
    input_patches,
    local_gradients,
    penalty_dz,
    psp_contributions,
    psp_gradients,
    psp_value,
)
from psp_lite.analytic.gradient_check import (
    TABLE_HEADER,
    GradientCheckRow,
    autograd_gradient,
    autograd_psp_gradients,
    compare_all,
    compare_gradients,
    default_rtol,
    format_table,
)
from psp_lite.analytic.layer_walk import (
    ACTIVATION_DERIVATIVES,
    AFFINE,
    activation_derivative,
    layer_stack,
    traced_stack,
)
from psp_lite.regularizers import check_lambda

__all__ = [
    "ACTIVATION_DERIVATIVES", "AFFINE", "TABLE_HEADER", "GradientCheckRow", "LayerRecord",
    "activation_derivative", "affine_forward", "analytic_psp_gradients", "autograd_gradient",
    "autograd_psp_gradients", "back_through", "back_to_input", "check_psp_gradients",
    "compare_all", "compare_gradients", "default_rtol", "eq12_terms", "finite_difference",
    "format_table", "forward_record", "input_patches", "layer_stack", "local_gradients",
    "penalty_dz", "psp_contributions", "psp_gradients", "psp_value", "traced_stack",
    "weight_decay_gradient",
]


def eq12_terms(weight: Tensor, bias: Tensor | None, y_prev: Tensor) -> tuple[Tensor, Tensor]:
    """The two parts of Eq. 12 for a Linear layer, per example: (self term, cross term).

    self[b, k, j]  = w_kj * (dz_k/dw_kj)^2 = w_kj * y_j^2
    cross[b, k, j] = dz_k/dw_kj * (b_k + sum_{i != j} w_ki y_i)
    Their sum is z_k * y_j, the gradient of R_{l,k} = z_k^2 / 2 (Eq. 9). With dz/dw = 1
    (y = 1) the self term is w itself: the weight-decay gradient.
    """
    dz_dw = y_prev[:, None, :]                                    # (B, 1, J) = Eq. 16
    self_term = weight[None] * dz_dw.square()
    z = y_prev @ weight.T + (0 if bias is None else bias)         # (B, K)
    others = z[:, :, None] - weight[None] * dz_dw                 # b + sum_{i != j} w_i y_i
    return self_term, dz_dw * others


def weight_decay_gradient(weight: Tensor, lam: float) -> Tensor:
    """lam * (self term of Eq. 12 with dz/dw = 1, cross term dropped) = lam * w, the l2
    gradient (Eqs. 3-5)."""
    self_term, _ = eq12_terms(weight, None, torch.ones(1, weight.shape[1], dtype=weight.dtype,
                                                       device=weight.device))
    return check_lambda(lam) * self_term[0]


def check_psp_gradients(model: nn.Module, x: Tensor, lam: float, normalization: str = "paper",
                        *, rtol: float | None = None) -> list[GradientCheckRow]:
    """Hand-derived total gradient (Eq. 15) vs autograd, one row per parameter tensor."""
    return compare_all(analytic_psp_gradients(model, x, lam, normalization),
                       autograd_psp_gradients(model, x, lam, normalization), rtol=rtol)


def finite_difference(model: nn.Module, x: Tensor, lam: float, name: str, index: tuple[int, ...],
                      normalization: str = "paper", h: float = 1e-6) -> float:
    """Central difference (P(theta + h) - P(theta - h)) / 2h for one parameter entry."""
    param = dict(model.named_parameters())[name]
    values = []
    with torch.no_grad():
        original = param[index].item()
        for step in (h, -h):
            param[index] = original + step
            values.append(psp_value(forward_record(model, x)[1], lam, normalization).item())
        param[index] = original
    return (values[0] - values[1]) / (2 * h)
