"""Is PSP's effect on test error resolvable? Paired seed differences and their standard error.

Runs that differ only in regularizer share each seed's initialization and batch order, so the
difference PSP - baseline is taken per seed, then averaged; it is *resolved* when its mean is
more than two standard errors (over seeds) from zero. `truncations` asks the same of shorter
protocols read off the same runs: stop after epoch E, average the last E/5 epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gap:
    """PSP's test error minus a baseline's, in points, over paired seeds."""

    baseline: str
    mean: float
    stderr: float
    seeds: int

    @classmethod
    def of(cls, differences: Sequence[float], baseline: str) -> Gap:
        """The gap of these per-seed differences (treated - baseline, points)."""
        diffs = np.asarray(differences, dtype=float)
        stderr = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.inf
        return cls(baseline, float(diffs.mean()), stderr, len(diffs))

    @property
    def resolved(self) -> bool:
        """More than two standard errors from zero (and at least 3 seeds)."""
        return self.seeds >= 3 and abs(self.mean) > 2 * self.stderr


def late_mean(curve: Sequence[float], epochs: int, last: int) -> float:
    """Mean test error over epochs `epochs - last + 1 .. epochs` of one run."""
    if not 1 <= last <= epochs <= len(curve):
        raise ValueError(f"need 1 <= last ({last}) <= epochs ({epochs}) <= {len(curve)}.")
    return float(np.mean(curve[epochs - last:epochs]))


def gap(curves: Mapping[str, Sequence[Sequence[float]]], baseline: str, epochs: int,
        last: int, treated: str = "psp") -> Gap:
    """`treated` minus `baseline`: per-seed late means paired by seed (curves[reg][seed])."""
    a, b = curves[treated], curves[baseline]
    if len(a) != len(b):
        raise ValueError(f"{treated} has {len(a)} seeds but {baseline} has {len(b)}.")
    return Gap.of([late_mean(x, epochs, last) - late_mean(y, epochs, last)
                   for x, y in zip(a, b, strict=True)], baseline)


def truncations(curves: Mapping[str, Sequence[Sequence[float]]], epochs: Sequence[int],
                baselines: Sequence[str] = ("none", "l2")) -> list[tuple[int, int, list[Gap]]]:
    """For each protocol length E in `epochs`: (E, last = max(1, E // 5), the gaps)."""
    rows = []
    for e in epochs:
        last = max(1, e // 5)
        rows.append((e, last, [gap(curves, b, e, last) for b in baselines if b in curves]))
    return rows


def gaps_markdown(rows: list[tuple[int, int, list[Gap]]],
                  cost: Mapping[int, str] | None = None) -> str:
    """The truncation table: one row per length, PSP's gap to each baseline as mean ± SE."""
    baselines = [g.baseline for g in rows[0][2]] if rows else []
    head = ["epochs", "averaged over"] + [f"PSP − {b} (points)" for b in baselines]
    head += ["cost"] if cost else []
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for e, last, gaps in rows:
        cells = [str(e), f"last {last}"]
        cells += [f"{g.mean:+.2f} ± {g.stderr:.2f}" + (" **resolved**" if g.resolved else "")
                  for g in gaps]
        cells += [cost.get(e, "")] if cost else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
