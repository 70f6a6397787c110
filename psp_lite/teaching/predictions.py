"""Prediction cells for notebooks 01-03: `check_prediction` reads what a student typed (see
`answers`) and compares it with what was measured, in one line; `written` holds a measurement
back until a prediction is there."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from psp_lite.teaching.answers import (
    Unreadable,
    as_number,
    as_numbers,
    as_word,
    is_placeholder,
    kind_of,
    normal_word,
    short_repr,
)


def written(*answers: object) -> bool:
    """True once every answer is written (none is the placeholder None, ... or blank text): a
    check cell shows the measurement that answers a prediction only after it is made."""
    return not any(is_placeholder(a) for a in answers)


#: What a check cell prints instead of its measurement while a prediction is still unwritten.
NOT_YET_SHOWN = "(the measurement is shown once your prediction is written)"


#: A slip a number check can name: (what the slip makes of the measurement, the line's words).
Slip = tuple[Callable[[Any], object], str]


def check_prediction(prediction: object, measured: object, *, what: str = "",
                     rel_tol: float = 1e-9, choices: Sequence[str] | None = None,
                     ordered: bool = True, near: float | None = None,
                     hints: Sequence[Slip] = (), among: Sequence[float] | None = None) -> str:
    """One line: 'right ...' if `prediction` is what was measured, 'not what the measurement
    says ...' if it is not, 'no prediction yet ...' for the placeholder (None or ...), and for an
    answer it cannot read, 'can't read the prediction ...' with the form it expects.

    The form follows `measured`: a number (int or float: equal within `rel_tol`, by default up to
    float rounding), a list of numbers (element by element, in order unless `ordered=False`) or a
    word (case and spaces ignored; `choices`, if given, are the words a student may write). What
    counts as a number or a list is in `psp_lite.teaching.answers`: "3", [3] and 3.0 all read as 3.

    For a number, `near`: a prediction within this relative distance, though not within
    `rel_tol`, gets 'close ...' (how far off, and to give more digits or the formula), not 'not
    what the measurement says'. For any form, `hints`: (slip, words) pairs; a wrong prediction
    equal to slip(measured) (compared as the measurement is; for a number within `near`, else
    `rel_tol`) gets the words and a second try instead of the measurement and the pointer to the
    solutions, e.g. (math.sqrt, "that is z's factor; <z^2> is its square") or (lambda rows: [2],
    "that is the neuron's own row"). For a number or a list, `among`: the values an answer can
    take (e.g. layers 1 to 4); a wrong one outside them, and not a named slip, is refused
    without the measurement.
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
    if kind == "number":
        off = abs(predicted - expected) / abs(expected) if expected else math.inf
        if near is not None and off <= near:
            return (f"close{about}: measured {shown_m}, predicted {shown_p}, {off:.1%} off; give "
                    "more digits, or the formula without quotes, then run this cell again")
    for slip, words in hints:
        if _is_slip(prediction, predicted, slip, expected, kind,
                    near if near is not None else rel_tol, choices, ordered):
            return (f"not what the measurement says{about}: predicted {shown_p}: {words}; "
                    "change the prediction, then run this cell again")
    outside = _outside(predicted, kind, among)
    if outside is not None:
        return (f"not a possible answer{about}: {_show(outside, 4)} is not one of "
                f"{_listed(among)}; change the prediction, then run this cell again")
    return (f"not what the measurement says{about}: measured {shown_m}, predicted {shown_p}. "
            "The solution at the end of the notebook explains why.")


def _is_slip(prediction: object, predicted: object, slip: Callable[[Any], object],
             expected: object,
             kind: str, tol: float, choices: Sequence[str] | None, ordered: bool) -> bool:
    """Whether the prediction is what `slip` makes of the measurement (never raises: a slip
    that fails or gives something of another form is no match)."""
    try:
        slipped = slip(expected)
        if kind == "number":
            return _near_value(predicted, slipped, tol)
        return kind_of(slipped) == kind and _read_and_compare(prediction, slipped, kind, tol,
                                                             choices, ordered)[0]
    except Exception:  # a slip that does not apply to this measurement
        return False


def _outside(predicted: object, kind: str, among: Sequence[float] | None) -> float | None:
    """The first value of a number or list answer that is none of `among` (None if all are)."""
    if among is None or kind not in ("number", "numbers"):
        return None
    values = predicted if kind == "numbers" else [predicted]
    return next((v for v in values if not any(math.isclose(v, a) for a in among)), None)


def _listed(values: Sequence[float]) -> str:
    """'1, 2, 3 or 4'."""
    shown = [_show(v, 4) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _near_value(a: float, b: float, rel_tol: float) -> bool:
    """a and b agree within rel_tol (False where the slip gives no finite number)."""
    try:
        return math.isfinite(b) and math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
    except TypeError:  # a slip that returns something other than a real number
        return False


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
            twice = next((a for a, b in itertools.pairwise(p) if math.isclose(a, b)), None)
            if twice is not None and len(set(m)) == len(m):  # a set of values: each once
                raise Unreadable(f"{twice:g} appears twice, and in a set of values each "
                                 "counts once")
        same = len(p) == len(m) and all(math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
                                        for a, b in zip(p, m, strict=False))
        return same, p, m
    if kind == "word":
        same = as_word(prediction, choices) == normal_word(measured)
        return same, str(prediction).strip(), measured
    if type(prediction) is not type(measured):
        raise Unreadable(f"it is of type {type(prediction).__name__}, the measurement of type "
                         f"{type(measured).__name__}")
    try:
        return bool(prediction == measured), prediction, measured
    except Exception:  # e.g. arrays, whose == is not one truth value
        raise Unreadable(f"{short_repr(prediction)} cannot be compared with the measurement"
                         ) from None


def _form(kind: str, choices: Sequence[str] | None) -> str:
    """The form an answer should take, for the line that refuses one."""
    if kind == "number":
        return "one number, such as 2, 0.25 or 1e-3, or a formula without quotes"
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
