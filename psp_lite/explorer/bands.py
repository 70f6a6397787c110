"""The spread over seeds on the explorer's epoch panels: a min-max band around the chosen run's
first-seed curve, so a wiggle the seeds do not share is not read as an effect of lambda."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection


def seed_band(ax: Axes) -> PolyCollection:
    """An empty band on `ax`, under the highlighted curve; `set_seed_band` fills it."""
    return ax.fill_between([np.nan], [np.nan], [np.nan], alpha=0.25, lw=0, zorder=3)


def set_seed_band(band: PolyCollection, curves: Sequence[Sequence[float]], color: str) -> None:
    """Fill `band` between the smallest and largest of `curves` (one per seed, epochs from 1)
    over the epochs every seed reached; with fewer than two curves, empty it."""
    if len(curves) < 2:
        band.set_verts([])
        return
    n = min(len(c) for c in curves)
    values = np.array([c[:n] for c in curves], dtype=float)
    x = np.arange(1, n + 1)
    low, high = values.min(axis=0), values.max(axis=0)
    band.set_verts([np.concatenate([np.column_stack([x, low]),
                                    np.column_stack([x[::-1], high[::-1]])])])
    band.set_color(color)


__all__ = ["seed_band", "set_seed_band"]
