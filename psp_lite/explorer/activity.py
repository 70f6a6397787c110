"""Notebook 08's class activity as numbers: where each regularizer stops the network learning,
and how <z^2> and the weights differ there. Functions of a finished sweep; nothing trains.

"Stops learning" is a stated rule, not a feeling: the late-epoch test error (mean over seeds)
has gone more than halfway from the unregularized network's error to chance (90 % for ten
classes). Two weight histograms differ by their total-variation distance on shared bins (0: the
same distribution, 1: no overlap at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.training.history import snapshot_for

if TYPE_CHECKING:  # read, never run
    from psp_lite.training.history import RunHistory, SweepResult

CHANCE = 90.0  # percent test error of a ten-class guess
BINS = 60


def _late(result: SweepResult, reg: str, lam: float) -> float:
    return float(np.mean([h.late_error() for h in result.histories(reg, lam)]))


def learning_cutoff(result: SweepResult) -> float:
    """The late-epoch test error (%) above which a network no longer learns: halfway from the
    unregularized run's to chance."""
    if result.baseline is None:
        raise ValueError("the sweep has no unregularized run to compare with.")
    base = _late(result, "none", 0.0)
    return base + 0.5 * (CHANCE - base)


def learning_limit(result: SweepResult, regularizer: str) -> float | None:
    """The smallest λ of `regularizer` at which the network stops learning (see the module's
    rule) or its training diverged; None if it learns at every λ tried."""
    cutoff = learning_cutoff(result)
    failed = [lam for reg, lam in result.diverged if reg == regularizer]
    stopped = [lam for lam in result.lambdas(regularizer)
               if _late(result, regularizer, lam) > cutoff]
    return min(failed + stopped, default=None)


def activity_pair(result: SweepResult) -> tuple[float, float]:
    """(PSP λ, l2 λ): for each, the largest λ of its grid where the network still learns (the
    large λ the activity compares)."""
    chosen = []
    for reg in ("psp", "l2"):
        limit = learning_limit(result, reg)
        lams = result.lambdas(reg)
        learning = [lam for lam in lams if limit is None or lam < limit]
        chosen.append(learning[-1] if learning else lams[0])
    return chosen[0], chosen[1]


def total_variation(a: np.ndarray, b: np.ndarray, bins: int = BINS) -> float:
    """Total-variation distance between the distributions of `a` and `b` on shared bins."""
    lo = min(a.min(), b.min())
    hi = max(a.max(), b.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(a, edges)[0] / a.size
    q = np.histogram(b, edges)[0] / b.size
    return 0.5 * float(np.abs(p - q).sum())


@dataclass(frozen=True)
class LayerContrast:
    """One layer's weights at one epoch: spread under each run, and how far apart they are."""

    layer: str
    epoch: int
    std: dict[str, float]  # "none", "l2", "psp" -> standard deviation of the weights
    tv_l2_psp: float  # total-variation distance between the l2 and PSP histograms


def weight_contrast(result: SweepResult, psp_lam: float, l2_lam: float,
                    epoch: int | None = None) -> list[LayerContrast]:
    """Per layer: the first seed's weights under no regularization, l2 at `l2_lam` and PSP at
    `psp_lam`, at the kept snapshot at or before `epoch` (default: the last)."""
    runs: dict[str, RunHistory] = {"none": result.get("none", 0.0), "l2": result.get("l2", l2_lam),
                                   "psp": result.get("psp", psp_lam)}
    epoch = epoch or result.epochs
    snaps = {k: h.weights[snapshot_for(h.weights, epoch)] for k, h in runs.items()}
    shown = snapshot_for(runs["psp"].weights, epoch)
    layers = [n for n in snaps["psp"] if n.endswith("weight")]
    return [LayerContrast(n.removesuffix(".weight"), shown,
                          {k: float(s[n].std()) for k, s in snaps.items()},
                          total_variation(snaps["l2"][n], snaps["psp"][n])) for n in layers]


def z2_line(result: SweepResult, psp_lam: float, l2_lam: float) -> str:
    """The last epoch's layer-mean <z^2> of the three runs (geometric mean over seeds)."""
    z2 = {k: float(np.exp(np.mean([np.log(h.z2[-1]) for h in result.histories(*key)])))
          for k, key in (("none", ("none", 0.0)), ("l2", ("l2", l2_lam)),
                         ("psp", ("psp", psp_lam)))}
    return (f"layer-mean <z²> at epoch {result.epochs} (geometric mean over seeds): no "
            f"regularization {z2['none']:.3g}, l2 λ={l2_lam:g} {z2['l2']:.3g}, PSP "
            f"λ={psp_lam:g} {z2['psp']:.3g}")


def contrast_table(result: SweepResult, psp_lam: float, l2_lam: float,
                   epochs: tuple[int, ...] | None = None) -> str:
    """Markdown: per layer and kept epoch, the weights' spread under l2 and PSP relative to no
    regularization, and the total-variation distance between the l2 and PSP histograms."""
    kept = sorted(result.get("psp", psp_lam).weights)
    epochs = epochs or (kept[0], kept[-1])
    lines = [f"PSP λ={psp_lam:g} against l2 λ={l2_lam:g}, first seed:", "",
             "| layer | epoch | std, l2 ÷ none | std, PSP ÷ none | TV(l2, PSP) |",
             "|---|---|---|---|---|"]
    by_epoch = {e: weight_contrast(result, psp_lam, l2_lam, e) for e in epochs}
    for i, layer in enumerate(r.layer for r in by_epoch[epochs[0]]):
        for e in epochs:
            r = by_epoch[e][i]
            lines.append(f"| {layer} | {r.epoch} | {r.std['l2'] / r.std['none']:.2f} | "
                         f"{r.std['psp'] / r.std['none']:.2f} | {r.tv_l2_psp:.2f} |")
    return "\n".join(lines) + "\n"


def activity_reading(result: SweepResult) -> str:
    """The activity's answers as measured: each regularizer's learning limit, then <z^2> at the
    large pair (`activity_pair`)."""
    base = _late(result, "none", 0.0)
    lines = [f"Rule: a network has stopped learning when its late-epoch test error is more than "
             f"halfway from no regularization ({base:.1f} %) to chance ({CHANCE:.0f} %), i.e. "
             f"above {base + 0.5 * (CHANCE - base):.1f} %."]
    for reg in WITH_LAMBDA:
        lams = result.lambdas(reg)
        if not lams:
            continue
        limit = learning_limit(result, reg)
        errors = ", ".join(f"{lam:g}: {_late(result, reg, lam):.1f} %" for lam in lams)
        name = short_name(reg)
        if limit is None:
            lines.append(f"{name}: learns at every swept λ ({errors}); try a larger one with "
                         "'train this λ'.")
        elif (reg, limit) in result.diverged:
            lines.append(f"{name}: no longer learns from λ={limit:g}, where the training "
                         f"diverged (its loss became NaN); below it, it learns ({errors}).")
        else:
            lines.append(f"{name}: stops learning at λ={limit:g} ({errors}).")
    pair = activity_pair(result)
    lines.append(z2_line(result, *pair))
    lines.append(spread_line(result, *pair))
    return "\n".join(lines)


def spread_line(result: SweepResult, psp_lam: float, l2_lam: float,
                layers: tuple[str, ...] = ("conv1", "fc1")) -> str:
    """The activity's third answer: `layers`' weight spread (std) at the last epoch under each
    regularizer, as a fraction of no regularization's (first seed; the full table is
    `contrast_table`)."""
    rows = {r.layer: r for r in weight_contrast(result, psp_lam, l2_lam)}
    shown = [n for n in layers if n in rows]

    def part(reg: str, lam: float) -> str:
        return f"{short_name(reg)} λ={lam:g} " + ", ".join(
            f"{n} {rows[n].std[reg] / rows[n].std['none']:.2f}" for n in shown)

    epoch = rows[shown[0]].epoch if shown else result.epochs
    return (f"weight spread at epoch {epoch} as a fraction of no regularization's (first seed): "
            f"{part('psp', psp_lam)}; {part('l2', l2_lam)}")


__all__ = ["CHANCE", "LayerContrast", "activity_pair", "activity_reading", "contrast_table",
           "learning_cutoff", "learning_limit", "spread_line", "total_variation",
           "weight_contrast", "z2_line"]
