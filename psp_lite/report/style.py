"""How figures look: the regularizers' legend labels and line colours (one home for both, so a
legend, a bar and a slider always agree; their names: `psp_lite.regularizers`), and `readable`,
which every teaching and report figure passes through so it stays readable when projected.

A notebook shows a figure at its own pixel size unless it is wider than the output column
(then the browser shrinks it, and every font with it). So a figure is at most `MAX_WIDTH_IN`
inches wide at `DPI` dots per inch (900 px, narrower than JupyterLab's and Colab's columns), and
no text in it is smaller than `MIN_POINTS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.ticker import (
    FuncFormatter,
    Locator,
    LogFormatter,
    MaxNLocator,
    NullFormatter,
)
from matplotlib.transforms import Bbox

#: Legend labels.
LABELS = {"none": "no regularization", "l2": "l2 (weight decay)", "psp": "PSP"}
#: Line colours (matplotlib colour names).
COLORS = {"none": "tab:gray", "l2": "tab:blue", "psp": "tab:red"}
#: Line styles, so that curves that lie on each other can still be told apart.
LINESTYLES = {"none": "--", "l2": "-.", "psp": "-"}


class PlainLog(LogFormatter):
    """A log axis's labels as plain numbers to 3 digits ("0.235", not "2.35×10⁻¹"), thinned as
    matplotlib's own (so a range under a decade still gets labels)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:.3g}"


class FewLogTicks(Locator):
    """At most `most` labelled ticks on a log axis: the densest of 1, {1, 2, 5} and 1-9 times
    the powers of ten that fits (every k-th power if even 1 is too many), or, inside a range too
    narrow for two of those, `most` evenly spaced round numbers."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self) -> list[float]:
        low, high = sorted(self.axis.get_view_interval())
        return self.tick_values(low, high)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        low, high = max(min(vmin, vmax), 1e-300), max(vmin, vmax)
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        best: list[float] | None = None
        for subs in ((1,), (1, 2, 5), range(1, 10)):
            ticks = [m * 10.0 ** d for d in decades for m in subs if low <= m * 10.0 ** d <= high]
            if len(ticks) > self.most:
                break
            best = ticks
        if best is None:  # even the powers alone are too many: every k-th
            powers = [10.0 ** d for d in decades if low <= 10.0 ** d <= high]
            best = powers[::math.ceil(len(powers) / self.most)]
        if len(best) < 2:
            best = [t for t in MaxNLocator(self.most, steps=[1, 2, 5, 10]).tick_values(low, high)
                    if low <= t <= high]
        return best


def plain_log_labels(axis, most: int | None = None) -> None:
    """Label `axis` (a log axis) with plain numbers, major and minor ticks alike; with `most`,
    label at most that many ticks (`FewLogTicks`) and leave the minor ones unlabelled."""
    if most is None:
        axis.set_major_formatter(PlainLog(labelOnlyBase=False))
        axis.set_minor_formatter(PlainLog(labelOnlyBase=False))
        return
    axis.set_major_locator(FewLogTicks(most))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.3g}"))
    axis.set_minor_formatter(NullFormatter())

#: Smallest font size, in points, of any text in a figure.
MIN_POINTS = 9.0
#: Dots per inch a figure is drawn (and shown inline) at.
DPI = 100
#: Widest figure, in inches: DPI * MAX_WIDTH_IN pixels fit a notebook's output column.
MAX_WIDTH_IN = 9.0


def texts(fig: Figure) -> list[Text]:
    """Every visible text artist of `fig`: titles, labels, tick labels, legends, annotations."""
    found = fig.findobj(lambda a: isinstance(a, Text) and a.get_visible() and a.get_text())
    return list(dict.fromkeys(found))


def drawn_texts(fig: Figure) -> list[Text]:
    """`texts(fig)` less the tick labels outside their axis's view (matplotlib keeps but does
    not draw them), as last drawn."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for locs, labels in ((axis.get_majorticklocs(), axis.get_majorticklabels()),
                                 (axis.get_minorticklocs(), axis.get_minorticklabels())):
                hidden.update(id(t) for loc, t in zip(locs, labels, strict=False)
                              if not low <= loc <= high)
    return [t for t in texts(fig) if id(t) not in hidden]


def overlapping_texts(fig: Figure, slack_px: float = 2.0) -> list[tuple[str, str]]:
    """Pairs of `drawn_texts(fig)` whose boxes overlap (a label over a title, tick labels run
    together). Not counted: texts at a slant (their upright box is larger than the glyphs), a
    twin's copy of a label drawn exactly on it, and boxes that meet by under `slack_px` (a line
    box has room above and below its glyphs)."""
    boxes = [(t.get_text(), t.get_window_extent()) for t in drawn_texts(fig)
             if t.get_rotation() % 90 == 0]

    def meet(one: Bbox, two: Bbox) -> bool:
        return (min(one.x1, two.x1) - max(one.x0, two.x0) > slack_px
                and min(one.y1, two.y1) - max(one.y0, two.y0) > slack_px)

    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:]
            if meet(box, other) and (a, tuple(box.bounds)) != (b, tuple(other.bounds))]


def legend_below(fig: Figure, axes: Sequence[Axes], ncol: int | None = None) -> Legend:
    """One legend for `axes` under the panels, off the data (`readable` leaves room for it)."""
    handles: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return fig.legend(list(handles.values()), list(handles), loc="lower center",
                      ncol=ncol or len(handles), frameon=False)


#: What a smoke run's figure says across its top, so that a screenshot cannot pass for a result.
SMOKE_STAMP = "SMOKE RUN: the code runs; not a result"


def stamp_smoke(fig: Figure) -> float:
    """Write SMOKE_STAMP across the top of `fig`, above its title; returns the height it takes
    (a fraction of the figure)."""
    height = 1.8 * MIN_POINTS / 72 / fig.get_size_inches()[1]
    title = fig.get_suptitle()
    for text in fig.texts:  # the title moves down under the stamp
        if title and text.get_text() == title:
            text.set_y(1 - height)
    fig.text(0.5, 1 - 0.15 * height, SMOKE_STAMP, ha="center", va="top", color="tab:red",
             fontsize=MIN_POINTS, fontweight="bold")
    return height


def readable(fig: Figure, *, layout: bool = True, smoke: bool = False) -> Figure:
    """Raise every text of `fig` below MIN_POINTS to it, set DPI, shrink a too wide figure to
    MAX_WIDTH_IN (keeping its aspect), with `smoke` stamp it (`stamp_smoke`), then lay it out
    again, leaving room at the bottom for a figure legend (`legend_below`). Returns `fig`."""
    width, height = fig.get_size_inches()
    if width > MAX_WIDTH_IN:
        fig.set_size_inches(MAX_WIDTH_IN, height * MAX_WIDTH_IN / width)
    fig.set_dpi(max(DPI, fig.get_dpi()))
    for text in texts(fig):
        if text.get_fontsize() < MIN_POINTS:
            text.set_fontsize(MIN_POINTS)
    top = 1 - stamp_smoke(fig) if smoke else 1.0
    if layout:
        bottom = 0.0
        for legend in fig.legends:
            fig.draw_without_rendering()
            box = legend.get_window_extent()
            bottom = max(bottom, box.height / (fig.get_size_inches()[1] * fig.dpi) + 0.02)
        fig.tight_layout(rect=(0, bottom, 1, top))
    return fig
