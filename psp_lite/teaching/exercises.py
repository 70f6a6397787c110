"""Exercises: self-checking cells for notebooks 01-03.

`check_prediction` and `check_tensor` compare a student's answer with what was measured.
`check_eq15_mlp` runs a student's implementation of Eq. 15's backward recursion for an MLP on a
fixed float64 case, compares every parameter tensor with autograd and, on a mismatch, names the
kind of mistake it looks like (a factor 2, 1/B, 1/N or 1/K, lambda, a sign, a transposed term, a
missing reach-back, own term or activation slope).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from psp_lite.regularizers import psp_penalty
from psp_lite.teaching.answers import (
    Unreadable,
    as_number,
    as_numbers,
    as_word,
    is_placeholder,
    kind_of,
    normal_word,
)

#: A student's Eq. 15: (weights, biases, x, lam) -> [(dP/dW_l, dP/db_l) for l = 1..N].
Eq15Function = Callable[[list[Tensor], list[Tensor], Tensor, float],
                        Sequence[tuple[Tensor, Tensor]]]


def check_prediction(prediction: object, measured: object, *, what: str = "",
                     rel_tol: float = 1e-9, choices: Sequence[str] | None = None,
                     ordered: bool = True) -> str:
    """One line: 'right ...' if `prediction` is what was measured, 'not what the measurement
    says ...' if it is not, 'no prediction yet ...' for the placeholder (None or ...), and for an
    answer it cannot read, 'can't read the prediction ...' with the form it expects.

    The form follows `measured`: a number (int or float: equal within `rel_tol`, by default up to
    float rounding), a list of numbers (element by element, in order unless `ordered=False`) or a
    word (case and spaces ignored; `choices`, if given, are the words a student may write). What
    counts as a number or a list is in `psp_lite.teaching.answers`: "3", [3] and 3.0 all read as 3.
    """
    about = f" ({what})" if what else ""
    if is_placeholder(prediction):
        shown = "..." if prediction is Ellipsis else repr(prediction)
        return (f"no prediction yet{about}: replace {shown} with your answer, then run this cell "
                "again")
    kind = kind_of(measured)
    try:
        ok, predicted, expected = _read_and_compare(prediction, measured, kind, rel_tol, choices,
                                                    ordered)
    except Unreadable as why:
        return (f"can't read the prediction{about}: {why}; write {_form(kind, choices)}, then "
                "run this cell again")
    if ok:
        return f"right{about}: the measurement says {_show(expected, 4)}"
    shown_m, shown_p = _show_pair(expected, predicted)
    return (f"not what the measurement says{about}: measured {shown_m}, predicted {shown_p}. "
            "The solution at the end of the notebook explains why.")


def _read_and_compare(prediction: object, measured: object, kind: str, rel_tol: float,
                      choices: Sequence[str] | None, ordered: bool
                      ) -> tuple[bool, object, object]:
    """(right?, the prediction as read, the measurement as read); Unreadable if it cannot be."""
    if kind == "number":
        p, m = as_number(prediction), as_number(measured)
        return math.isclose(p, m, rel_tol=rel_tol, abs_tol=0.0), p, m
    if kind == "numbers":
        p, m = as_numbers(prediction), as_numbers(measured)
        if not ordered:
            p, m = sorted(p), sorted(m)
        same = len(p) == len(m) and all(math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
                                        for a, b in zip(p, m, strict=False))
        return same, p, m
    if kind == "word":
        same = as_word(prediction, choices) == normal_word(measured)
        return same, str(prediction).strip(), measured
    if type(prediction) is not type(measured):
        raise Unreadable(f"it is a {type(prediction).__name__}, the measurement a "
                         f"{type(measured).__name__}")
    return bool(prediction == measured), prediction, measured


def _form(kind: str, choices: Sequence[str] | None) -> str:
    """The form an answer should take, for the line that refuses one."""
    if kind == "number":
        return "one number, such as 2, 0.25 or 1e-3 (as text works too)"
    if kind == "numbers":
        return "a list of numbers in brackets, such as [1, 2]"
    if kind == "word" and choices:
        return "one of " + " or ".join(repr(c) for c in choices) + ", in quotes"
    if kind == "word":
        return "your answer as text, in quotes"
    return "an answer of the kind the comment in the answer cell asks for"


def _show_pair(a: object, b: object) -> tuple[str, str]:
    """Both values with 4 significant digits, or as many more as it takes to tell them apart."""
    for digits in (4, 6, 9, 12, 17):
        shown = _show(a, digits), _show(b, digits)
        if shown[0] != shown[1]:
            break
    return shown


def _show(value: object, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, digits) for v in value) + "]"
    return str(value)


def _relative_error(answer: Tensor, reference: Tensor) -> float:
    scale = reference.abs().max().item()
    diff = (answer - reference).abs().max().item()
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def check_tensor(name: str, answer: Tensor | None, reference: Tensor,
                 rtol: float = 1e-8) -> str:
    """'matches (max rel. error ...)' if `answer` equals `reference`, else what differs."""
    if answer is None:
        return f"{name}: no answer yet (replace None with your expression)"
    answer = torch.as_tensor(answer).to(reference.dtype)
    if answer.shape != reference.shape:
        return f"{name}: shape {tuple(answer.shape)}, expected {tuple(reference.shape)}"
    err = _relative_error(answer, reference)
    if err <= rtol:
        return f"{name}: matches (max rel. error {err:.0e})"
    hint = _scalar_hint(answer, reference, {"2": 2.0})
    return f"{name}: differs (max rel. error {err:.1e}){hint}"


# ---------------------------------------------------------------------------- Eq. 15 for an MLP


@dataclass(frozen=True)
class Eq15Case:
    """The fixed float64 case a student's Eq. 15 is checked on: a tanh MLP 6 -> 7 -> 7 -> 7
    (N = 3 layers of K = 7 neurons), a batch of B = 5 inputs, lambda = 1e-3, layer-mean penalty.
    The sizes are distinct primes, so a wrong constant factor can be read off uniquely."""

    weights: list[Tensor]
    biases: list[Tensor]
    x: Tensor
    lam: float


def eq15_case(seed: int = 0) -> Eq15Case:
    """A fresh `Eq15Case` (new tensors each call, so a student's in-place edit cannot leak)."""
    g = torch.Generator().manual_seed(seed)
    widths = (6, 7, 7, 7)
    weights = [torch.randn(b, a, dtype=torch.float64, generator=g) / math.sqrt(a)
               for a, b in itertools.pairwise(widths)]
    biases = [torch.randn(b, dtype=torch.float64, generator=g) / 2 for b in widths[1:]]
    x = torch.randn(5, widths[0], dtype=torch.float64, generator=g)
    return Eq15Case(weights, biases, x, 1e-3)


def eq15_by_autograd(case: Eq15Case) -> list[tuple[Tensor, Tensor]]:
    """dP/dW_l, dP/db_l of P = lam mean_l <z_l^2> (the authors' layer mean), by autograd."""
    params = [t.clone().requires_grad_(True) for pair in zip(case.weights, case.biases,
                                                             strict=True) for t in pair]
    y, zs = case.x, []
    for i in range(0, len(params), 2):
        z = y @ params[i].T + params[i + 1]
        zs.append(z)
        y = torch.tanh(z)
    grads = torch.autograd.grad(psp_penalty(zs, case.lam, "reference"), params)
    return [(grads[i], grads[i + 1]) for i in range(0, len(grads), 2)]


#: Structural mistakes the diagnosis can recognise: name -> what it looks like.
STRUCTURAL_MISTAKES = {
    "no_reach_back": "the reach-back is missing: delta_l must add phi'(z_l) * (delta_{l+1} "
                     "W_{l+1}) from the layer above (Eq. 14, p > l), not only c_l z_l",
    "no_own_term": "the own term is missing: every layer adds its own c_l z_l to delta_l, not "
                   "only the output layer (Eq. 15's first term)",
    "no_slope": "the activation slope is missing: going down, multiply by tanh'(z_l) = "
                "1 - tanh(z_l)^2",
    "transposed_backward": "a transposed term going down: delta_{l+1} (B x K_{l+1}) times W_{l+1} "
                           "(K_{l+1} x K_l), not W_{l+1}^T",
}


def _eq15_variant(case: Eq15Case, mistake: str) -> list[tuple[Tensor, Tensor]]:
    """Eq. 15 by hand with one structural mistake planted (used only to name a student's)."""
    n, b = len(case.weights), len(case.x)
    ys, zs, y = [], [], case.x
    for i, (w, bias) in enumerate(zip(case.weights, case.biases, strict=True)):
        z = y @ w.T + bias
        ys.append(y)
        zs.append(z)
        y = torch.tanh(z) if i < n - 1 else z
    grads: list[tuple[Tensor, Tensor]] = [None] * n  # type: ignore[list-item]
    delta = None
    for layer in reversed(range(n)):
        own = 2 * case.lam / (n * b * zs[layer].shape[1]) * zs[layer]
        if delta is None:
            delta = own
        else:
            above = case.weights[layer + 1]
            back = delta @ (above.T if mistake == "transposed_backward" else above)
            slope = 1.0 if mistake == "no_slope" else 1 - torch.tanh(zs[layer]) ** 2
            delta = (0 if mistake == "no_own_term" else own) + \
                (0 if mistake == "no_reach_back" else slope * back)
        grads[layer] = (delta.T @ ys[layer], delta.sum(0))
    return grads


TRANSPOSED_WEIGHT_GRADIENT = ("transposed: dP/dW_l = delta_l^T y_{l-1} (K_l x K_{l-1}), not "
                              "y_{l-1}^T delta_l")


def _named_factors(case: Eq15Case) -> dict[str, float]:
    return {"2": 2.0, "B": float(len(case.x)), "N": float(len(case.weights)),
            "K": float(case.weights[0].shape[0])}


_FACTOR_WORDS = {
    "2": ("a factor 2 too many", "a factor 2 missing: d(z^2)/dz = 2z, and the layer mean keeps "
          "that 2"),
    "B": ("the 1/B of the batch mean is missing", "divided by the batch size B once too often"),
    "N": ("the 1/N of the mean over the N layers is missing",
          "divided by the number of layers N once too often"),
    "K": ("the 1/K_l of the mean over a layer's K_l neurons is missing",
          "divided by K_l once too often"),
}


def _scalar_hint(answer: Tensor, reference: Tensor, factors: dict[str, float],
                 lam: float | None = None) -> str:
    """If answer = s * reference for a constant s, name s (sign, lambda, products of factors)."""
    ref = reference.flatten().double()
    ans = answer.flatten().double()
    denom = ref.dot(ref).item()
    if denom == 0:
        return ""
    s = ans.dot(ref).item() / denom
    if (ans - s * ref).norm().item() > 1e-6 * ref.norm().item() or s == 0:
        return ""
    words = []
    if s < 0:
        words.append("a sign: the gradient points the wrong way (dP/dz = +c z, not -c z)")
        s = -s
    if math.isclose(s, 1.0, rel_tol=1e-6):
        return ": " + "; ".join(words)
    if lam is not None and math.isclose(s, 1 / lam, rel_tol=1e-6):
        return ": " + "; ".join([*words, "lambda is missing"])
    names = list(factors)
    for exps in itertools.product((0, 1, -1), repeat=len(names)):
        value = math.prod(factors[k] ** e for k, e in zip(names, exps, strict=True))
        if any(exps) and math.isclose(s, value, rel_tol=1e-6):
            for k, e in zip(names, exps, strict=True):
                if e:
                    # answer = value * reference: e = +1 means the student did not divide by k
                    words.append(_FACTOR_WORDS[k][0] if e > 0 else _FACTOR_WORDS[k][1])
            return ": " + "; ".join(words)
    return ": " + "; ".join([*words, f"off by a constant factor {s:.4g}"])


@dataclass
class Eq15Check:
    """The outcome of `check_eq15_mlp`: one line per parameter tensor, and an overall verdict."""

    lines: list[str]
    ok: bool
    diagnoses: list[str]
    max_rel_error: float
    per_tensor: bool = True

    def __str__(self) -> str:
        if self.ok:
            return f"Eq. 15 for the MLP: matches (max rel. error {self.max_rel_error:.0e})"
        if not self.per_tensor:
            return "Eq. 15 for the MLP: " + "; ".join(self.lines)
        likely = "\n".join(f"  * {d}" for d in self.diagnoses)
        return "\n".join([f"Eq. 15 for the MLP: does not match yet. Likely:\n{likely}",
                          "Per tensor:", *(f"  {line}" for line in self.lines)])


def _diagnose_tensor(name: str, answer: Tensor, reference: Tensor, case: Eq15Case,
                     variants: dict[str, Tensor]) -> tuple[str, list[str]]:
    factors = _named_factors(case)
    if answer.shape != reference.shape:
        if answer.dim() == 2 and answer.shape == reference.T.shape:
            why = TRANSPOSED_WEIGHT_GRADIENT
            return f"{name}: shape {tuple(answer.shape)}, expected {tuple(reference.shape)}: " \
                   f"{why}", [why]
        return f"{name}: shape {tuple(answer.shape)}, expected {tuple(reference.shape)}", \
            ["wrong shape"]
    err = _relative_error(answer, reference)
    if err <= 1e-10:
        return f"{name}: matches (max rel. error {err:.0e})", []
    if answer.dim() == 2 and answer.shape[0] == answer.shape[1] and \
            _relative_error(answer.T, reference) <= 1e-10:
        why = TRANSPOSED_WEIGHT_GRADIENT
        return f"{name}: differs (max rel. error {err:.1e}): {why}", [why]
    hint = _scalar_hint(answer, reference, factors, case.lam)
    if hint:
        return f"{name}: differs (max rel. error {err:.1e}){hint}", hint[2:].split("; ")
    for mistake, variant in variants.items():
        why = STRUCTURAL_MISTAKES[mistake]
        if _relative_error(answer, variant) <= 1e-10:
            return f"{name}: differs (max rel. error {err:.1e}): {why}", [why]
        extra = _scalar_hint(answer, variant, factors, case.lam)
        if extra:
            more = extra[2:].split("; ")
            return f"{name}: differs (max rel. error {err:.1e}): {why}; " + "; ".join(more), \
                [why, *more]
    return (f"{name}: differs (max rel. error {err:.1e}), not by a simple factor: compare "
            "your delta_l with the recursion written out above", ["unrecognised"])


def check_eq15_mlp(fn: Eq15Function | None, case: Eq15Case | None = None) -> Eq15Check:
    """Run the student's `fn(weights, biases, x, lam)` on `case` (default `eq15_case()`) and
    compare each returned (dP/dW_l, dP/db_l) with autograd, naming the likely mistake."""
    case = case or eq15_case()
    if fn is None:
        return Eq15Check(["no answer yet: write the function above, then run this cell"],
                         False, ["no answer"], math.inf, per_tensor=False)
    reference = eq15_by_autograd(case)
    try:
        answer = fn([w.clone() for w in case.weights], [b.clone() for b in case.biases],
                    case.x.clone(), case.lam)
        answer = [(torch.as_tensor(dw), torch.as_tensor(db)) for dw, db in answer]
    except Exception as err:  # the student's code: report, never crash the check
        text = f"{type(err).__name__}: {err}"
        if "ellipsis" in text:
            why = "not written yet: replace every ... in the skeleton"
        elif "shape" in text or "size" in text:
            why = ("a shape error, often a transposed term: delta_{l+1} (B x K_{l+1}) times "
                   "W_{l+1} (K_{l+1} x K_l) gives B x K_l")
        else:
            why = "your function raised an error"
        return Eq15Check([f"{why} ({text})"], False, [why], math.inf, per_tensor=False)
    if len(answer) != len(reference):
        why = f"{len(answer)} (dW, db) pairs returned, expected one per layer ({len(reference)})"
        return Eq15Check([why], False, [why], math.inf, per_tensor=False)
    variant_grads = {m: _eq15_variant(case, m) for m in STRUCTURAL_MISTAKES}
    lines, diagnoses, worst = [], [], 0.0
    for layer, ((dw, db), (rw, rb)) in enumerate(zip(answer, reference, strict=True), start=1):
        for kind, ans, ref, i in (("W", dw, rw, 0), ("b", db, rb, 1)):
            ans = ans.detach().to(torch.float64)
            variants = {m: v[layer - 1][i] for m, v in variant_grads.items()}
            line, why = _diagnose_tensor(f"dP/d{kind}_{layer}", ans, ref, case, variants)
            lines.append(line)
            diagnoses += [w for w in why if w not in diagnoses]
            worst = max(worst, _relative_error(ans, ref) if ans.shape == ref.shape else math.inf)
    return Eq15Check(lines, not diagnoses, diagnoses, worst)
