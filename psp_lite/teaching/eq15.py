"""Eq. 15 for a tanh MLP with linear logits, in notebook 03's normalization (the layer mean of the
authors' code, P = lambda/N sum_l <z_l^2>, so dP/dz_l = c_l z_l with c_l = 2 lambda/(N B K_l)).

* `eq15_case` / `eq15_cases`: the fixed float64 nets a student's function is checked on.
* `eq15_by_autograd`: the right answer, by autograd of `psp_penalty(..., "reference")`.
* `tanh_mlp_forward`: the forward pass a student's backward pass starts from (notebook 03).
* `eq15_by_hand`: the backward recursion (Eqs. 13-15) written out, right or with one planted
  mistake (a `Recipe`); `VARIANTS` lists the mistakes the check can name, `MISTAKES` their words.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from psp_lite.regularizers import psp_penalty

#: The notebook's net (3 layers of 7) and a deeper one whose widths all differ, so that a c_l
#: with another layer's width, or the total width, gives a different answer.
NOTEBOOK_WIDTHS, DEEP_WIDTHS = (6, 7, 7, 7), (5, 7, 4, 6, 3)
#: Their batch sizes: B, N and the widths all differ from net to net, so a size typed in as a
#: number (the notebook's N = 3, B = 5, K_l = 7) is right on the first net only.
NOTEBOOK_BATCH, DEEP_BATCH = 5, 11
#: Every width equal: only for naming the mistake of a function that raises on both nets above.
SQUARE_WIDTHS = (7, 7, 7, 7)
#: The notebook's N and its (every) width, and the deeper net's N and widths, for the hints.
_N0, _K0 = len(NOTEBOOK_WIDTHS) - 1, NOTEBOOK_WIDTHS[-1]
_N1, _K1 = len(DEEP_WIDTHS) - 1, ", ".join(map(str, DEEP_WIDTHS[1:]))
#: Which of the notebook's sizes a student may type in as numbers in c_l. K alone is left out:
#: on these nets a typed-in 7 is the first layer's width, named as "other width".
TYPED_IN = (("N",), ("B",), ("N", "B"), ("N", "K"), ("B", "K"), ("N", "B", "K"))

Gradients = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Eq15Case:
    """A fixed float64 tanh MLP, a batch `x` and lambda, on which a student's Eq. 15 runs."""

    weights: list[Tensor]
    biases: list[Tensor]
    x: Tensor
    lam: float

    @property
    def name(self) -> str:
        """The widths, input first: '6→7→7→7'."""
        return "→".join(str(n) for n in (self.x.shape[1], *(w.shape[0] for w in self.weights)))


def eq15_case(seed: int = 0, widths: tuple[int, ...] = NOTEBOOK_WIDTHS,
              batch: int = NOTEBOOK_BATCH) -> Eq15Case:
    """A fresh `Eq15Case` (new tensors each call, so a student's in-place edit cannot leak)."""
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(b, a, dtype=torch.float64, generator=g) / math.sqrt(a)
               for a, b in itertools.pairwise(widths)]
    biases = [torch.randn(b, dtype=torch.float64, generator=g) / 2 for b in widths[1:]]
    x = torch.randn(batch, widths[0], dtype=torch.float64, generator=g)
    return Eq15Case(weights, biases, x, 1e-3)


def eq15_cases() -> list[Eq15Case]:
    """The nets `check_eq15_mlp` uses: the notebook's (B = 5) and the deeper one (B = 11).
    B, N and lambda differ from net to net, so a missing factor is read off without doubt."""
    return [eq15_case(0, NOTEBOOK_WIDTHS, NOTEBOOK_BATCH), eq15_case(1, DEEP_WIDTHS, DEEP_BATCH)]


def eq15_by_autograd(case: Eq15Case) -> Gradients:
    """[(dP/dW_l, dP/db_l)] of P = lambda mean_l <z_l^2> (the layer mean), by autograd."""
    params = [t.clone().requires_grad_(True) for pair in zip(case.weights, case.biases,
                                                             strict=True) for t in pair]
    y, zs = case.x, []
    for i in range(0, len(params), 2):
        z = y @ params[i].T + params[i + 1]
        zs.append(z)
        y = torch.tanh(z)
    grads = torch.autograd.grad(psp_penalty(zs, case.lam, "reference"), params)
    return [(grads[i], grads[i + 1]) for i in range(0, len(grads), 2)]


# ------------------------------------------------------------------ the recursion, and mistakes


@dataclass(frozen=True)
class Mistake:
    """What the check's line calls a mistake, and where it points the student (no answer)."""

    name: str
    hint: str


MISTAKES: dict[str, Mistake] = {k: Mistake(*v) for k, v in {
    # a constant factor on every tensor (read off the ratio to a reference)
    "2 too many": ("a factor 2 too many", "count the 2 of d(z^2)/dz once"),
    "2 missing": ("a factor 2 missing", "d(z^2)/dz = 2z, and the layer mean has no 1/2 to "
                  "cancel it"),
    "1/B missing": ("the 1/B of the batch mean is missing", "<z_l^2> averages over the B "
                    "examples"),
    "1/B twice": ("divided by the batch size B once too often", "c_l divides by B once; the "
                  "batch sums that follow are sums"),
    "1/N missing": ("the 1/N of the mean over the N layers is missing", "P averages over the "
                    "N layers"),
    "1/N twice": ("divided by the number of layers N once too often", "c_l divides by N once"),
    "lambda missing": ("lambda is missing", "P is lambda times the mean"),
    "lambda twice": ("lambda twice", "lambda appears once, in c_l"),
    "sign": ("a sign", "the gradient points the wrong way: P grows with z^2, so dP/dz_l has "
             "the sign of z_l"),
    "constant factor": ("off by a constant factor", "compare each factor of c_l with "
                        "P = lambda/N sum_l <z_l^2>"),
    "dW transposed": ("dP/dW_l is transposed", "it has W_l's shape, K_l x K_{l-1}"),
    # c_l
    "1/K missing": ("the 1/K_l of the mean over a layer's K_l neurons is missing",
                    "<z_l^2> averages over layer l's K_l neurons"),
    "1/K twice": ("divided by K_l once too often", "c_l divides by K_l once"),
    "paper Eq. 7": ("the paper's literal Eq. 7 normalization", "this notebook's P is the "
                    "layer mean of the authors' code, not Eq. 7's 1/2 sum over neurons per "
                    "example"),
    "other width": ("c_l uses another layer's width", "K_l is the width of layer l itself "
                    "(z_l's columns, zs[i].shape[1]), not another layer's and not a number "
                    "typed in; W_l's second dimension is the layer below's"),
    "total width": ("c_l uses the total width", "<z_l^2> is a mean over layer l alone, then P "
                    "averages the N layer means"),
    "typed in": ("a size typed in as a number", f"N = {_N0}, B = {NOTEBOOK_BATCH} and K_l = "
                 f"{_K0} hold for this notebook's net only; the deeper net has N = {_N1}, B = "
                 f"{DEEP_BATCH} and widths {_K1}: take each size from the tensors "
                 "(len(weights), len(x), zs[i].shape[1])"),
    # the recursion
    "no reach-back": ("the reach-back is missing", "delta_l gets nothing from the layers "
                      "above; Eq. 14's terms p > l reach z_l through layer l+1"),
    "next own only": ("only the next layer's own term reaches back", "Eq. 15 sums over every "
                      "later layer p > l, and all of that reaches z_{l+1}: it is delta_{l+1}"),
    "no own term": ("the own term is missing", "every layer adds its own term to delta_l "
                    "(Eq. 15's first term), not only the top one"),
    "output penalized": ("the activation's output is penalized instead of z", "PSP penalizes "
                         "the potential z_l (Eq. 7), tanh's input, not y_l = tanh(z_l): the "
                         "own term is c_l z_l"),
    "phi for slope": ("the activation in place of its slope", "going down through tanh "
                      "multiplies by its derivative phi'(z_l) = 1 - tanh(z_l)^2, not by tanh "
                      "itself (notebook 02, Eq. 14's case p > l)"),
    "slope 1 - tanh": ("1 - tanh(z) used as tanh's slope", "tanh'(z) = 1 - tanh(z)^2: the "
                       "square is missing"),
    "slope 1 - z^2": ("1 - z^2 used as tanh's slope", "tanh'(z) = 1 - tanh(z)^2 = 1 - y^2: "
                      "square tanh(z_l), not z_l"),
    "no slope": ("the activation slope is missing", "going down from z_{l+1} to z_l passes "
                 "through y_l = tanh(z_l), so phi'(z_l) = 1 - tanh(z_l)^2 is a factor "
                 "(notebook 02, Eq. 14's case p > l)"),
    "slope on own term": ("the slope applied to the own term too", "layer l's own penalty "
                          "depends on z_l directly (Eqs. 9-11: dR_l,k/dz_l,k = z_l,k), so "
                          "c_l z_l has no phi'; phi'(z_l) belongs only to what delta_{l+1} "
                          "sends back (Eq. 14, p > l)"),
    "slope wrong layer": ("the slope taken at the wrong layer", "the way down from z_{l+1} "
                          "to z_l passes through y_l = tanh(z_l): the slope is phi'(z_l), at "
                          "layer l (notebook 02, Eq. 14's case p > l: phi'(z_l,k))"),
    "transposed back": ("a transposed term going down", "mind the shapes: delta_{l+1} is "
                        "B x K_{l+1} and must come out B x K_l"),
}.items()}


@dataclass(frozen=True)
class Recipe:
    """How `eq15_by_hand` computes; every field at its default is the notebook's recursion.

    c: c_l's normalization (a key of `C_L`). own: what layer l's own term penalizes: "z",
    "a" (y_l = tanh(z_l), z at the linear top), "tanh" (tanh(z_l) at every layer),
    "a exact" (the true gradient of penalizing y_l) or "z slope" (c_l z_l times tanh'(z_l) in
    the hidden layers). own_everywhere: False keeps only the top
    layer's own term. back: what comes down from layer l+1: "delta", "none", "next own"
    (c_{l+1} z_{l+1} only) or "transposed" (through W_{l+1}^T). slope: the factor on the way
    down: "z_l" (tanh'(z_l)), "none", "phi" (tanh(z_l)), "z_above" (tanh'(z_{l+1})),
    "z_above first" (tanh'(z_{l+1}) on delta_{l+1}, before W_{l+1}), "y_below"
    (1 - y_{l-1}^2), "tanh y_below" (1 - tanh(y_{l-1})^2: both read ys[i] as y_l), "1 - tanh"
    (1 - tanh(z_l), the square missing) or "1 - z^2" (z_l squared where tanh(z_l) should be).
    """

    c: str = "layer mean"
    own: str = "z"
    own_everywhere: bool = True
    back: str = "delta"
    slope: str = "z_l"


def _typed_in(sizes: tuple[str, ...]) -> Callable[[float, int, int, list[int], int], float]:
    """The layer mean's c_l with the notebook's N, B or K_l (those in `sizes`) as numbers."""
    def c(lam: float, n: int, b: int, k: list[int], i: int) -> float:
        return 2 * lam / ((_N0 if "N" in sizes else n) * (NOTEBOOK_BATCH if "B" in sizes else b)
                          * (_K0 if "K" in sizes else k[i + 1]))
    return c


#: c_l(lambda, N, B, widths K_0..K_N, tensor index i of layer l = i + 1).
C_L: dict[str, Callable[[float, int, int, list[int], int], float]] = {
    "layer mean": lambda lam, n, b, k, i: 2 * lam / (n * b * k[i + 1]),
    "no 1/K": lambda lam, n, b, k, i: 2 * lam / (n * b),
    "1/K twice": lambda lam, n, b, k, i: 2 * lam / (n * b * k[i + 1] ** 2),
    "paper": lambda lam, n, b, k, i: lam / b,  # Eq. 7, 1/2 sum_l sum_k z^2 per example
    "fan-in": lambda lam, n, b, k, i: 2 * lam / (n * b * k[i]),
    "input width": lambda lam, n, b, k, i: 2 * lam / (n * b * k[0]),
    "first width": lambda lam, n, b, k, i: 2 * lam / (n * b * k[1]),
    "top width": lambda lam, n, b, k, i: 2 * lam / (n * b * k[-1]),
    "total width": lambda lam, n, b, k, i: 2 * lam / (n * b * sum(k[1:])),
    # the notebook's sizes typed in as numbers (right on its net, wrong on the deeper one)
    **{f"typed {''.join(sizes)}": _typed_in(sizes) for sizes in TYPED_IN},
}

#: The references the check compares a student's answer with, in the order it tries them:
#: (key of `MISTAKES`, or "right"; how to compute it).
VARIANTS: list[tuple[str, Recipe]] = [
    ("right", Recipe()),
    ("1/K missing", Recipe(c="no 1/K")),
    ("1/K twice", Recipe(c="1/K twice")),
    ("paper Eq. 7", Recipe(c="paper")),
    *(("other width", Recipe(c=c)) for c in ("fan-in", "input width", "first width",
                                              "top width")),
    ("total width", Recipe(c="total width")),
    *(("typed in", Recipe(c=f"typed {''.join(sizes)}")) for sizes in TYPED_IN),
    ("no reach-back", Recipe(back="none")),
    ("next own only", Recipe(back="next own")),
    ("no own term", Recipe(own_everywhere=False)),
    *(("output penalized", Recipe(own=own)) for own in ("a", "tanh", "a exact")),
    ("phi for slope", Recipe(slope="phi")),
    ("no slope", Recipe(slope="none")),
    ("slope 1 - tanh", Recipe(slope="1 - tanh")),
    ("slope 1 - z^2", Recipe(slope="1 - z^2")),
    ("slope on own term", Recipe(own="z slope")),
    *(("slope wrong layer", Recipe(slope=s)) for s in ("z_above", "z_above first",
                                                         "y_below", "tanh y_below")),
    ("transposed back", Recipe(back="transposed")),
]


def tanh_mlp_forward(weights: list[Tensor], biases: list[Tensor], x: Tensor
                     ) -> tuple[list[Tensor], list[Tensor]]:
    """The forward pass of a tanh MLP with linear logits, kept for the backward one: (ys, zs)
    with ys[i] = y_{l-1} (ys[0] = x) and zs[i] = z_l = y_{l-1} W_l^T + b_l (Eq. 2), l = i + 1."""
    ys, zs, y = [], [], x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        ys.append(y)
        zs.append(y @ w.T + b)
        y = torch.tanh(zs[-1]) if i < len(weights) - 1 else zs[-1]
    return ys, zs


def eq15_by_hand(case: Eq15Case, recipe: Recipe = Recipe()) -> Gradients | None:
    """Eq. 15's recursion for the case's MLP, as `recipe` says: delta_N = c_N z_N, then
    delta_l = c_l z_l + tanh'(z_l) * (delta_{l+1} W_{l+1}), dP/dW_l = delta_l^T y_{l-1},
    dP/db_l = sum over the batch of delta_l. None where the recipe's shapes do not fit the net
    (a student's code with that mistake raises there)."""
    weights, n, b = case.weights, len(case.weights), len(case.x)
    widths = [case.x.shape[1], *(w.shape[0] for w in weights)]
    ys, zs = tanh_mlp_forward(weights, case.biases, case.x)
    grads: Gradients = []
    delta = own_above = None
    try:
        for i in reversed(range(n)):
            own = C_L[recipe.c](case.lam, n, b, widths, i) * _penalized(recipe.own, zs[i],
                                                                      top=i == n - 1)
            if delta is None:
                delta = own
            else:
                keep = own if recipe.own_everywhere else 0
                delta = keep + _reach_back(recipe, delta, own_above, zs, ys, weights[i + 1], i)
            own_above = own
            grads.insert(0, (delta.T @ ys[i], delta.sum(0)))
    except RuntimeError:
        return None
    return grads


def _penalized(own: str, z: Tensor, *, top: bool) -> Tensor:
    """What the own term multiplies c_l with (Eq. 9: dR/dz = z for the right one)."""
    if own == "z" or (top and own in ("a", "a exact", "z slope")):
        return z
    if own == "a exact":
        return torch.tanh(z) * (1 - torch.tanh(z) ** 2)
    if own == "z slope":
        return z * (1 - torch.tanh(z) ** 2)
    return torch.tanh(z)


def _reach_back(recipe: Recipe, delta: Tensor, own_above: Tensor, zs: list[Tensor],
                ys: list[Tensor], w_above: Tensor, i: int) -> Tensor | float:
    """The second term of delta_l: what the layers above send down to z_l (Eq. 14, p > l)."""
    if recipe.back == "none":
        return 0.0
    source = own_above if recipe.back == "next own" else delta
    if recipe.slope == "z_above first":
        source = source * (1 - torch.tanh(zs[i + 1]) ** 2)
    down = source @ (w_above.T if recipe.back == "transposed" else w_above)
    slope = {"z_l": lambda: 1 - torch.tanh(zs[i]) ** 2, "none": lambda: 1.0,
             "phi": lambda: torch.tanh(zs[i]), "z_above": lambda: 1 - torch.tanh(zs[i + 1]) ** 2,
             "z_above first": lambda: 1.0, "y_below": lambda: 1 - ys[i] ** 2,
             "tanh y_below": lambda: 1 - torch.tanh(ys[i]) ** 2,
             "1 - tanh": lambda: 1 - torch.tanh(zs[i]),
             "1 - z^2": lambda: 1 - zs[i] ** 2}[recipe.slope]()
    return slope * down
