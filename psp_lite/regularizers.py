"""The two regularizers of the paper: l2 weight decay (Eq. 3) and PSP (Eq. 7).

Two normalizations of PSP exist (see notebook 04):

* ``"paper"``: Eq. 7 taken literally per example, averaged over the batch,
  ``lam * 1/2 * sum_l sum_neurons z^2 / B``.
* ``"reference"``: what the authors' code computes and what their lambda = 1e-3 refers to,
  ``lam * mean_l mean(z_l^2)`` (per layer a mean over batch, neurons and positions).

Both are ``sum_l c_l / 2 * |z_l|^2`` with one factor ``c_l`` per potential tensor, so
d(penalty)/dz_l = c_l * z_l (Eq. 13). `psp_penalty` computes that in one fused autograd node
(`SquaredPotentials`): the forward is one reduction per z, the backward hands each z its
``grad_output * c_l * z_l``, and back-propagation carries it to every earlier layer (Eqs. 14-15).
Being a term of the loss, it is right under any loss scaling (gradient accumulation, AMP's
GradScaler) and under `torch.func` transforms (`vmap`, `grad`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

NORMALIZATIONS = ("paper", "reference")
#: Every regularizer a run can use: "none" (cross-entropy alone), "l2" (weight decay, Eqs. 3-5)
#: and "psp" (Eq. 7).
REGULARIZERS = ("none", "l2", "psp")
#: The ones with a lambda to sweep, in the order sweeps, figures and the explorer show them.
WITH_LAMBDA = ("psp", "l2")
#: Short names, for table headers, sliders and sentences (figures' labels and colours:
#: `psp_lite.report.style`).
SHORT_NAMES = {"none": "no regularization", "l2": "l2", "psp": "PSP"}


def short_name(regularizer: str) -> str:
    """'PSP', 'l2' or 'no regularization'; an unknown name as it is."""
    return SHORT_NAMES.get(regularizer, regularizer)


def check_lambda(lam: float) -> float:
    """Return `lam` as a float, or raise ValueError unless it is a finite number >= 0.

    A one-element tensor or numpy array counts as its number; a tensor that requires grad is
    refused (the penalty takes lambda as a constant, so its gradient would be lost silently).
    """
    if isinstance(lam, Tensor) and lam.requires_grad:
        raise ValueError("lambda is a tensor that requires grad, but psp_penalty takes it as a "
                         "constant; pass lam.detach(), or write lam * psp_penalty(z, 1.0) to "
                         "learn it.")
    if isinstance(lam, (Tensor, np.ndarray)) and math.prod(lam.shape) == 1:
        lam = lam.item()
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise ValueError(f"lambda must be a real number >= 0, got {lam!r} ({type(lam).__name__}).")
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda must be a finite number >= 0, got {lam}; try e.g. 1e-3.")
    return lam


def check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; use 'paper' (Eq. 7, summed over neurons) "
            "or 'reference' (the authors' per-layer mean)."
        )
    return normalization


def _as_list(potentials: Mapping[str, Tensor] | Sequence[Tensor] | Tensor) -> list[Tensor]:
    """The potential tensors; a bare tensor is one layer's z (batch-first)."""
    if isinstance(potentials, Tensor):
        zs = [potentials]
    elif isinstance(potentials, Mapping):
        zs = list(potentials.values())
    elif isinstance(potentials, Iterable) and not isinstance(potentials, (str, bytes)):
        zs = list(potentials)
    else:
        raise ValueError(f"potentials must be capture()'s mapping, a sequence of tensors or one "
                         f"tensor, got {type(potentials).__name__}.")
    if not zs:
        raise ValueError(
            "no post-synaptic potentials to regularize: capture() found no activation modules. "
            "Build the model with nn.ReLU()/nn.Tanh() submodules instead of functional calls "
            "(F.relu), or capture with include_output=True."
        )
    for i, z in enumerate(zs):
        if not isinstance(z, Tensor) or not z.is_floating_point():
            kind = z.dtype if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"potential {i} is {kind}, not a floating-point tensor; pass the "
                             "tensors of z that capture() returns.")
        if z.dim() == 0 or z.shape[0] == 0 or z.numel() == 0:
            raise ValueError(f"potential {i} has shape {tuple(z.shape)}; each z must be "
                             "batch-first with at least one example.")
    return zs


def _check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, numbers.Integral)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (z's leading "
                         f"dimension), got {batch_size!r}.")
    return batch_size


def psp_gradient_scale(z: Tensor, n_layers: int, lam: float, normalization: str,
                       batch_size: int | None = None) -> float:
    """c such that d(penalty)/dz = c * z for one potential tensor (the factor in Eq. 13).

    "paper": lam / B, with B the batch size (by default z's leading dimension);
    "reference": 2 lam / (N_z L), N_z the number of entries of z, L the number of tensors.
    """
    if check_normalization(normalization) == "paper":
        if batch_size is None:
            batch_size = z.shape[0] if z.dim() > 0 else 1
        return lam / batch_size
    return 2.0 * lam / (z.numel() * n_layers)


def _sum_of_squares(z: Tensor) -> Tensor:
    """|z|^2 as one dot product (no temporary z^2), in float32 when z is half or bfloat16."""
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    flat = z.reshape(-1)
    return torch.dot(flat, flat)


class SquaredPotentials(torch.autograd.Function):
    """sum_l c_l / 2 * |z_l|^2 as one autograd node; its backward is grad_output * c_l * z_l.

    Forward: one reduction per z. Backward: Eq. 13 for each z, nothing else; autograd carries
    it back through the network (Eqs. 14-15). Written in the `setup_context` style with a
    generated vmap rule, so it also runs under `torch.func.vmap` and `torch.func.grad`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(scales: tuple[float, ...], *zs: Tensor) -> Tensor:
        return sum(0.5 * c * _sum_of_squares(z) for c, z in zip(scales, zs, strict=True))

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: Tensor) -> None:
        scales, *zs = inputs
        ctx.scales = scales
        ctx.save_for_backward(*zs)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        zs = ctx.saved_tensors
        return (None, *((grad_output * c) * z for c, z in zip(ctx.scales, zs, strict=True)))


def psp_penalty(
    potentials: Mapping[str, Tensor] | Sequence[Tensor] | Tensor,
    lam: float,
    normalization: str = "paper",
    *,
    batch_size: int | None = None,
) -> Tensor:
    """PSP penalty of Eq. 7 as a term of the loss, in one of the two normalizations.

    `potentials`: capture()'s mapping, a sequence of z tensors, or one tensor (one layer's z).
    Each z is batch-first. "paper" divides by the batch size B: by default the leading dimension
    of the first potential (pass `batch_size` for potentials that are not batch-first). The
    gradient is that of the plain formula, computed by one fused node (`SquaredPotentials`).
    """
    lam = check_lambda(lam)
    check_normalization(normalization)
    batch_size = _check_batch_size(batch_size)
    zs = _as_list(potentials)
    if normalization == "paper" and batch_size is None:
        batch_size = zs[0].shape[0] if zs[0].dim() > 0 else 1
    scales = tuple(psp_gradient_scale(z, len(zs), lam, normalization, batch_size) for z in zs)
    return SquaredPotentials.apply(scales, *zs)


def l2_penalty(parameters: nn.Module | Iterable[Tensor], lam: float) -> Tensor:
    """lam * R_l2 with R_l2 = 1/2 * sum theta^2 over every parameter (Eq. 3-4).

    Its gradient is lam * theta, exactly what `torch.optim.SGD(weight_decay=lam)` adds, so the
    weight decay update of Eq. 5 is SGD with `weight_decay=lam` (and learning rate 1).
    A model without parameters gives a 0-d zero tensor (nothing to decay), never a float.
    """
    lam = check_lambda(lam)
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    squares = [p.square().sum() for p in params]
    return lam * 0.5 * sum(squares) if squares else torch.zeros(())
