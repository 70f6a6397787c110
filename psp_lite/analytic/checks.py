"""Eq. 12 split into its self and cross terms (weight decay as its special case), the whole
check of the hand-derived gradients against autograd, and a finite-difference check."""


from __future__ import annotations

import torch
from torch import Tensor, nn

from psp_lite.analytic.by_hand import (
    analytic_psp_gradients,
    forward_record,
    psp_value,
)
from psp_lite.analytic.gradient_check import (
    GradientCheckRow,
    autograd_psp_gradients,
    compare_all,
)
from psp_lite.regularizers import check_lambda


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
    """Central difference (P(theta + h) - P(theta - h)) / 2h for one parameter entry.

    Float64 only: the default step h = 1e-6 is below float32's resolution (about 1e-7 relative),
    so a float32 model is refused (call `model.double()` and pass float64 `x`). The parameter is
    restored afterwards, also when the forward pass raises.
    """
    param = dict(model.named_parameters())[name]
    if param.dtype != torch.float64 or x.dtype != torch.float64:
        raise ValueError(f"finite_difference needs float64 (parameter {name} is {param.dtype}, "
                         f"x is {x.dtype}); its step h={h:g} is lost in float32 rounding. Use "
                         "model.double() and x.double().")
    values = []
    with torch.no_grad():
        original = param[index].item()
        try:
            for step in (h, -h):
                param[index] = original + step
                values.append(psp_value(forward_record(model, x)[1], lam, normalization).item())
        finally:
            param[index] = original
    return (values[0] - values[1]) / (2 * h)
