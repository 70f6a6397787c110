"""Argument checks shared by `RunConfig` and the command line: each returns the value as a plain
Python int / float / tuple (so a numpy scalar cannot reach a cache key's JSON) or raises a
ValueError whose one line names the field, the value and what is allowed."""

from __future__ import annotations

import argparse
import math
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def integer(name: str, value: object, *, minimum: int = 1, maximum: int | None = None,
            hint: str = "") -> int:
    """`value` as an int in `minimum`..`maximum`; bools and non-integral numbers are refused."""
    wanted = ({0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}") if maximum is None
        else f"an integer in {minimum}..{maximum}")
    hint = f" ({hint})" if hint else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {wanted}, got {value!r} "
                         f"({type(value).__name__}){hint}.")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {wanted}, got {int(value)}{hint}.")
    return int(value)


def real(name: str, value: object, *, low: float, high: float = math.inf,
         low_open: bool = False, high_open: bool = True, hint: str = "") -> float:
    """`value` as a finite float in the interval given; bools and non-numbers are refused."""
    interval = (f"{'(' if low_open else '['}{low:g}, "
                f"{'inf' if math.isinf(high) else f'{high:g}'}{')' if high_open else ']'}")
    hint = f"; {hint}" if hint else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r} "
                         f"({type(value).__name__}){hint}.")
    number = float(value)
    inside = (math.isfinite(number)
              and (number > low if low_open else number >= low)
              and (number < high if high_open else number <= high))
    if not inside:
        raise ValueError(f"{name} must be a finite number in {interval}, got {number!r}{hint}.")
    return number


def optional_size(name: str, value: object, limit: int, dataset: str) -> int | None:
    """None (everything) or a subset size in 1..`limit` (the size of `dataset`'s split)."""
    if value is None:
        return None
    size = integer(name, value)
    if size > limit:
        raise ValueError(f"{name}={size} exceeds the {limit} items of {dataset}'s "
                         f"{name.split('_')[0]} set; use at most {limit} or None for all.")
    return size


def epochs_in_run(name: str, values: Iterable[object], epochs: int, *,
                  from_end: bool = False) -> tuple[int, ...]:
    """Epoch numbers inside a run of `epochs` epochs, as a tuple of ints.

    With `from_end`, -k stands for the k-th epoch from the end (-1 is the last), as in
    `RunConfig.snapshot_epochs`.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of epoch numbers, got {values!r}.")
    out = []
    allowed = f"1..{epochs}" + (f" or -{epochs}..-1 (counted from the end)" if from_end else "")
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must hold integer epochs, got {value!r}.")
        low = -epochs if from_end else 1
        if not (low <= value <= epochs) or value == 0:
            raise ValueError(f"{name} holds epoch {int(value)}, outside this {epochs}-epoch "
                             f"run; use epochs in {allowed}.")
        out.append(int(value))
    return tuple(out)


def milestones(name: str, values: Iterable[object]) -> tuple[int, ...]:
    """Strictly increasing positive epochs (after which the learning rate drops)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of epoch numbers, got {values!r}.")
    out = tuple(integer(f"each of {name}", v) for v in values)
    if list(out) != sorted(set(out)):
        raise ValueError(f"{name} must be strictly increasing, got {out}.")
    return out


def positive_int_arg(text: str) -> int:
    """argparse type: an integer >= 1 (0 or less is refused, never taken as 'the default')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def int_arg_up_to(maximum: int) -> Callable[[str], int]:
    """argparse type: an integer in 1..`maximum`."""
    def parse(text: str) -> int:
        value = positive_int_arg(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected an integer in 1..{maximum}, got {value}")
        return value
    return parse


def writable_folder(folder: Path, option: str) -> Path:
    """`folder`, created if needed; a ValueError naming `option` when it cannot be written (so
    that nothing is trained whose results could not be written)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as error:
        raise ValueError(f"cannot write into {folder} ({error.strerror or error}); pass {option} "
                         "a writable folder.") from None
    return folder
