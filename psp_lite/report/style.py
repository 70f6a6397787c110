"""How figures look: the regularizers' legend labels and line colours (one home for both, so a
legend, a bar and a slider always agree; their names: `psp_lite.regularizers`), and `readable`,
which every teaching and report figure passes through so it stays readable when projected.

A notebook shows a figure at its own pixel size unless it is wider than the output column
(then the browser shrinks it, and every font with it). So a figure is at most `MAX_WIDTH_IN`
inches wide at `DPI` dots per inch (900 px, narrower than JupyterLab's and Colab's columns), and
no text in it is smaller than `MIN_POINTS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.ticker import LogFormatter

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


def plain_log_labels(axis) -> None:
    """Label `axis` (a log axis) with plain numbers, major and minor ticks alike."""
    axis.set_major_formatter(PlainLog(labelOnlyBase=False))
    axis.set_minor_formatter(PlainLog(labelOnlyBase=False))

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


def legend_below(fig: Figure, axes: Sequence[Axes], ncol: int | None = None) -> Legend:
    """One legend for `axes` under the panels, off the data (`readable` leaves room for it)."""
    handles: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return fig.legend(list(handles.values()), list(handles), loc="lower center",
                      ncol=ncol or len(handles), frameon=False)


def readable(fig: Figure, *, layout: bool = True) -> Figure:
    """Raise every text of `fig` below MIN_POINTS to it, set DPI, shrink a too wide figure to
    MAX_WIDTH_IN (keeping its aspect), then lay it out again, leaving room at the bottom for a
    figure legend (`legend_below`). Returns `fig`."""
    width, height = fig.get_size_inches()
    if width > MAX_WIDTH_IN:
        fig.set_size_inches(MAX_WIDTH_IN, height * MAX_WIDTH_IN / width)
    fig.set_dpi(max(DPI, fig.get_dpi()))
    for text in texts(fig):
        if text.get_fontsize() < MIN_POINTS:
            text.set_fontsize(MIN_POINTS)
    if layout:
        bottom = 0.0
        for legend in fig.legends:
            fig.draw_without_rendering()
            box = legend.get_window_extent()
            bottom = max(bottom, box.height / (fig.get_size_inches()[1] * fig.dpi) + 0.02)
        fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig
