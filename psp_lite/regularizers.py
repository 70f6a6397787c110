"""The two regularizers of the paper: l2 weight decay (Eq. 3) and PSP (Eq. 7).

Two normalizations of PSP exist (see notebook 04):

* ``"paper"``: Eq. 7 taken literally per example, averaged over the batch,
  ``lam * 1/2 * sum_l sum_neurons z^2 / B``.
* ``"reference"``: what the authors' code computes and what their lambda = 1e-3 refers to,
  ``lam * mean_l mean(z_l^2)`` (per layer a mean over batch, neurons and positions).

`psp_penalty` builds the penalty as a differentiable scalar. `PSPGradient` is the fused form used
for training: it adds d(penalty)/dz directly to each z's gradient during the one backward pass
(Eq. 13-15 are then carried to every earlier layer by back-propagation), which skips building the
penalty's own graph.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from psp_lite.potentials import watch_potentials

NORMALIZATIONS = ("paper", "reference")


def check_lambda(lam: float) -> float:
    """Return `lam` as a float, or raise ValueError unless it is a finite number >= 0."""
    if isinstance(lam, Tensor) and lam.numel() == 1:
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


def _as_list(potentials: Mapping[str, Tensor] | Sequence[Tensor]) -> list[Tensor]:
    zs = list(potentials.values()) if isinstance(potentials, Mapping) else list(potentials)
    if not zs:
        raise ValueError(
            "no post-synaptic potentials to regularize: capture() found no activation modules. "
            "Build the model with nn.ReLU()/nn.Tanh() submodules instead of functional calls "
            "(F.relu), or capture with include_output=True."
        )
    return zs


def psp_penalty(
    potentials: Mapping[str, Tensor] | Sequence[Tensor],
    lam: float,
    normalization: str = "paper",
) -> Tensor:
    """PSP penalty of Eq. 7 as a differentiable scalar, in one of the two normalizations."""
    lam = check_lambda(lam)
    check_normalization(normalization)
    zs = _as_list(potentials)
    if normalization == "paper":
        batch = zs[0].shape[0] if zs[0].dim() > 0 else 1
        return lam * 0.5 * sum(z.square().sum() for z in zs) / batch
    return lam * sum(z.square().mean() for z in zs) / len(zs)


def psp_gradient_scale(z: Tensor, n_layers: int, lam: float, normalization: str) -> float:
    """c such that d(penalty)/dz = c * z for one potential tensor (the factor in Eq. 13)."""
    if normalization == "paper":
        return lam / (z.shape[0] if z.dim() > 0 else 1)
    return 2.0 * lam / (z.numel() * n_layers)


def l2_penalty(parameters: nn.Module | Iterable[Tensor], lam: float) -> Tensor:
    """lam * R_l2 with R_l2 = 1/2 * sum theta^2 over every parameter (Eq. 3-4).

    Its gradient is lam * theta, exactly what `torch.optim.SGD(weight_decay=lam)` adds, so the
    weight decay update of Eq. 5 is SGD with `weight_decay=lam` (and learning rate 1).
    """
    lam = check_lambda(lam)
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    return lam * 0.5 * sum(p.square().sum() for p in params)


class PSPGradient:
    """Fused PSP for training: adds d(penalty)/dz to each z's gradient in the backward pass.

    Use as a context manager around a training loop, calling the object instead of the model::

        with PSPGradient(model, lam=1e-3, normalization="reference") as psp:
            loss = F.cross_entropy(psp(x), y)
            loss.backward()        # gradients now equal those of loss + psp_penalty(...)

    Gives the same parameter gradients as `psp_penalty` through autograd (tested) for less work.
    """

    def __init__(
        self, model: nn.Module, lam: float, normalization: str = "reference",
        include_output: bool = True,
    ) -> None:
        self.model = model
        self.lam = check_lambda(lam)
        self.normalization = check_normalization(normalization)
        self.include_output = include_output
        self.potentials: OrderedDict[str, Tensor] = OrderedDict()
        self._watch = None

    def __enter__(self) -> PSPGradient:
        self._watch = watch_potentials(self.model, self.potentials.__setitem__)
        self._watch.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._watch.__exit__(*exc)
        self._watch = None
        self.potentials.clear()

    def __call__(self, x: Tensor) -> Tensor:
        if self._watch is None:
            raise RuntimeError("use PSPGradient inside a `with` block.")
        self.potentials.clear()
        output = self.model(x)
        if self.include_output:
            self.potentials["output"] = output
        zs = _as_list(self.potentials)
        if self.lam > 0 and torch.is_grad_enabled():
            for z in zs:
                if z.requires_grad:
                    scale = psp_gradient_scale(z, len(zs), self.lam, self.normalization)
                    z.register_hook(_add_scaled(z.detach(), scale))
        return output

    @torch.no_grad()
    def penalty(self) -> float:
        """The value of the penalty for the last forward pass (for logging)."""
        return psp_penalty(self.potentials, self.lam, self.normalization).item()


def _add_scaled(z: Tensor, scale: float):
    def hook(grad: Tensor) -> Tensor:
        return grad.add(z, alpha=scale)

    return hook
