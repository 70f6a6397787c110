"""The paper's figures and tables as functions of run histories.

Fig. 2a (`test_error_curves`), Fig. 2b (`z2_curves`), Fig. 3 (`weight_histograms`, and the
per-layer spread table `weight_spread`), and the Table 1 / Table 2 comparisons (`curves_by_model`,
`comparison_bars`). Every function takes `Groups` (regularizer -> one history per
seed) or summary rows and returns a matplotlib `Figure` (or rows / text); none trains anything.
With `smoke=True` a figure says across its top that it comes from a smoke run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from psp_lite.data import dataset_info
from psp_lite.models import MODEL_TITLES
from psp_lite.paper import paper_error
from psp_lite.report.stats import SummaryRow
from psp_lite.report.style import (
    COLORS,
    LABELS,
    LINESTYLES,
    legend_below,
    plain_log_labels,
    readable,
)
from psp_lite.training.history import Groups

if TYPE_CHECKING:  # a sweep is read here, never run
    pass

PAPER_PREFIX = "paper: "  # label prefix of the paper's reference lines (not a regime's curve)
KDE_SAMPLE = 20000  # values per layer used for a KDE line (the histogram uses all of them)


def _model(name: str) -> str:
    """A model's name as the paper writes it ("ResNet-18"); an unknown name as it is."""
    return MODEL_TITLES.get(name, name)


def _dataset(name: str) -> str:
    """A dataset's name as a sentence writes it ("Fashion-MNIST"); an unknown name as it is."""
    try:
        return dataset_info(name).title
    except ValueError:
        return name


def _label(reg: str, results: Groups) -> str:
    lam = results[reg][0].config.lam
    return f"{LABELS.get(reg, reg)}, λ={lam:g}" if lam else LABELS.get(reg, reg)


def _mean_band(ax: Axes, epochs: list[int], curves: np.ndarray, color: str, label: str,
               log: bool = False, ls: str = "-") -> None:
    """One line (mean over seeds; geometric mean when `log`) and, for >1 seed, a min-max band."""
    mean = np.exp(np.log(curves).mean(0)) if log else curves.mean(0)
    ax.plot(epochs, mean, color=color, label=label, ls=ls,
            marker="o" if len(epochs) < 3 else None)
    if len(curves) > 1:
        ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.2, lw=0)


def _seed_note(results: Groups) -> str:
    n = max(len(hs) for hs in results.values())
    return f"mean of {n} seeds, band: min-max" if n > 1 else "1 seed"


def test_error_curves(results: Groups, ax: Axes | None = None, *, paper: bool = True,
                      title: str | None = None, smoke: bool = False) -> Figure:
    """Fig. 2a: test error (%) per epoch; per regularizer a line (mean over seeds) and, with more
    than one seed, a min-max band. `paper` adds the paper's number as a dotted line where the
    paper has one for this dataset and model (labelled "paper: ...")."""
    own = ax is None
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 4.2))
    for reg, histories in results.items():
        color = COLORS.get(reg, "k")
        curves = np.array([h.test_error for h in histories])
        _mean_band(ax, histories[0].epochs, curves, color, _label(reg, results),
                   ls=LINESTYLES.get(reg, "-"))
        c = histories[0].config
        theirs = paper_error(c.dataset, c.model, reg) if paper else None
        if theirs is not None:
            ax.axhline(theirs, color=color, ls=":", lw=1.2,
                       label=f"{PAPER_PREFIX}{LABELS.get(reg, reg)} {theirs:g} %")
    c = next(iter(results.values()))[0].config
    ax.set(xlabel="epoch", ylabel="test error [%]",
           title=title or f"Test error, {_model(c.model)} on {_dataset(c.dataset)} "
                          f"({_seed_note(results)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    if not own:  # in a caller's panel: the caller places the legend (`_legend_once`)
        ax.legend(fontsize=9)
        return fig
    legend_below(fig, [ax], ncol=2)
    return readable(fig, smoke=smoke)


def _legend_once(fig: Figure, axes: Sequence[Axes], ncol: int = 3) -> None:
    """The panels' own legends replaced by one below them all (off the data)."""
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    legend_below(fig, axes, ncol=ncol)


def _z2_panel(ax: Axes, results: Groups, get: Callable, title: str) -> None:
    for reg, histories in results.items():
        curves = np.array([get(h) for h in histories], dtype=float)
        _mean_band(ax, histories[0].epochs, curves, COLORS.get(reg, "k"), LABELS.get(reg, reg),
                   log=True, ls=LINESTYLES.get(reg, "-"))
    ax.set(yscale="log", xlabel="epoch", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    plain_log_labels(ax.yaxis)  # "0.5", not "5×10⁻¹", which crowds a small panel
    ax.grid(alpha=0.3, which="both")


def z2_curves(results: Groups, per_layer: bool = True, *, smoke: bool = False) -> Figure:
    """Fig. 2b: <z^2> on the test set per epoch on a log scale: the mean over layers (what the
    paper plots) and, with `per_layer`, one panel per layer (logits last), three panels a row
    (a row of five, shrunk to the notebook's width, would be unreadable when projected)."""
    layers = list(next(iter(results.values()))[0].z2_layers) if per_layer else []
    n = 1 + len(layers)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows + 0.6), squeeze=False)
    panels = [("mean over layers (Fig. 2b)", lambda h: h.z2)]
    panels += [(name, lambda h, k=name: h.z2_layers[k]) for name in layers]
    for ax, (title, get) in zip(axes.flat, panels, strict=False):
        _z2_panel(ax, results, get, title)
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    for row in axes:
        row[0].set_ylabel("<z²> (log)")
    fig.suptitle(f"<z²> on the test set ({_seed_note(results)})")
    legend_below(fig, [axes[0][0]])
    return readable(fig, smoke=smoke)


def curves_by_model(results_by_model: dict[str, Groups], *, smoke: bool = False) -> Figure:
    """Table 2's runs as curves: one column per network, test error (top) and the layer-mean
    <z^2> on a log scale (bottom), one line per regularizer."""
    models = list(results_by_model)
    fig, axes = plt.subplots(2, len(models), figsize=(min(3.0 * len(models), 9.0), 6.4),
                             squeeze=False)
    for col, model in enumerate(models):
        results = results_by_model[model]
        test_error_curves(results, axes[0][col], title=f"{_model(model)}: test error")
        _z2_panel(axes[1][col], results, lambda h: h.z2, f"{_model(model)}: <z²>")
    axes[1][0].set_ylabel("<z²>, layer mean (log)")
    _legend_once(fig, list(axes[0]))
    return readable(fig, smoke=smoke)


def comparison_bars(rows: list[SummaryRow], *, smoke: bool = False) -> Figure:
    """Ours beside the paper's: per (model, regularizer) a solid bar (ours, with the seed std as
    an error bar when >1 seed) and a hatched bar (the paper's, where it has a number)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows)), 3.8))
    x = np.arange(len(rows))
    ours = [r.ours_mean for r in rows]
    err = [r.ours_std if r.seeds > 1 else 0.0 for r in rows]
    mine = ax.bar(x - 0.2, ours, 0.4, yerr=err if any(err) else None, capsize=3,
                  color=[COLORS.get(r.regularizer, "k") for r in rows], label="ours")
    ax.bar_label(mine, fmt="%.2f", fontsize=9)
    paper_x = [i + 0.2 for i, r in enumerate(rows) if r.paper is not None]
    paper_y = [r.paper for r in rows if r.paper is not None]
    paper_c = [COLORS.get(r.regularizer, "k") for r in rows if r.paper is not None]
    if paper_y:
        theirs = ax.bar(paper_x, paper_y, 0.4, color="white", edgecolor=paper_c, hatch="//",
                        label="paper")
        ax.bar_label(theirs, fmt="%.2f", fontsize=9)
    ax.set_xticks(x, [f"{_model(r.model)}\n{LABELS.get(r.regularizer, r.regularizer)}"
                      for r in rows],
                  fontsize=9)
    ax.set(ylabel="test error [%]", title="Test error: ours (solid)" +
           (" and the paper's (hatched)" if paper_y else "; the paper gives none for these"))
    ax.margins(y=0.15)  # room above the tallest bar for its label
    ax.grid(alpha=0.3, axis="y")
    regs = list(dict.fromkeys(r.regularizer for r in rows))
    handles = [Patch(color=COLORS.get(r, "k"), label=f"ours: {LABELS.get(r, r)}") for r in regs]
    if paper_y:
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="//", label="the paper's"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    return readable(fig, smoke=smoke)


# ----------------------------------------------------------------------------- Fig. 3


def _snapshot(histories: list, epoch: int | None, seed_index: int) -> dict[str, np.ndarray]:
    h = histories[seed_index]
    if not h.weights:
        raise ValueError(f"{h.config.label}: the run kept no weights (train it again).")
    chosen = epoch or max(h.weights)
    if chosen not in h.weights:
        raise ValueError(f"no weights kept at epoch {chosen}; kept: {sorted(h.weights)} (add "
                         "it to RunConfig.snapshot_epochs).")
    return h.weights[chosen]


def _weight_layers(snapshot: dict[str, np.ndarray], layers: Sequence[str] | None) -> list[str]:
    names = [n.removesuffix(".weight") for n in snapshot if n.endswith(".weight")]
    if layers is None:
        return names
    missing = [n for n in layers if n not in names]
    if missing:
        raise ValueError(f"no weights named {missing}; the model has {names}.")
    return list(layers)


def weight_histograms(results: Groups, regularizers: tuple[str, ...] = ("l2", "psp"),
                      epoch: int | None = None, seed_index: int = 0,
                      layers: Sequence[str] | None = None, kde: bool = True,
                      smoke: bool = False) -> Figure:
    """Fig. 3: the distribution of each layer's trained weights, the regularizers overlaid on
    one shared axis per layer (seaborn density histogram with a KDE line; same bins for all).

    `epoch`: which kept snapshot (default: the last); `seed_index`: which seed's network.
    """
    import seaborn as sns  # here, not at the top: importing it costs ~150 MB of memory

    chosen = [r for r in regularizers if r in results]
    if not chosen:
        raise ValueError(f"none of {regularizers} is in the results ({list(results)}).")
    snaps = {r: _snapshot(results[r], epoch, seed_index) for r in chosen}
    names = _weight_layers(snaps[chosen[0]], layers)
    cols = min(2, len(names)) if len(names) == 4 else min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = {r: snaps[r][f"{name}.weight"] for r in chosen}
        lo, hi = np.percentile(np.concatenate(list(values.values())), [0.5, 99.5])
        fewest = min(len(v) for v in values.values())
        bins = np.linspace(lo, hi, 1 + int(np.clip(1.5 * math.sqrt(fewest), 20, 60)))
        for r in chosen:
            v = values[r]
            inside = v[(v >= lo) & (v <= hi)]
            color = COLORS.get(r, "k")
            sns.histplot(x=inside, bins=bins, stat="density", element="step", fill=False,
                         color=color, ax=ax, lw=1.0, label="_nolegend_" if kde else
                         LABELS.get(r, r))
            if kde:  # the same sample positions for every regularizer: equal weights, equal KDE
                rng = np.random.default_rng(0)
                sample = inside if len(inside) <= KDE_SAMPLE else rng.choice(inside, KDE_SAMPLE,
                                                                             replace=False)
                sns.kdeplot(x=sample, color=color, ax=ax, lw=1.6, label=LABELS.get(r, r),
                            clip=(lo, hi))
        ax.set(xlim=(lo, hi), xlabel="weight value", ylabel="density",
               title=f"{name} ({len(values[chosen[0]])} weights)")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    h = results[chosen[0]][seed_index]
    shown = epoch or max(h.weights)
    fig.suptitle(f"Trained weights per layer (Fig. 3), {_dataset(h.config.dataset)}, "
                 f"epoch {shown}, "
                 f"seed {h.config.seed}; central 99 % of values", fontsize=10)
    legend_below(fig, [axes.flat[0]])
    return readable(fig, smoke=smoke)


@dataclass
class SpreadRow:
    """Spread of one layer's trained weights under one regularizer (Fig. 3 as numbers)."""

    layer: str
    regularizer: str
    count: int  # weights in the layer
    seeds: int  # networks averaged over
    std: float  # standard deviation (population, ddof=0), mean over seeds
    kurtosis: float  # excess kurtosis m4 / m2^2 - 3 (0 for a Gaussian), mean over seeds


def moments(values: np.ndarray) -> tuple[float, float]:
    """(standard deviation, excess kurtosis) of `values`, population moments about the mean."""
    v = np.asarray(values, dtype=np.float64).ravel()
    d = v - v.mean()
    m2 = float(np.mean(d**2))
    m4 = float(np.mean(d**4))
    return math.sqrt(m2), (m4 / m2**2 - 3.0) if m2 > 0 else float("nan")


def weight_spread(results: Groups, regularizers: tuple[str, ...] = ("l2", "psp"),
                  epoch: int | None = None, layers: Sequence[str] | None = None
                  ) -> list[SpreadRow]:
    """Per layer and regularizer: std and excess kurtosis of the trained weights, each the mean
    over the seeds' networks (rows ordered layer by layer)."""
    chosen = [r for r in regularizers if r in results]
    if not chosen:
        raise ValueError(f"none of {regularizers} is in the results ({list(results)}).")
    snaps = {r: [_snapshot(results[r], epoch, i) for i in range(len(results[r]))]
             for r in chosen}
    names = _weight_layers(snaps[chosen[0]][0], layers)
    rows = []
    for name in names:
        for r in chosen:
            stats = [moments(s[f"{name}.weight"]) for s in snaps[r]]
            rows.append(SpreadRow(name, r, int(snaps[r][0][f"{name}.weight"].size), len(stats),
                                  float(np.mean([s[0] for s in stats])),
                                  float(np.mean([s[1] for s in stats]))))
    return rows


def spread_markdown(rows: list[SpreadRow]) -> str:
    """The spread table in Markdown: one line per layer, l2 and PSP side by side."""
    by_layer: dict[str, dict[str, SpreadRow]] = {}
    for r in rows:
        by_layer.setdefault(r.layer, {})[r.regularizer] = r
    regs = list(dict.fromkeys(r.regularizer for r in rows))
    head = ["layer", "weights"] + [f"std, {LABELS.get(g, g)}" for g in regs]
    if {"l2", "psp"} <= set(regs):
        head.append("std ratio PSP / l2")
    head += [f"excess kurtosis, {LABELS.get(g, g)}" for g in regs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer, d in by_layer.items():
        first = next(iter(d.values()))
        cells = [layer, str(first.count)] + [f"{d[g].std:.4f}" for g in regs]
        if {"l2", "psp"} <= set(regs):
            cells.append(f"{d['psp'].std / d['l2'].std:.2f}")
        cells += [f"{d[g].kurtosis:.2f}" for g in regs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- results packs


def _error_and_z2(ax_error: Axes, ax_z2: Axes, results: Groups, title: str) -> None:
    test_error_curves(results, ax_error, title=f"{title}\ntest error")
    _z2_panel(ax_z2, results, lambda h: h.z2, "<z²> on the test set (mean over layers)")
    ax_z2.set_ylabel("<z²> (log)")


def beside(theirs: Groups, own: Groups | None = None, *, theirs_title: str = "results pack",
           own_title: str | None = None, smoke: bool = False) -> Figure:
    """Test error (top) and layer-mean <z^2> (bottom, log) per epoch: a results pack's runs
    (`theirs`, right) beside the student's own run (`own`, left, same y axes), or the pack's
    alone."""
    cols = 1 if own is None else 2
    fig, axes = plt.subplots(2, cols, figsize=(6.4 * cols, 8.0), squeeze=False, sharey="row")
    if own is not None:
        first = next(iter(own.values()))[0].config
        _error_and_z2(axes[0][0], axes[1][0], own, own_title or
                      f"your run: {first.dataset}, {_seed_note(own)}, {first.epochs} epochs")
    _error_and_z2(axes[0][-1], axes[1][-1], theirs, theirs_title)
    _legend_once(fig, list(axes[0]))
    return readable(fig, smoke=smoke)
