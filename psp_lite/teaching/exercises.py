"""Exercises: self-checking cells for notebooks 01-03. Each check returns one line of text.

`check_tensor` compares one tensor (prediction cells: `predictions.check_prediction`).
`check_eq15_mlp` runs a student's Eq. 15 for a tanh MLP on the notebook's net and on a deeper
one of distinct widths, compares every tensor with autograd and, on a mismatch, names the
mistake: the variant of `eq15.VARIANTS` (the recursion by hand with one planted mistake) that
gives the student's answer, up to a named constant factor, with the fewest mistakes.
`student_code` runs the student's function without ever raising.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from psp_lite.teaching.eq15 import (
    MISTAKES,
    SQUARE_WIDTHS,
    VARIANTS,
    Eq15Case,
    Recipe,
    eq15_by_autograd,
    eq15_by_hand,
    eq15_case,
    eq15_cases,
)
from psp_lite.teaching.student_code import Eq15Function, Run, run_student


def _relative_error(answer: Tensor, reference: Tensor) -> float:
    """max |answer - reference| / max |reference| (inf where the answer holds nan or inf)."""
    scale = reference.abs().max().item()
    diff = (answer - reference).abs().max().item()
    if not math.isfinite(diff):
        return math.inf
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
    return f"{name}: differs (max rel. error {err:.1e}){_factor_hint([answer], [reference])}"


# ---------------------------------------------------------------------- a constant factor off


#: name -> (value, MISTAKES key when the answer has it once too often, key when it lacks it).
Factors = dict[str, tuple[float, str, str]]


def _scale(answers: Sequence[Tensor], references: Sequence[Tensor]) -> float | None:
    """s if every answer is s times its reference (one s for all, within TOL), else None."""
    if any(a.shape != r.shape for a, r in zip(answers, references, strict=True)):
        return None
    ans = torch.cat([a.flatten() for a in answers])
    ref = torch.cat([r.flatten() for r in references])
    if not (ref.dot(ref) > 0 and torch.isfinite(ans).all()):
        return None
    s = (ans.dot(ref) / ref.dot(ref)).item()
    if s == 0 or any(_relative_error(a, s * r) > TOL for a, r in zip(answers, references,
                                                                       strict=True)):
        return None
    return s


def _readings(s: float, factors: Factors) -> set[tuple[str, ...]]:
    """Every way to read s as a sign times a product of factors^(+1 or -1), as MISTAKES keys
    (the empty tuple for s = 1)."""
    sign = ("sign",) if s < 0 else ()
    found = set()
    for exps in itertools.product((0, 1, -1), repeat=len(factors)):
        value = math.prod(v ** e for (v, _, _), e in zip(factors.values(), exps, strict=True))
        if math.isclose(abs(s), value, rel_tol=1e-9):
            found.add(sign + tuple(more if e > 0 else less for (_, more, less), e
                                   in zip(factors.values(), exps, strict=True) if e))
    return found


def _simplest(readings: set[tuple[str, ...]]) -> tuple[str, ...]:
    return min(readings, key=lambda r: (len(r), r))


def _factor_hint(answers: Sequence[Tensor], references: Sequence[Tensor],
                 factors: Factors | None = None) -> str:
    """': a factor 2 too many' (or a sign, ..., or 'off by a constant factor 3') if the
    answers are a constant multiple of the references, else ''."""
    s = _scale(answers, references)
    if s is None:
        return ""
    readings = _readings(s, factors or {"2": (2.0, "2 too many", "2 missing")})
    keys = _simplest(readings) if readings else ("sign",) * (s < 0) + ("constant factor",)
    return ": " + "; ".join(_name(k, abs(s)) for k in keys)


def _name(key: str, scale: float = 1.0) -> str:
    name = MISTAKES[key].name
    return f"{name} {scale:.4g}" if key == "constant factor" else name


# ---------------------------------------------------------------------------- Eq. 15 for an MLP

#: Relative error (per tensor, to its largest entry) below which two float64 tensors agree.
TOL = 1e-10


class Eq15Check(str):
    """What `check_eq15_mlp` returns: its one line of text, with the verdict attached: `ok`,
    the `mistakes` it names (keys of `MISTAKES`, or 'no answer', 'not a function', 'not
    written', 'raises', 'wrong return', 'unrecognised') and the `max_rel_error` against
    autograd (inf where the function failed on a net)."""

    ok: bool
    mistakes: tuple[str, ...]
    max_rel_error: float

    def __new__(cls, line: str, *, ok: bool = False, mistakes: Sequence[str] = (),
                max_rel_error: float = math.inf) -> Eq15Check:
        self = super().__new__(cls, line)
        self.ok, self.mistakes, self.max_rel_error = ok, tuple(mistakes), max_rel_error
        return self

    def __repr__(self) -> str:
        return str.__str__(self)


def check_eq15_mlp(student_fn: Eq15Function | None,
                   cases: Sequence[Eq15Case] | None = None) -> Eq15Check:
    """Run `student_fn(weights, biases, x, lam)` on each case (default: the notebook's net and
    a deeper one of distinct widths) and compare every dP/dW_l and dP/db_l with autograd. One
    line back: 'matches' only if all agree; else the mistake named (a factor, a sign, a
    transpose, or a step of Eqs. 13-15), or what the function raised or returned instead."""
    head = "Eq. 15 for the MLP: "
    if student_fn is None:
        return Eq15Check(head + "no answer yet: write the function above, then run this cell",
                         mistakes=["no answer"])
    if not callable(student_fn):
        return Eq15Check(head + f"expected your function itself (its name, no parentheses), "
                         f"got a {type(student_fn).__name__}", mistakes=["not a function"])
    runs = [run_student(student_fn, case) for case in (cases or eq15_cases())]
    failed = [r for r in runs if r.grads is None]
    if unwritten := [r for r in failed if r.kind == "not written"]:
        return Eq15Check(head + unwritten[0].problem, mistakes=["not written"])
    ran = [r for r in runs if r.grads is not None]
    worst = max((e for r in ran for _, e in _errors(r)), default=math.inf)
    if not failed and worst <= TOL:
        names = " and ".join(r.case.name for r in runs)
        return Eq15Check(head + f"matches (every dW and db on {names}; max rel. error "
                         f"{worst:.0e})", ok=True, max_rel_error=worst)
    return _diagnosis(ran, failed, student_fn, worst if not failed else math.inf)


def _diagnosis(ran: list[Run], failed: list[Run], student_fn: Eq15Function,
               worst: float) -> Eq15Check:
    """The line for an answer that does not match: the mistake, if a variant explains the
    answer, else the first wrong tensor going down; and what went wrong on which net."""
    head = "Eq. 15 for the MLP: does not match yet"
    failure = f"on {failed[0].case.name} it {failed[0].problem}" if failed else ""
    seen = ran or [r for r in [run_student(student_fn, eq15_case(2, SQUARE_WIDTHS))] if r.grads]
    found = _explain(seen) if seen else None
    if found and found[0]:
        keys, scale = found
        named = "; also ".join(f"{_name(k, scale)}: {MISTAKES[k].hint}" for k in keys)
        if ran:
            line = f"{head}. Likely {named} ({_first_wrong(ran)})"
            return Eq15Check(line + (f"; {failure}" if failure else ""), mistakes=keys,
                             max_rel_error=worst)
        line = (f"{head}: {failure}. Run on {_names(seen)}, where every width is equal, it "
                f"shows {named}")
        return Eq15Check(line, mistakes=[failed[0].kind, *keys])
    if not ran:
        return Eq15Check(f"Eq. 15 for the MLP: your function {failed[0].problem} (on "
                         f"{failed[0].case.name})", mistakes=[failed[0].kind])
    if found is not None and failed:  # right wherever it ran
        return Eq15Check(f"{head}: right on {_names(ran)}, but {failure}",
                         mistakes=[failed[0].kind], max_rel_error=worst)
    first = _first_wrong(ran, hint=True)
    # a factor named on the first wrong tensor is a diagnosis: no "not like a mistake" before it
    line = f"{head}: {first}" if _first_factor(ran) else \
        f"{head}, and not like a mistake this check knows: {first}"
    if len(ran) > 1 and not any(e > TOL for _, e in _errors(ran[0])):
        line += (f"; it is right on {ran[0].case.name} but not on {_names(ran[1:])}, whose "
                 "widths all differ: does every size come from layer l's own tensors?")
    return Eq15Check(line + (f"; {failure}" if failure else ""), mistakes=["unrecognised"],
                     max_rel_error=worst)


def _names(runs: Sequence[Run]) -> str:
    return " and ".join(r.case.name for r in runs)


def _first_wrong(runs: Sequence[Run], *, hint: bool = False) -> str:
    """'first wrong going down: dP/dW_3 on 6→7→7→7, max rel. error 1.0e+00', and with `hint`
    where to look (and a constant factor on that tensor, if there is one)."""
    for run in runs:
        errors = dict(_errors(run))
        wrong = [name for name, err in errors.items() if err > TOL]
        if not wrong:
            continue
        name = wrong[0]
        i, kind = int(name.rsplit("_", 1)[1]) - 1, "Wb".index(name[4])
        answer, reference = run.grads[i][kind], eq15_by_autograd(run.case)[i][kind]
        off = (f"shape {tuple(answer.shape)}" if answer.shape != reference.shape
               else "nan or inf in it" if not torch.isfinite(answer).all()
               else f"max rel. error {errors[name]:.1e}")
        line = f"first wrong going down: {name} on {run.case.name}, {off}"
        if not hint:
            return line
        line += _factor_hint([answer], [reference], _factors(run.case))
        other = f"dP/d{'bW'[kind]}_{i + 1}"
        if errors[other] <= TOL:
            made = (f"dP/dW_{i + 1} = delta_{i + 1}^T y_{i}, y_{i} being the input layer {i + 1} "
                    "reads" if kind == 0 else
                    f"dP/db_{i + 1} is delta_{i + 1} summed over the batch, not averaged: Eq. 16")
            return line + f"; {other} is right, so delta_{i + 1} is: look at how {name} is " \
                f"made from it ({made})"
        if i == len(run.grads) - 1:
            return line + f"; look at delta_{i + 1}, the top layer's own term c_{i + 1} z_{i + 1}"
        return line + (f"; the layers above match, so look at the step that makes "
                       f"delta_{i + 1} from delta_{i + 2}: its own term c_{i + 1} z_{i + 1}, plus "
                       f"what delta_{i + 2} sends back (compare with notebook 02's Eq. 14, case "
                       "p > l)")
    return "every tensor right"


def _first_factor(runs: Sequence[Run]) -> bool:
    """True if the first wrong tensor is a constant multiple (not 1 + rounding) of autograd's:
    `_first_wrong` then names a factor, a diagnosis."""
    for run in runs:
        wrong = [name for name, err in _errors(run) if err > TOL]
        if wrong:
            i, kind = int(wrong[0].rsplit("_", 1)[1]) - 1, "Wb".index(wrong[0][4])
            s = _scale([run.grads[i][kind]], [eq15_by_autograd(run.case)[i][kind]])
            return s is not None and not math.isclose(s, 1.0, rel_tol=1e-6)
    return False


def _errors(run: Run) -> list[tuple[str, float]]:
    """(tensor name, relative error to autograd), top layer first."""
    out = []
    for layer in reversed(range(len(run.grads))):
        for kind, ans, ref in zip("Wb", run.grads[layer], eq15_by_autograd(run.case)[layer],
                                  strict=True):
            err = _relative_error(ans, ref) if ans.shape == ref.shape else math.inf
            out.append((f"dP/d{kind}_{layer + 1}", err))
    return out


def _factors(case: Eq15Case) -> Factors:
    """The constants a slip in c_l can add or drop: 2, B, N and lambda."""
    return {"2": (2.0, "2 too many", "2 missing"),
            "B": (float(len(case.x)), "1/B missing", "1/B twice"),
            "N": (float(len(case.weights)), "1/N missing", "1/N twice"),
            "lambda": (1 / case.lam, "lambda missing", "lambda twice")}


def _explain(runs: Sequence[Run]) -> tuple[list[str], float] | None:
    """(MISTAKES keys, constant factor) of the simplest explanation of the student's answers:
    a variant of `VARIANTS` that gives them on every run, up to a named constant factor (any
    one for the right recursion) and dW transposed. Fewest keys wins (the paper's Eq. 7 is one
    mistake, not three factor slips), then the order of `VARIANTS`; ([], 1.0) means the right
    recursion itself, None that nothing explains them."""
    found = [e for key, recipe in VARIANTS for transposed in (False, True)
             if (e := _explained_by(runs, key, recipe, transposed)) is not None]
    return min(found, key=lambda e: len(e[0]) + ("constant factor" in e[0]), default=None)


def _explained_by(runs: Sequence[Run], key: str, recipe: Recipe,
                  transposed: bool) -> tuple[list[str], float] | None:
    """(keys, factor) if this variant gives the student's answers on every run, else None."""
    scales, readings = [], None
    for run in runs:
        ref = eq15_by_hand(run.case, recipe)
        ans = [(dw.T, db) if transposed else (dw, db) for dw, db in run.grads]
        s = None if ref is None else _scale([t for p in ans for t in p],
                                            [t for p in ref for t in p])
        if s is None:
            return None
        scales.append(s)
        these = _readings(s, _factors(run.case))
        readings = these if readings is None else readings & these
    keys = ([key] if key != "right" else []) + ["dW transposed"] * transposed
    if readings:
        return keys + list(_simplest(readings)), 1.0
    if key == "right" and not math.isclose(abs(scales[0]), 1, rel_tol=1e-6) and \
            all(math.isclose(s, scales[0], rel_tol=1e-9) for s in scales):
        return keys + ["sign"] * (scales[0] < 0) + ["constant factor"], abs(scales[0])
    return None
