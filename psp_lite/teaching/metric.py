"""PSP as weight decay in the metric of the data.

For one Linear layer z = W y + b and a batch of inputs y with second moment C = <y y^T> and mean
mu = <y>, the batch mean of Eq. 7's 1/2 |z|^2 is

    1/2 tr(W C W^T) + b^T W mu + 1/2 |b|^2,

which is the l2 penalty of Eq. 3 for that layer exactly when C = I and mu = 0. Its gradients,
W C + b mu^T and W mu + b, are weight decay's W and b when C = I and b mu^T = 0, W mu = 0: for
a bias-free layer C = I is enough; with a bias the inputs must also be centred.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from psp_lite.analytic import analytic_psp_gradients


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


def penalty_on_input_kinds(n_examples: int, seed: int = 1) -> str:
    """One layer (16 -> 8, with bias) on three kinds of inputs, one line per kind: its PSP
    penalty P (Eq. 7 for this layer, batch mean, lambda = 1), the trace formula's agreement
    with it, and P / R_l2, the ratio to the same layer's Eq. 3 penalty 1/2 (|W|^2 + |b|^2)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 16, dtype=torch.float64, generator=gen) / 4
    b = torch.randn(8, dtype=torch.float64, generator=gen) / 4
    gauss = torch.randn(n_examples, 16, dtype=torch.float64, generator=gen)
    inputs = {"pixel-like, uniform in [0, 1]": torch.rand(n_examples, 16, dtype=torch.float64,
                                                           generator=gen),
              "Gaussian": gauss,
              "centred and white (C = I, mu = 0)": centre_and_whiten(gauss)}
    l2 = layer_l2_penalty(w, b).item()
    lines = []
    for name, y in inputs.items():
        direct = layer_psp_penalty_direct(w, b, y).item()
        trace = layer_psp_penalty_by_trace(w, b, y).item()
        lines.append(f"{name:<34} P = {direct:.4f} (trace formula: rel. diff "
                     f"{abs(trace - direct) / direct:.0e}), P / R_l2 = {direct / l2:.4f}")
    return "\n".join(lines)


def zero_gradient_columns(n_examples: int, silent: int = 3, seed: int = 1) -> list[int]:
    """Columns (from 1) of one layer's PSP weight gradient W C + b mu^T that are exactly zero,
    for Gaussian inputs whose input number `silent` (from 1) is always 0."""
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(8, 16, dtype=torch.float64, generator=gen) / 4).requires_grad_(True)
    b = torch.randn(8, dtype=torch.float64, generator=gen) / 4
    y = torch.randn(n_examples, 16, dtype=torch.float64, generator=gen)
    y[:, silent - 1] = 0
    grad = torch.autograd.grad(layer_psp_penalty_direct(w, b, y), w)[0]
    return [c + 1 for c in range(grad.shape[1]) if grad[:, c].abs().max() == 0]


#: The cases of notebook 03's exercise, numbered as there.
WEIGHT_DECAY_CASES = (
    "one layer, no bias, C = I, not centred",
    "one layer, bias, C = I, centred (mu = 0)",
    "one layer, bias, C = I, not centred",
    "one layer, bias, pixel-like inputs in [0, 1]",
    "two layers, no biases, C = I, centred",
)


@dataclass(frozen=True)
class WeightDecayCases:
    """Per case of WEIGHT_DECAY_CASES: max relative distance of the first layer's PSP gradient
    ("paper" normalization) from lam W and, where it has one, of its bias gradient from lam b."""

    distances: list[tuple[float, float | None]]

    @property
    def exact(self) -> list[int]:
        """The case numbers (from 1) where PSP is weight decay to rounding."""
        return [i for i, (dw, db) in enumerate(self.distances, start=1)
                if dw < 1e-10 and (db is None or db < 1e-10)]

    def lines(self) -> str:
        out = []
        for i, (name, (dw, db)) in enumerate(zip(WEIGHT_DECAY_CASES, self.distances,
                                                 strict=True), start=1):
            bias = "" if db is None else f", bias {db:.0e}"
            out.append(f"{i}. {name:<44} max|PSP - weight decay| / max|weight decay|: "
                       f"weights {dw:.0e}{bias}")
        return "\n".join(out)


def weight_decay_cases(lam: float, n_examples: int, seed: int = 1) -> WeightDecayCases:
    """Measure every case of WEIGHT_DECAY_CASES with `psp_lite.analytic`'s hand-derived PSP
    gradients (Eq. 7 literal, batch mean) on float64 inputs made exactly white where stated."""
    with torch.random.fork_rng(devices=[]):  # the caller's global random state is kept
        torch.manual_seed(seed)
        return _weight_decay_cases(lam, n_examples, torch.Generator().manual_seed(seed))


def _weight_decay_cases(lam: float, n_examples: int, gen: torch.Generator) -> WeightDecayCases:
    first = nn.Linear(16, 8).double()
    gauss = torch.randn(n_examples, 16, dtype=torch.float64, generator=gen)
    pixels = torch.rand(n_examples, 16, dtype=torch.float64, generator=gen)
    white_not_centred = whiten(pixels)           # C = I exactly, mean far from 0
    white = centre_and_whiten(gauss)             # C = I, mu = 0 exactly

    def one(bias: bool, y: Tensor, second: bool = False) -> tuple[float, float | None]:
        layer = nn.Linear(16, 8, bias=bias).double()
        layer.weight.data.copy_(first.weight.data)
        if bias:
            layer.bias.data.copy_(first.bias.data)
        model = nn.Sequential(layer, nn.Tanh(), nn.Linear(8, 4, bias=False).double()) \
            if second else nn.Sequential(layer)
        grads = analytic_psp_gradients(model, y, lam, "paper")
        dw = ((grads["0.weight"] - lam * layer.weight).abs().max()
              / (lam * layer.weight).abs().max()).item()
        db = None if not bias else ((grads["0.bias"] - lam * layer.bias).abs().max()
                                    / (lam * layer.bias).abs().max()).item()
        return dw, db

    return WeightDecayCases([one(False, white_not_centred), one(True, white),
                             one(True, white_not_centred), one(True, pixels),
                             one(False, white, second=True)])
