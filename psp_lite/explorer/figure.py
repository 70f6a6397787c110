"""The lambda explorer's figure: Figs. 2-3 of a finished sweep for one (regularizer, lambda, epoch).

`ExplorerFigure(result)` owns one matplotlib `Figure` (Agg, no pyplot) whose artists are built
once; `render(state)` only moves data into them, and `png(state)` encodes the figure. Both are plain
functions of an `ExplorerState` and record what they drew (`draws`), so the logic is testable
without a browser or a kernel. `psp_lite.explorer.widgets.LambdaExplorer` puts ipywidgets on top.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from psp_lite.explorer.activity import learning_cutoff
from psp_lite.explorer.bands import seed_band, set_seed_band
from psp_lite.explorer.layout import SCREEN, Layout, place_panels
from psp_lite.explorer.state import DrawRecord, ExplorerState, format_lambda
from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.report.lambda_curves import (
    draw_lambda_points,
    fit_error_range,
    lambda_axes,
    mark_paper_and_diverged,
)
from psp_lite.report.style import COLORS, LABELS, plain_log_labels
from psp_lite.training.history import snapshot_for

if TYPE_CHECKING:  # the figure reads histories, it never trains
    from psp_lite.training.history import RunHistory, SweepResult

HIST_BINS = 60  # the most bins a layer's histogram gets
#: The picture's resolution. The notebook shows it at its true size (`shown_width_px`: 96 CSS
#: px per inch), so a 9 pt label reads as 9 pt; its size and text scale: `layout.SCREEN`.
DPI = 100
CSS_PX_PER_INCH = 96


def bins_for(n_weights: int) -> int:
    """Bins for a histogram of `n_weights` weights: the square-root rule, 15 to HIST_BINS, so
    that a small layer (LeNet5's conv1: 500 weights, 22 bins) is not drawn as sampling notches."""
    return int(np.clip(round(math.sqrt(n_weights)), 15, HIST_BINS))


class ExplorerFigure:
    """Linked plots of a sweep for one (regularizer, lambda, epoch) at a time."""

    def __init__(self, result: SweepResult, *, layout: Layout = SCREEN, dpi: int = DPI) -> None:
        if result.baseline is None and not any(result.lambdas(r) for r in WITH_LAMBDA):
            raise ValueError("the sweep holds no runs; run psp_lite.experiments.sweep(...) first.")
        self.result = result
        self.layout, self.figsize, self.dpi = layout, layout.figsize, dpi
        self.draws: list[DrawRecord] = []
        self._build()

    # ------------------------------------------------------------------ data, precomputed

    def lambdas(self, regularizer: str) -> list[float]:
        """Slider values for `regularizer`: 0 (no regularization, if swept) then its lambdas."""
        zero = [0.0] if self.result.baseline is not None else []
        return zero + self.result.lambdas(regularizer)

    def regularizers(self) -> list[str]:
        return [r for r in WITH_LAMBDA if self.result.lambdas(r)] or ["psp"]

    def default_state(self) -> ExplorerState:
        """PSP (or the first swept regularizer) at its paper lambda if swept, last epoch."""
        reg = self.regularizers()[0]
        lams = self.lambdas(reg)
        target = {"psp": 1e-3, "l2": 1e-4}[reg]
        lam = min(lams, key=lambda v: abs(math.log10(v) - math.log10(target)) if v else 99)
        return ExplorerState(reg, lam, self.result.epochs)

    def history(self, state: ExplorerState) -> RunHistory:
        try:
            return self.result.get(state.regularizer, state.lam)
        except KeyError:
            raise KeyError(f"{short_name(state.regularizer)} at λ={state.lam:g} "
                           f"is not in the sweep; train it first.") from None

    def _runs(self) -> dict[tuple[str, float], RunHistory]:
        return dict(self.result.runs)

    def _precompute(self) -> None:
        """Histogram edges per layer (from the unregularized run) and every run's densities."""
        runs = self._runs()
        first = next(iter(runs.values()))
        snap = first.weights[max(first.weights)]
        self.layers = [n for n in snap if n.endswith("weight")]
        ref = self.result.baseline or first
        self.edges: dict[str, np.ndarray] = {}
        for name in self.layers:
            values = np.concatenate([w[name] for w in ref.weights.values()])
            lo, hi = np.percentile(values, [0.05, 99.95])
            span = max(abs(lo), abs(hi))
            self.edges[name] = np.linspace(-span, span, bins_for(snap[name].size) + 1)
        self.hists: dict[tuple[tuple[str, float], int, str], np.ndarray] = {}
        for key, h in runs.items():
            self._add_hists(key, h)

    def _add_hists(self, key: tuple[str, float], h: RunHistory) -> None:
        for epoch, weights in h.weights.items():
            for name in self.layers:
                counts, edges = np.histogram(weights[name], bins=self.edges[name])
                density = counts / max(1, len(weights[name])) / np.diff(edges)
                steps = np.append(density, density[-1])
                self.hists[(key, epoch, name)] = np.where(steps > 0, steps, np.nan)

    def _key(self, state: ExplorerState) -> tuple[str, float]:
        return ("none", 0.0) if state.lam == 0 else (state.regularizer, float(state.lam))

    # ------------------------------------------------------------------ the figure, built once
    #
    # Speed: axes, ticks, labels and the faded curves of every run are static for a regularizer.
    # They are drawn once per regularizer into a cached bitmap; a redraw restores that bitmap and
    # draws only the dynamic artists (highlighted run, epoch markers, histograms, titles) on top.

    def _build(self) -> None:
        self._precompute()
        fig = Figure(figsize=self.figsize, dpi=self.dpi)
        self.canvas = FigureCanvasAgg(fig)
        self.figure = fig
        pt = self.layout.pt
        panels = place_panels(fig, self.layout, len(self.layers))
        self.ax_err, self.ax_z2, self.ax_w = panels.error, panels.z2, panels.weights
        epochs = np.arange(1, self.result.epochs + 1)
        self.err_lines: dict[tuple[str, float], Line2D] = {}
        self.z2_lines: dict[tuple[str, float], Line2D] = {}
        for key, h in self._runs().items():
            style = dict(color=COLORS[key[0]], lw=1.0, alpha=0.3)
            if key[0] == "none":
                style = dict(color=COLORS["none"], lw=1.5, ls="--", alpha=0.9)
            n = len(h.test_error)
            (self.err_lines[key],) = self.ax_err.plot(epochs[:n], h.test_error, **style)
            (self.z2_lines[key],) = self.ax_z2.plot(epochs[:n], h.z2, **style)
        # dynamic artists: redrawn on every change
        (self.err_hl,) = self.ax_err.plot([], [], lw=3.0, zorder=4)
        (self.z2_hl,) = self.ax_z2.plot([], [], lw=3.0, zorder=4)
        self.err_band, self.z2_band = seed_band(self.ax_err), seed_band(self.ax_z2)
        self.err_marker = self.ax_err.axvline(1, color="k", lw=0.8, alpha=0.5)
        self.z2_marker = self.ax_z2.axvline(1, color="k", lw=0.8, alpha=0.5)
        (self.err_dot,) = self.ax_err.plot([], [], "o", color="k", ms=5, zorder=5)
        (self.z2_dot,) = self.ax_z2.plot([], [], "o", color="k", ms=5, zorder=5)
        # the chosen run's error when it is above the axis (far worse runs leave through the top)
        self.err_off = self.ax_err.text(
            1, 0.97, "", transform=blended_transform_factory(self.ax_err.transData,
                                                             self.ax_err.transAxes),
            va="top", fontsize=pt(9), zorder=6,
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.5", alpha=0.9))
        self.ax_err.set(xlabel="epoch", ylabel="test error [%]")
        seeds = f" (band: {self.result.seeds} seeds)" if self.result.seeds > 1 else ", 1 seed"
        self.ax_err.set_title(f"test error vs epoch{seeds}", fontsize=pt(10))
        self.ax_z2.set(xlabel="epoch", yscale="log")  # the title names it: no label to crowd
        self.ax_z2.set_title(f"<z²> vs epoch{seeds}", fontsize=pt(10))
        # plain numbers ("0.3"), not "3×10⁻¹" (which crowds a narrow panel)
        plain_log_labels(self.ax_z2.yaxis, self.layout.z2_ticks)
        for ax in (self.ax_err, self.ax_z2):
            ax.grid(alpha=0.3)
            ax.set_xlim(0.8, self.result.epochs + 0.2)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        # the lambda curve: PSP and l2 each on its own lambda axis (their units differ)
        self.ax_u = lambda_axes(fig, panels.lambdas)
        self.u_lines = draw_lambda_points(self.ax_u, self.result.groups())
        mark_paper_and_diverged(self.ax_u, self.result.diverged)
        fit_error_range(self.ax_u, [self.result.groups()])
        if self.result.baseline is not None:  # the activity's rule, drawn where it is read
            cutoff = learning_cutoff(self.result)
            for ax in self.ax_u.values():
                ax.axhline(cutoff, color="0.2", ls="-.", lw=1.2, zorder=1)
                low, high = ax.get_ylim()
                ax.set_ylim(low, max(high, cutoff + 0.05 * (high - low)))
                ax.yaxis.set_major_locator(MaxNLocator(self.layout.error_ticks,
                                                       steps=[1, 2, 5, 10]))
        for reg, ax in self.ax_u.items():
            ax.set_title(f"{short_name(reg)}: test error vs λ", fontsize=pt(10))
            ax.xaxis.label.set_fontsize(pt(9))
        self.ax_u["psp"].set_ylabel("test error [%]")
        self.u_dots = {reg: ax.plot([], [], "o", ms=11, mfc="none", mec="k", mew=2, zorder=5)[0]
                       for reg, ax in self.ax_u.items()}
        self.u_y = {key: float(np.mean([h.late_error() for h in self.result.histories(*key)]))
                    for key in self._runs()}
        self.hist_base: list[Line2D] = []
        self.hist_run: list[Line2D] = []
        for ax, name in zip(self.ax_w, self.layers, strict=True):
            edges = self.edges[name]
            (base,) = ax.plot(edges, np.full(len(edges), np.nan), drawstyle="steps-post",
                              color=COLORS["none"], lw=1.2, label=LABELS["none"])
            (cur,) = ax.plot(edges, np.full(len(edges), np.nan), drawstyle="steps-post",
                             color=COLORS["psp"], lw=1.6, label="chosen λ")
            self.hist_base.append(base)
            self.hist_run.append(cur)
            values = [v for k, v in self.hists.items() if k[2] == name]
            top = np.nanmax(values)
            bottom = max(np.nanmin(values), top * 1e-6)
            ax.set(yscale="log", ylim=(bottom * 0.7, top * 1.5), xlim=(edges[0], edges[-1]),
                   xlabel=f"{name.removesuffix('.weight')} weight")
            ax.yaxis.set_minor_formatter(NullFormatter())
        if self.ax_w:
            self.ax_w[0].set_ylabel("density")
        for ax in fig.axes:
            ax.tick_params(which="both", labelsize=pt(9))
            for label in (ax.xaxis.label, ax.yaxis.label):
                label.set_fontsize(max(label.get_fontsize(), pt(9)))
        self._legend()
        self.hist_title = fig.text(0.5, panels.weights_title_y, "", ha="center",
                                   fontsize=pt(10))
        self.suptitle = fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=pt(12))
        self.dynamic = [self.err_band, self.z2_band, self.err_hl, self.z2_hl, self.err_marker,
                        self.z2_marker, self.err_dot, self.z2_dot, self.err_off,
                        *self.u_dots.values(), *self.hist_base, *self.hist_run,
                        self.hist_title, self.suptitle]
        self._static_reg: str | None = None
        self._backgrounds: dict[str, Any] = {}

    def _legend(self) -> None:
        """One legend for every panel, in a strip below them: never over the data."""
        n = self.result.seeds
        band = f"bands: min-max over {n} seeds" if n > 1 else "1 seed (no band)"
        late = self.result.late_window()
        handles = [Line2D([], [], color=COLORS["psp"], lw=2, label=LABELS["psp"]),
                   Line2D([], [], color=COLORS["l2"], lw=2, label=LABELS["l2"]),
                   Line2D([], [], color=COLORS["none"], lw=1.5, ls="--", label=LABELS["none"]),
                   Line2D([], [], color="k", lw=3, marker="o", mfc="none", ms=8,
                          label="thick line / circle: the chosen run (first seed)"),
                   Line2D([], [], color="0.5", lw=1.0, alpha=0.5,
                          label="thin lines: its other λ"),
                   Patch(color="0.6", alpha=0.5, label=f"{band}; λ panels: {late}, mean"),
                   Line2D([], [], color="0.3", ls=":", lw=1.3, label="the paper's λ"),
                   Line2D([], [], color="0.3", marker="X", ls="none", ms=8,
                          label="diverged (loss NaN)"),
                   Line2D([], [], color="0.2", ls="-.", lw=1.2,
                          label="halfway to chance: no longer learning")]
        self.figure.legend(handles=handles, loc="lower center", ncol=self.layout.legend_columns,
                           fontsize=self.layout.pt(9),
                           frameon=False, bbox_to_anchor=(0.5, 0.0))

    def _set_static(self, reg: str) -> None:
        """Static artists for `reg`: its runs (and the baseline) faded, the other's hidden."""
        if reg == self._static_reg:
            return
        for k, line in [*self.err_lines.items(), *self.z2_lines.items()]:
            line.set_visible(k[0] in (reg, "none"))
        for r, line in self.u_lines.items():
            if r in WITH_LAMBDA:
                line.set_alpha(1.0 if r == reg else 0.35)
        self._fit_error_axis(reg)
        self._static_reg = reg

    def _background(self, reg: str) -> Any:
        """The cached bitmap of everything static for `reg` (drawn on first use)."""
        if reg not in self._backgrounds:
            self._set_static(reg)
            for artist in self.dynamic:
                artist.set_animated(True)
            try:
                self.canvas.draw()
            finally:
                for artist in self.dynamic:
                    artist.set_animated(False)
            self._backgrounds[reg] = self.canvas.copy_from_bbox(self.figure.bbox)
        return self._backgrounds[reg]

    def warm(self) -> None:
        """Draw every regularizer's background now, so no slider change has to (~0.4 s each)."""
        current = self._static_reg
        for reg in self.regularizers():
            self._background(reg)
        if current is not None:
            self._set_static(current)

    # ------------------------------------------------------------------ state -> drawing

    def check(self, state: ExplorerState) -> ExplorerState:
        """`state` made valid: a known regularizer and lambda, the epoch clipped to the run."""
        if state.regularizer not in WITH_LAMBDA:
            raise ValueError(f"regularizer must be one of {WITH_LAMBDA}, got "
                             f"{state.regularizer!r}.")
        self.history(state)
        epoch = int(min(max(1, state.epoch), self.result.epochs))
        return ExplorerState(state.regularizer, float(state.lam), epoch)

    def render(self, state: ExplorerState) -> Figure:
        """Set the figure's artists for `state` (no pixels drawn); record and return the figure.

        `render(state).savefig(...)` gives the same picture as `png(state)`.
        """
        start = time.perf_counter()
        state = self.check(state)
        self._set_static(state.regularizer)  # first: _apply reads the error axis' range
        self._apply(state)
        self.draws.append(DrawRecord(state, None, time.perf_counter() - start))
        return self.figure

    def png(self, state: ExplorerState) -> bytes:
        """Draw `state` (cached background + dynamic artists) and encode it as PNG; record it."""
        start = time.perf_counter()
        state = self.check(state)
        background = self._background(state.regularizer)
        self._set_static(state.regularizer)
        self._apply(state)
        self.canvas.restore_region(background)
        for artist in self.dynamic:
            self.figure.draw_artist(artist)
        pixels = np.asarray(self.canvas.buffer_rgba())[..., :3]
        buf = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buf, format="png", compress_level=1)
        data = buf.getvalue()
        self.draws.append(DrawRecord(state, hashlib.sha1(data).hexdigest(),
                                     time.perf_counter() - start))
        return data

    @property
    def shown_width_px(self) -> int:
        """The width (CSS px) at which the image widget shows the picture: its true size."""
        return round(self.figsize[0] * CSS_PX_PER_INCH)

    @property
    def last(self) -> DrawRecord | None:
        return self.draws[-1] if self.draws else None

    def _apply(self, state: ExplorerState) -> None:
        """Move `state`'s numbers into the dynamic artists."""
        reg, key, e = state.regularizer, self._key(state), state.epoch
        h = self.history(state)
        color = COLORS[key[0]]
        epochs = np.arange(1, len(h.test_error) + 1)
        err, z2 = h.test_error[e - 1], h.z2[e - 1]
        for line, ys in ((self.err_hl, h.test_error), (self.z2_hl, h.z2)):
            line.set_data(epochs, ys)
            line.set_color(color)
        seeds = self.result.histories(*key)
        set_seed_band(self.err_band, [s.test_error for s in seeds], color)
        set_seed_band(self.z2_band, [s.z2 for s in seeds], color)
        for line in (self.err_marker, self.z2_marker):
            line.set_xdata([e, e])
        self.err_dot.set_data([e], [err])
        self.z2_dot.set_data([e], [z2])
        above = err > self.ax_err.get_ylim()[1]
        self.err_off.set_text(f"↑ {err:.1f} %" if above else "")
        self.err_off.set_x(e)
        self.err_off.set_ha("left" if e <= len(epochs) / 3 else
                            "right" if e > 2 * len(epochs) / 3 else "center")
        # lambda 0 cannot sit on a log axis: mark the baseline (dashed) on the left edge instead
        u_x = state.lam or self.ax_u[reg].get_xlim()[0]
        for r, dot in self.u_dots.items():
            dot.set_data(([u_x], [self.u_y[key]]) if r == reg else ([], []))
            dot.set_clip_on(bool(state.lam))
        snap = snapshot_for(h.weights, e)
        base = self.result.baseline
        base_snap = snapshot_for(base.weights, e) if base is not None else None
        for name, cur, ref in zip(self.layers, self.hist_run, self.hist_base, strict=True):
            cur.set_ydata(self.hists[(key, snap, name)])
            cur.set_color(color)  # λ = 0 is the gray of no regularization, not the slider's
            if base_snap is not None:
                ref.set_ydata(self.hists[(("none", 0.0), base_snap, name)])
        note = "" if snap == e else f" (the latest kept at or before epoch {e})"
        self.hist_title.set_text(f"weights per layer at epoch {snap}{note}, first seed; gray: "
                                 "no regularization")
        name = short_name(reg if state.lam else "none")
        label = format_lambda(state.lam) if state.lam else "0"
        late = self.u_y[key]
        between = "\n" if self.layout.stacked else ";  "  # a projector's line is shorter
        self.suptitle.set_text(f"{name}, λ = {label}, first seed, epoch {e}:  test error "
                               f"{err:.2f} %,  <z²> {z2:.3g}{between}mean of seeds, "
                               f"{self.result.late_window()}: {late:.2f} %")

    def _fit_error_axis(self, reg: str) -> None:
        """y range of the test-error panel: every visible run, except that runs far worse than
        the unregularized one leave through the top (the lambda curve shows them whole)."""
        curves = [h.test_error for k, h in self._runs().items() if k[0] in (reg, "none")]
        lo = min(min(c) for c in curves)
        hi = max(max(c) for c in curves)
        if self.result.baseline is not None:
            hi = min(hi, lo + 1.25 * (max(self.result.baseline.test_error) - lo) + 1.0)
        pad = 0.04 * (hi - lo) + 0.1
        self.ax_err.set_ylim(lo - pad, hi + pad)

    # ------------------------------------------------------------------ adding runs

    def add_run(self, history: RunHistory) -> None:
        """Add a run (e.g. a newly trained lambda) and rebuild the figure around it."""
        self.result.add(history)
        self._build()


__all__ = ["ExplorerFigure"]
