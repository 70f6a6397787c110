"""The lambda curves: late-epoch test error vs lambda, PSP and l2 each on its own lambda axis
(their lambdas are in different units), the mean over seeds with a min-max band, no
regularization dashed, the paper's lambda dotted, a lambda whose training diverged as an X at the
top (`u_curve` for a sweep, `sweep_curves` for a results pack's, with the student's beside it).
One late-epoch rule (`late_epochs`) for every point drawn, on a linear error axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from psp_lite.paper import PAPER_LAMBDA
from psp_lite.regularizers import WITH_LAMBDA
from psp_lite.report.stats import sweep_points
from psp_lite.report.style import COLORS, LABELS
from psp_lite.training.history import Groups

if TYPE_CHECKING:  # a sweep is read here, never run
    from psp_lite.training.history import SweepResult


#: Each regularizer's lambda axis: their lambdas are in different units, so never one axis.
LAMBDA_AXIS = {"psp": "PSP λ  (× layer-mean <z²>)", "l2": "l2 λ  (× ½ Σ θ², weight decay)"}
BAND_ALPHA = 0.3


def lambda_axes(fig: Figure | None = None, spec=None) -> dict[str, Axes]:
    """One panel per regularizer ("psp" left, "l2" right), sharing the test-error axis and
    each with its own λ axis; in `fig` (a new Agg figure if None), in `spec` if given (a
    gridspec slot)."""
    if fig is None:  # a pyplot figure, as every figure here: a notebook shows it by itself
        fig = plt.figure(figsize=(9.0, 3.8))
    grid = spec.subgridspec(1, 2, wspace=0.08) if spec is not None else fig.add_gridspec(
        1, 2, wspace=0.08, left=0.08, right=0.98, bottom=0.3, top=0.8)
    left = fig.add_subplot(grid[0, 0])
    right = fig.add_subplot(grid[0, 1], sharey=left)
    right.tick_params(labelleft=False)
    axes = {"psp": left, "l2": right}
    for reg, ax in axes.items():
        ax.set(xscale="log", xlabel=LAMBDA_AXIS[reg])
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("late-epoch test error [%]")
    return axes


def _se(error_percent: float, n_test: int) -> float:
    """Binomial standard error (points) of a test error measured on `n_test` images."""
    p = min(max(error_percent / 100, 0.0), 1.0)
    return 100 * math.sqrt(max(p * (1 - p), 1e-4) / max(n_test, 1))


def _test_images(groups: Groups) -> int:
    from psp_lite.data import CATALOG

    c = next(iter(groups.values()))[0].config
    return c.test_subset or CATALOG[c.dataset].sizes[1]


def draw_lambda_points(axes: dict[str, Axes], groups: Groups, *, source: str = "",
                       dotted: bool = False, alpha: float = 1.0) -> dict[str, object]:
    """Per regularizer, on its own panel: the late-epoch test error (`sweep_points`, the one
    late-epoch rule) vs λ, the mean over seeds as a line and every seed's spread as a min-max
    band; no regularization as a dashed line (and its band) on every panel. Returns the line
    drawn per regularizer ("none" included)."""
    points = sweep_points(groups)
    ls = ":" if dotted else "-"
    suffix = f" ({source})" if source else ""
    lines: dict[str, object] = {}
    for reg in ("psp", "l2"):
        if reg not in points or reg not in axes:
            continue
        ax, color = axes[reg], COLORS[reg]
        lams = [lam for lam, _ in points[reg]]
        errors = [np.asarray(e) for _, e in points[reg]]
        (lines[reg],) = ax.plot(lams, [e.mean() for e in errors], ls=ls, marker="o", ms=4,
                                color=color, alpha=alpha, label=f"{LABELS[reg]}{suffix}")
        if max(len(e) for e in errors) > 1:
            ax.fill_between(lams, [e.min() for e in errors], [e.max() for e in errors],
                            color=color, alpha=BAND_ALPHA * alpha, lw=0)
    if "none" in points:
        base = np.asarray(points["none"][0][1])
        for i, ax in enumerate(axes.values()):
            line = ax.axhline(base.mean(), color=COLORS["none"], ls="--" if not dotted else ":",
                              lw=1.3, label=f"{LABELS['none']}{suffix}" if i == 0 else "_")
            lines.setdefault("none", line)
            if len(base) > 1:
                ax.axhspan(base.min(), base.max(), color=COLORS["none"], alpha=0.2, lw=0)
    return lines


def mark_paper_and_diverged(axes: dict[str, Axes],
                            diverged: Sequence[tuple[str, float]] = ()) -> None:
    """On each regularizer's panel: the paper's λ (Sec. 4.1) as a dotted vertical line, and each
    λ whose training diverged (loss NaN: no error to draw) as an X at the top of the panel."""
    for i, (reg, ax) in enumerate(axes.items()):
        ax.axvline(PAPER_LAMBDA[reg], color="0.3", ls=":", lw=1.3,
                   label="the paper's λ" if i == 0 else "_")
    shown = False
    for reg, lam in diverged:
        if reg in axes:
            axes[reg].plot([lam], [0.92], "X", ms=9, color=COLORS[reg], clip_on=False,
                           transform=axes[reg].get_xaxis_transform(), zorder=6,
                           label="_" if shown else "diverged (loss NaN)")
            shown = True


def fit_error_range(axes: dict[str, Axes], groups_list: Sequence[Groups]) -> None:
    """The shared test-error range, linear: every band whole, and never tighter than the noise
    (four binomial standard errors of the unregularized run's error on the test images, i.e.
    ±2 SE), so seed-to-seed noise is never drawn as a big effect."""
    errors = [e for g in groups_list for pts in sweep_points(g).values() for _, es in pts
              for e in es]
    if not errors:
        return
    lo, hi = min(errors), max(errors)
    noise = max(4 * _se(float(np.median(errors)), _test_images(g)) for g in groups_list)
    if hi - lo < noise:
        mid = (hi + lo) / 2
        lo, hi = mid - noise / 2, mid + noise / 2
    pad = 0.06 * (hi - lo)
    next(iter(axes.values())).set_ylim(max(0.0, lo - pad), hi + 2.5 * pad)  # room for an X


def _legend_below(fig: Figure, axes: dict[str, Axes], ncol: int = 3) -> None:
    handles, labels = [], []
    for ax in axes.values():
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    order = sorted(range(len(labels)), key=lambda i: LABELS["none"] in labels[i])
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=9, frameon=False)


def u_curve(result: SweepResult, axes: dict[str, Axes] | None = None,
            highlight: str | None = None) -> Figure:
    """Late-epoch test error vs λ of a sweep: PSP and l2 each on its own λ axis (their λ are in
    different units), the mean over seeds with a min-max band, no regularization dashed, the
    paper's λ dotted and a diverged λ as an X; the y range never tighter than the noise.
    `highlight` fades the other regularizer."""
    own = axes is None
    axes = axes or lambda_axes()
    groups = result.groups()
    lines = draw_lambda_points(axes, groups)
    mark_paper_and_diverged(axes, result.diverged)
    if highlight is not None:
        for reg, line in lines.items():
            if reg in WITH_LAMBDA and reg != highlight:
                line.set_alpha(0.3)
    fit_error_range(axes, [groups])
    n = result.seeds
    band = f"mean of {n} seeds, band: min-max" if n > 1 else "1 seed: no band"
    for reg, ax in axes.items():
        ax.set_title(f"{LABELS[reg]}", fontsize=10)
    fig = next(iter(axes.values())).figure
    if own:
        fig.suptitle(f"Test error vs λ, averaged over {result.late_window()} of {result.epochs}"
                     f" ({band})", fontsize=10)
        _legend_below(fig, axes)
    return fig


def sweep_curves(groups: Groups, own: SweepResult | None = None,
                 axes: dict[str, Axes] | None = None, title: str | None = None) -> Figure:
    """A λ sweep over seeds (a results pack's): late-epoch test error vs λ, PSP and l2 each on
    its own λ axis, the mean over seeds with a min-max band; no regularization dashed. `own`
    (the student's `SweepResult`) adds theirs dotted, by the same late-epoch rule and with its
    own band over its seeds."""
    mine = axes is None
    axes = axes or lambda_axes(plt.figure(figsize=(9.0, 4.2)))  # room for a 2-line title
    draw_lambda_points(axes, groups, source="pack")
    drawn = [groups]
    if own is not None:
        draw_lambda_points(axes, own.groups(), dotted=True,
                           source=f"your run, {own.epochs} epochs, {own.seeds} seed(s)")
        drawn.append(own.groups())
    fit_error_range(axes, drawn)
    for reg, ax in axes.items():
        ax.set_title(LABELS[reg], fontsize=10)
    fig = next(iter(axes.values())).figure
    if mine:
        seeds = max(len(hs) for hs in groups.values())
        fig.suptitle(title or f"Test error vs λ ({seeds} seeds, band: min-max)", fontsize=10)
        _legend_below(fig, axes, ncol=2)
    return fig
