"""Reading what a student typed into a prediction cell, for `check_prediction`.

A number may be typed as an int or a float, as text ("3", " 3.0 ", "1e-3", "1/4"), as a
one-element list or tuple, or as a numpy or torch scalar or one-element array. A list of numbers
may be a list, tuple or set, a 1-d array, text ("1, 2", "[1 2]"), or one number (a list of one).
A word is compared without regard to case, surrounding spaces or quotes.

Refused, with a line that says which form is expected: text that is not a number ("three",
"3 layers", and "3 %", since 3 % could mean 3 or 0.03; a formula in quotes is told to lose the
quotes), booleans, nan and infinities, nested lists, several numbers where one is expected, and a
word that is not one of the offered choices.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

#: What a notebook puts in an answer cell before the student answers: not an answer yet.
PLACEHOLDERS = (None, Ellipsis)


class Unreadable(ValueError):
    """An answer that cannot be read in the form the measurement has."""


def is_placeholder(value: object) -> bool:
    """None, `...` or blank text: the student has not answered yet."""
    return any(value is p for p in PLACEHOLDERS) or (isinstance(value, str) and not value.strip())


def kind_of(measured: object) -> str:
    """'number', 'numbers' (a flat list of numbers), 'word' or 'other'."""
    if isinstance(measured, str):
        return "word"
    if _is_array(measured):
        return "number" if measured.ndim == 0 else "numbers"
    if _is_number(measured):
        return "number"
    if isinstance(measured, (list, tuple)) and all(_is_number(v) for v in measured):
        return "numbers"
    return "other"


def as_number(value: object) -> int | float:
    """One finite number, read from any of the forms in this module's docstring."""
    values = as_numbers(value)
    if len(values) != 1:
        raise Unreadable(f"it holds {len(values) or 'no'} number{'s' * (len(values) != 1)}")
    return values[0]


def as_numbers(value: object) -> list[int | float]:
    """A flat list of finite numbers, read from any of the forms in this module's docstring."""
    if isinstance(value, str):
        if "%" in value:
            raise Unreadable(f"{value!r} has a % sign (the number itself, or a hundredth of it?)")
        try:
            return [_number_from_text(t) for t in _tokens(value)]
        except Unreadable:
            if _FORMULA.search(value):
                raise Unreadable(f"{value!r} is a formula in quotes, so it is text; without "
                                 "the quotes Python computes the number") from None
            raise
    if _is_array(value):
        if value.ndim > 1 and _size(value) > 1:
            raise Unreadable(f"it is a table of shape {tuple(value.shape)}")
        value = value.reshape(-1).tolist()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_one_number(v) for v in items]
    return [_one_number(value)]


def as_word(value: object, choices: Sequence[str] | None = None) -> str:
    """The word, case-folded and stripped of spaces and quotes; one of `choices` if given."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise Unreadable(f"{short_repr(value)} is not text")
    word = normal_word(value)
    if choices is not None and word not in {normal_word(c) for c in choices}:
        raise Unreadable(f"{value!r} is not one of the choices")
    return word


def normal_word(text: str) -> str:
    """'  "Reference" ' -> 'reference': case, surrounding quotes and extra spaces dropped, and
    the script ell the notebooks print (ℓ2) read as l."""
    return " ".join(text.strip().strip("'\"").split()).casefold().replace("ℓ", "l")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_array(value: object) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def _size(array: np.ndarray | torch.Tensor) -> int:
    return array.numel() if isinstance(array, torch.Tensor) else array.size


def _one_number(value: object) -> int | float:
    """A finite int or float from a number, numeric text or a one-element array."""
    if isinstance(value, str):
        return as_number(value)
    if _is_array(value):
        if _size(value) != 1:
            raise Unreadable(f"it holds an array of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, (list, tuple, set, frozenset)):
        raise Unreadable("it is a list of lists")
    if isinstance(value, (bool, np.bool_)):
        raise Unreadable(f"{value} is a truth value, not a number")
    if not _is_number(value):
        raise Unreadable(f"{short_repr(value)} is not a number")
    if not math.isfinite(value):
        raise Unreadable(f"{value} is not a finite number")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


_SEPARATORS = re.compile(r"[,;\s]+")
#: Text that reads as a Python formula: an operator or a call between names or numbers.
_FORMULA = re.compile(r"\*|\w\s*\(|\)\s*[-+/*]|[\w)]\s*[-+/]\s*[\w(]")


def _tokens(text: str) -> list[str]:
    """'[1, 2]' -> ['1', '2']: one pair of brackets around the whole text is allowed."""
    text = text.strip()
    if text[:1] + text[-1:] in ("[]", "()", "{}"):
        text = text[1:-1]
    return [t for t in _SEPARATORS.split(text) if t]


def _number_from_text(token: str) -> int | float:
    """'3' -> 3, '3.0' -> 3.0, '1e-3' -> 0.001, '1/4' -> 0.25; anything else is refused."""
    try:
        value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        raise Unreadable(f"{token!r} is not a plain number") from None
    if value.denominator == 1 and re.fullmatch(r"[+-]?\d+", token):
        return int(value)
    try:
        return float(value)
    except OverflowError:
        raise Unreadable(f"{token!r} is not a finite number") from None


def short_repr(value: object, limit: int = 40) -> str:
    """repr(value) on one line, cut to `limit` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
