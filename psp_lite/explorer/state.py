"""What the explorer's sliders say: a state (regularizer, lambda, epoch), a record of one redraw,
and how a lambda reads on a slider. Plain values: `figure` draws them, `widgets` sets them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExplorerState:
    """What the sliders say: regularizer ("psp" | "l2"), lambda (0 = no regularization), epoch."""

    regularizer: str
    lam: float
    epoch: int


@dataclass(frozen=True)
class DrawRecord:
    """One redraw: the state drawn, a hash of the PNG (None if not encoded) and its duration."""

    state: ExplorerState
    png_sha1: str | None
    seconds: float


def format_lambda(lam: float) -> str:
    """Slider label of a lambda: '0 (none)' or e.g. '3.2e-04'."""
    return "0 (none)" if lam == 0 else f"{lam:.1e}"


def lambda_labels(lams: list[float]) -> list[str]:
    """Slider labels of `lams`, with more digits where two would read the same."""
    labels = [format_lambda(v) for v in lams]
    if len(set(labels)) < len(labels):  # two close lambdas: show more digits
        labels = [format_lambda(v) if v == 0 else f"{v:.4g}" for v in lams]
    return labels


def nearest_lambda(lams: list[float], near: float) -> float:
    """The lambda of `lams` nearest `near` on a log scale (0 is nearest only to 0)."""
    def distance(v: float) -> float:
        if v == 0 or near == 0:
            return 0.0 if v == near else 99.0
        return abs(math.log10(v) - math.log10(near))

    return min(lams, key=distance)


__all__ = ["DrawRecord", "ExplorerState", "format_lambda", "lambda_labels", "nearest_lambda"]
