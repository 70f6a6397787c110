"""Checking gradients: autograd's side, one tensor of ours against it, and a table of the rows.

`autograd_psp_gradients` differentiates the penalty (Eq. 7) through `psp_lite.capture`, the
reference the hand-derived gradients (`psp_lite.analytic.by_hand`) are checked against;
`compare_gradients` sets one tensor beside its reference and raises past a tolerance.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from psp_lite.potentials import capture
from psp_lite.regularizers import psp_penalty


def autograd_gradient(
    model: nn.Module, x: Tensor, objective: Callable[[Tensor, list[Tensor]], Tensor]
) -> OrderedDict[str, Tensor]:
    """d objective(output, [z_1, ..., z_N]) / dtheta by autograd, z from `psp_lite.capture`.

    For single terms of the derivation, e.g. ``lambda out, zs: 0.5 * zs[1][0, k] ** 2`` is
    R_{2,k} of Eq. 8 for the first example.
    """
    output, potentials = capture(model, x)
    params = OrderedDict((n, p) for n, p in model.named_parameters() if p.requires_grad)
    grads = torch.autograd.grad(objective(output, list(potentials.values())),
                                list(params.values()), allow_unused=True)
    return OrderedDict((n, torch.zeros_like(p) if g is None else g)
                       for (n, p), g in zip(params.items(), grads, strict=True))


def autograd_psp_gradients(
    model: nn.Module, x: Tensor, lam: float, normalization: str = "paper",
    source: int | None = None,
) -> OrderedDict[str, Tensor]:
    """dP/dtheta by autograd through `capture` and `psp_penalty`: the reference to check against.

    With `source = p` (0-based), only the penalty at that layer counts (the other layers' z are
    replaced by zeros that carry no gradient, so the normalization still sees every layer).
    """
    def objective(_: Tensor, zs: list[Tensor]) -> Tensor:
        if source is not None:
            zs = [z if i == source else torch.zeros_like(z).detach() for i, z in enumerate(zs)]
        return psp_penalty(zs, lam, normalization)

    return autograd_gradient(model, x, objective)


@dataclass(frozen=True)
class GradientCheckRow:
    """One line of a gradient check: max |ours - reference| and that relative to max |reference|."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    scale: float

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape))
        return (f"{self.name:<16} {shape:>12} {self.scale:>11.3e} {self.max_abs:>11.2e} "
                f"{self.max_rel:>11.2e}")


TABLE_HEADER = (f"{'parameter':<16} {'shape':>12} {'max|ref|':>11} {'max abs err':>11} "
                f"{'max rel err':>11}")


def default_rtol(dtype: torch.dtype) -> float:
    """Tolerance on max|ours - ref| / max|ref|: 1e-10 in float64, 1e-4 in float32."""
    return 1e-10 if dtype == torch.float64 else 1e-4


def compare_gradients(name: str, ours: Tensor, reference: Tensor, *, rtol: float | None = None,
                      atol: float = 0.0) -> GradientCheckRow:
    """Compare one tensor of ours with autograd's; return the row, raise AssertionError past
    ``atol + rtol * max|reference|``.

    The relative error is taken against the tensor's largest entry (max|ours - ref| / max|ref|),
    so that entries that are zero or nearly so do not blow it up.
    """
    if ours.shape != reference.shape:
        raise AssertionError(f"{name}: shape {tuple(ours.shape)} != reference "
                             f"{tuple(reference.shape)}")
    rtol = default_rtol(reference.dtype) if rtol is None else rtol
    diff = (ours.detach().double() - reference.detach().double()).abs()
    max_abs = diff.max().item() if diff.numel() else 0.0
    scale = reference.detach().double().abs().max().item() if diff.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    row = GradientCheckRow(name, tuple(ours.shape), max_abs, max_rel, scale)
    if not max_abs <= atol + rtol * scale:
        raise AssertionError(f"{name}: max abs error {max_abs:.3e} exceeds "
                             f"atol {atol:.1e} + rtol {rtol:.1e} * max|ref| {scale:.3e} "
                             f"(relative error {max_rel:.3e})")
    return row


def compare_all(ours: Mapping[str, Tensor], reference: Mapping[str, Tensor], *,
                rtol: float | None = None, atol: float = 0.0) -> list[GradientCheckRow]:
    """`compare_gradients` for every parameter tensor, rows in the reference's order; the names
    must match (in any order)."""
    if sorted(ours) != sorted(reference):
        raise AssertionError(f"parameter names differ: {list(ours)} vs {list(reference)}")
    return [compare_gradients(k, ours[k], reference[k], rtol=rtol, atol=atol) for k in reference]


def format_table(rows: Sequence[GradientCheckRow], title: str = "") -> str:
    """The rows as a fixed-width text table."""
    lines = [title] if title else []
    lines += [TABLE_HEADER, "-" * len(TABLE_HEADER), *map(str, rows)]
    return "\n".join(lines)
