"""Notebook 02's checks, one call each: the paper's symbols for one example, and Eqs. 9-16 by
hand against autograd, printed as one line per check."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from psp_lite.analytic import (
    autograd_gradient,
    autograd_psp_gradients,
    check_psp_gradients,
    compare_gradients,
    forward_record,
    psp_contributions,
)
from psp_lite.teaching.decomposition import check_line
from psp_lite.teaching.predictions import Slip
from psp_lite.teaching.toy import linear_layers

#: Notebook 02's one sentence: a model answer that names both reasons, each attributed, shown
#: once the student has filled both blanks (the words are the student's to judge: no check
#: marks prose). Its blanks are "later" and "input".
MODEL_SENTENCE = (
    "A model answer (the blanks: later, input): PSP is not weight decay: a layer's weights are "
    "also pulled by the penalty of every later layer, whose potentials they feed (the paper's "
    "reason: non-locality, Eq. 14), and a weight's own pull scales with the input it "
    "multiplies, so a weight whose input is always 0 is not pulled at all, however large it is "
    "(ours, reading the paper's Eq. 12 split: weight decay weighted by the data).")


@dataclass(frozen=True)
class PaperSymbols:
    """One example through a Linear-tanh network in the paper's symbols, layers l = 1..N:
    z[l] (Eq. 2), y[l - 1] (y[0] = x), W[l], b[l] and the parameter prefix name[l]."""

    z: dict[int, Tensor]
    y: dict[int, Tensor]
    W: dict[int, Tensor]
    b: dict[int, Tensor]
    name: dict[int, str]

    @property
    def N(self) -> int:  # noqa: N802 (the paper's letter)
        return len(self.z)


def paper_symbols(net: nn.Module, x: Tensor) -> PaperSymbols:
    """The forward pass by hand (`forward_record`) for the first example of `x`."""
    records = forward_record(net, x)[1]
    numbered = list(enumerate(records, start=1))
    return PaperSymbols(z={n: r.z[0] for n, r in numbered},
                        y={n - 1: r.y_in[0] for n, r in numbered},
                        W={n: r.module.weight.detach() for n, r in numbered},
                        b={n: r.module.bias.detach() for n, r in numbered},
                        name={n: r.name for n, r in numbered})


def _one_penalty(net: nn.Module, x: Tensor, layer: int, neuron: int) -> dict[str, Tensor]:
    """Autograd's gradient of R_{layer,neuron} = z^2 / 2 (indices from 1) for every parameter."""
    return autograd_gradient(
        net, x, lambda out, zs: 0.5 * zs[layer - 1][0, neuron - 1] ** 2)


def own_term_lines(net: nn.Module, x: Tensor, l: int, k: int, j: int) -> str:  # noqa: E741
    """Eq. 9 (weight w_{l,k,j}) and Eq. 11 (bias b_{l,k}) by hand vs autograd, one line each."""
    s = paper_symbols(net, x)
    auto = _one_penalty(net, x, l, k)
    eq9 = compare_gradients("Eq. 9", s.z[l][k - 1] * s.y[l - 1][j - 1],
                            auto[f"{s.name[l]}.weight"][k - 1, j - 1])
    eq11 = compare_gradients("Eq. 11", s.b[l][k - 1] + s.W[l][k - 1] @ s.y[l - 1],
                             auto[f"{s.name[l]}.bias"][k - 1])
    return "\n".join([check_line(f"Eq. 9, w_{l},{k},{j} vs autograd", [eq9]),
                      check_line(f"Eq. 11, b_{l},{k} vs autograd", [eq11])])


def nonzero_rows(net: nn.Module, x: Tensor, layer: int, neuron: int) -> dict[int, list[int]]:
    """For the one penalty R_{layer,neuron}: layer l -> the rows (from 1) of dR/dW_l that are
    not zero, for l = 1..layer."""
    s = paper_symbols(net, x)
    grads = _one_penalty(net, x, layer, neuron)
    return {n: [r + 1 for r in range(s.W[n].shape[0])
                if grads[f"{s.name[n]}.weight"][r].abs().max() > 0]
            for n in range(1, layer + 1)}


def row_hints(net: nn.Module, layer: int, neuron: int) -> dict[int, tuple[Slip, ...]]:
    """`check_prediction` hints for `nonzero_rows`: layer n -> the likely wrong rows of
    dR_{layer,neuron}/dW_n, each named. For n = layer: every row, or none; below it: the neuron's
    own row only, or none; anywhere: the right rows counted from 0, or every column
    counted as a row."""
    p, k = layer, neuron
    z = f"z_{p},{k}"
    every = list(range(1, linear_layers(net)[p - 1].weight.shape[0] + 1))
    hints = {p: ((lambda rows: every, f"only row {k} of W_{p} makes {z}; the other rows make "
                  f"the other neurons of layer {p} (Eq. 14, p = l: only h = k)"),
                 (lambda rows: [], f"row {k} of W_{p} holds {z}'s own weights, and its penalty "
                  "moves them (Eq. 9)"))}
    for n in range(1, p):
        hints[n] = ((lambda rows: [k], f"row {k} of W_{n} makes only y_{n},{k}, but {z} reads "
                     f"every output of layer {n}, so every row of W_{n} moves it (Eq. 14, p > l)"),
                    (lambda rows: [], f"W_{n} comes before layer {p}, so it moves {z}; Eq. 14 is "
                     "zero only for the penalty of an earlier layer (p < l)"))
    counted_from_0 = (lambda rows: [r - 1 for r in rows], "rows count from 1 here (row 1 is "
                      "the first), as neurons do")
    shapes = {n: tuple(layer.weight.shape) for n, layer in enumerate(linear_layers(net), start=1)}
    return {n: (*h, counted_from_0, *_columns_for_rows(n, shapes[n])) for n, h in hints.items()}


def _columns_for_rows(n: int, shape: tuple[int, int]) -> tuple[Slip, ...]:
    """The slip of counting W_n's columns (its inputs) for its rows, where the two differ."""
    rows, columns = shape
    if rows == columns:
        return ()
    return ((lambda found: list(range(1, columns + 1)), f"W_{n} is {rows} x {columns}: one row "
             f"per neuron of layer {n}, one column per input"),)


def eq14_lines(net: nn.Module, x: Tensor, l: int, k: int, j: int) -> str:  # noqa: E741
    """Eq. 14 for w_{l,k,j} of a tanh network, one line per source layer p: the paper's three
    cases by hand (zero; z y; for p = l + 1, sum_h z_{p,h} w_{p,h,k} tanh'(z_{l,k}) y_{l-1,j})
    and `psp_contributions`, both against autograd of R_p alone."""
    s = paper_symbols(net, x)
    records = forward_record(net, x)[1]
    contributions = psp_contributions(records, lam=1.0)
    slope = 1 - torch.tanh(s.z[l][k - 1]) ** 2
    w_name = f"{s.name[l]}.weight"
    lines = []
    for p, source in enumerate(contributions, start=1):
        if p < l:
            by_hand, case = torch.zeros((), dtype=s.z[l].dtype), "p < l"
        elif p == l:
            by_hand, case = s.z[l][k - 1] * s.y[l - 1][j - 1], "p = l"
        elif p == l + 1:
            by_hand, case = (s.z[p] @ s.W[p][:, k - 1]) * slope * s.y[l - 1][j - 1], "p > l"
        else:
            by_hand, case = None, "p > l"
        reference = autograd_psp_gradients(net, x, 1.0, source=p - 1)[w_name][k - 1, j - 1]
        rows = [compare_gradients("analytic", contributions[source][w_name][k - 1, j - 1],
                                  reference)]
        if by_hand is not None:
            rows.append(compare_gradients("by hand", by_hand, reference))
        what = "by hand and analytic" if by_hand is not None else "analytic"
        lines.append(check_line(f"Eq. 14, p = {p} ({case}), {what} vs autograd", rows)
                     + f"  value {reference.item():+.3e}")
    return "\n".join(lines)


def eq15_16_lines(net: nn.Module, x: Tensor, l: int, k: int) -> str:  # noqa: E741
    """Eq. 15 for every parameter (analytic vs autograd) and Eq. 16 for neuron (l, k)."""
    s = paper_symbols(net, x)
    dz = autograd_gradient(net, x, lambda out, zs: zs[l - 1][0, k - 1])
    one = torch.ones((), dtype=s.z[l].dtype)
    return "\n".join([
        check_line("Eq. 15, every parameter, analytic vs autograd",
                   check_psp_gradients(net, x, 1.0, "paper")),
        check_line("Eq. 16, dz/db = 1 and dz/dw = y_{l-1}", [
            compare_gradients("bias", one, dz[f"{s.name[l]}.bias"][k - 1]),
            compare_gradients("weight", s.y[l - 1], dz[f"{s.name[l]}.weight"][k - 1])])])
