"""Running a student's Eq. 15 function for `check_eq15_mlp`: on fresh copies of a case, never
raising; what it raised (type, message, the student's line) or returned instead of one (dW, db)
pair per layer becomes the text of the check's line."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from psp_lite.teaching.eq15 import Eq15Case, Gradients

#: A student's Eq. 15: (weights, biases, x, lam) -> [(dP/dW_l, dP/db_l) for l = 1..N].
Eq15Function = Callable[[list[Tensor], list[Tensor], Tensor, float],
                        Sequence[tuple[Tensor, Tensor]]]


@dataclass(frozen=True)
class Run:
    """The student's function on one case: its gradients (float64), or what went wrong."""

    case: Eq15Case
    grads: Gradients | None
    problem: str = ""
    kind: str = ""


class BadReturn(ValueError):
    """The student's function returned something other than one (dW, db) pair per layer."""


def run_student(student_fn: Eq15Function, case: Eq15Case) -> Run:
    """Call the student's function on fresh copies of the case; never raises."""
    try:
        out = student_fn([w.clone() for w in case.weights], [b.clone() for b in case.biases],
                         case.x.clone(), case.lam)
    except Exception as err:  # the student's code: report it, never crash the check
        return Run(case, None, *_raised(err))
    try:
        return Run(case, _read_return(out, case))
    except BadReturn as why:
        kind = "not written" if "still ..." in str(why) else "wrong return"
        return Run(case, None, str(why), kind)


def _raised(err: Exception) -> tuple[str, str]:
    """('raises TypeError: ... (line 12: own = c * ...)', kind), with a hint where one helps."""
    message = (str(err).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {message[:150]}" + _student_line(err)
    if "ellipsis" in text:
        return f"not written yet: replace every ... in the skeleton ({text})", "not written"
    if isinstance(err, RuntimeError) and re.search(r"size of tensor|mat1 and mat2|shape",
                                                   message):
        return (f"raises {text}: a shape error; going down, delta_{{l+1}} is B x K_{{l+1}} and "
                "everything that makes delta_l is B x K_l"), "raises"
    if isinstance(err, IndexError):
        return (f"raises {text}: an index past the end; the top layer (i = N - 1) has no "
                "layer above it"), "raises"
    return f"raises {text}", "raises"


#: Where torch and psp_lite live: frames there are not the student's code.
_LIBRARIES = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1]))


def _student_line(err: Exception) -> str:
    """' (line 12: own = c * ...)': the last line of the traceback outside torch and psp_lite."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_LIBRARIES)]
    if not frames:
        return ""
    code = (frames[-1].line or "").strip()
    code = code if len(code) <= 80 else code[:77] + "..."
    return f" (line {frames[-1].lineno}" + (f": {code})" if code else ")")


def _read_return(out: object, case: Eq15Case) -> Gradients:
    """The student's [(dW_l, db_l)] as float64 tensors; BadReturn saying what was expected.
    A dW of W_l's transposed shape passes here: the diagnosis names it."""
    n = len(case.weights)
    expected = f"a list of {n} (dP/dW_l, dP/db_l) pairs for {case.name}, layer 1 first"
    if not isinstance(out, (list, tuple)):
        raise BadReturn(f"returns {_kind(out)}; expected {expected}")
    if len(out) != n:
        raise BadReturn(f"returns {len(out)} pair{'s' * (len(out) != 1)}; expected {expected}")
    for layer, pair in enumerate(out, start=1):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadReturn(f"returns {_kind(pair)} as item {layer}; expected {expected}")
    shapes = [getattr(dw, "shape", None) for dw, _ in out]
    if shapes != [w.shape for w in case.weights] and \
            shapes == [w.shape for w in reversed(case.weights)]:
        raise BadReturn("returns the pairs top layer first; expected layer 1 first")
    grads = []
    for layer, (pair, w) in enumerate(zip(out, case.weights, strict=True), start=1):
        if _shape(pair[0]) == (w.shape[0],) and _shape(pair[1]) in (tuple(w.shape),
                                                                   tuple(w.T.shape)):
            raise BadReturn(f"returns pair {layer} as (dP/db_{layer}, dP/dW_{layer}); expected "
                            "(dP/dW_l, dP/db_l), the weights' gradient first")
        dw = _read_tensor(f"dP/dW_{layer}", pair[0], [tuple(w.shape), tuple(w.T.shape)],
                          why=f": dP/dW_l = delta_l^T y_{{l-1}}, y_{{l-1}} being the input layer "
                          f"l reads (here y_{layer - 1}, ys[{layer - 1}]), so it has W_l's shape")
        db = _read_tensor(f"dP/db_{layer}", pair[1], [(w.shape[0],)],
                          batch_shape=(len(case.x), w.shape[0]))
        grads.append((dw, db))
    return grads


def _shape(value: object) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)


def _read_tensor(name: str, value: object, shapes: list[tuple[int, ...]],
                 batch_shape: tuple[int, ...] | None = None, why: str = "") -> Tensor:
    """One returned tensor, checked for type, dtype and shape (one of `shapes`); `why` follows
    a wrong shape (unless it is the batch shape, which has its own words)."""
    if value is Ellipsis:
        raise BadReturn(f"not written yet: {name} is still ...")
    if not isinstance(value, Tensor):
        extra = " (stay with torch operations)" if isinstance(value, np.ndarray) else ""
        raise BadReturn(f"returns {_kind(value)} as {name}; expected a torch tensor{extra}")
    if value.dtype != torch.float64:
        raise BadReturn(f"returns {name} as {value.dtype}; expected torch.float64, the "
                         "inputs' dtype")
    if tuple(value.shape) not in shapes:
        why = (": sum it over the batch, each example adds to it (Eq. 16)"
               if tuple(value.shape) == batch_shape else why)
        raise BadReturn(f"returns {name} of shape {tuple(value.shape)}; expected "
                         f"{shapes[0]}{why}")
    return value.detach().cpu()


def _kind(value: object) -> str:
    """'None', 'a float', 'a numpy array': what a wrong return is, for the line."""
    if value is None:
        return "None (is the return missing?)"
    name = "numpy array" if isinstance(value, np.ndarray) else type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"
