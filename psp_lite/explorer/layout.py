"""Where the explorer's panels go and how large its text is: `SCREEN` for a laptop, `PROJECTOR`
for a class (text 1.5 times larger, the lambda panels on a row of their own to make room)."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec
from matplotlib.ticker import MaxNLocator


@dataclass(frozen=True)
class Layout:
    """The explorer's figure size (inches), its text scale and its arrangement."""

    figsize: tuple[float, float]
    text_scale: float
    stacked: bool          # three rows (epoch panels, lambda panels, weights), not two
    legend_columns: int
    weight_ticks: int | None = None   # most ticks on a weight axis (None: matplotlib's choice)
    z2_ticks: int | None = None       # most labelled ticks on the <z^2> axis (None: all)
    error_ticks: int = 6              # most ticks on the lambda panels' error axis
    top_in: float = 0.77      # room above the panels (the title), inches
    bottom_in: float = 1.19   # room below them (the last row's labels, the legend), inches

    def pt(self, size: float) -> float:
        """A font size of the screen layout, in this layout."""
        return size * self.text_scale

    def px(self, size: float) -> str:
        """A CSS width of the screen layout's controls, in this layout."""
        return f"{round(size * self.text_scale)}px"

    def controls_css(self) -> str:
        """A <style> that scales the explorer's ipywidgets (labels, readouts, buttons, slider
        handles) by the text scale, inside `CONTROLS_CLASS` only; '' for the screen's 1."""
        if self.text_scale == 1:
            return ""
        sizes = {"font-size": 13, "inline-height": 28, "inline-label-width": 80,
                 "inline-width": 300, "slider-handle-size": 16}
        rules = " ".join(f"--jp-widgets-{name}: {self.px(v)};" for name, v in sizes.items())
        return (f"<style>.{CONTROLS_CLASS} {{ {rules} }} .{CONTROLS_CLASS} .widget-readout, "
                f".{CONTROLS_CLASS} .widget-label, .{CONTROLS_CLASS} button, "
                f".{CONTROLS_CLASS} .widget-html-content {{ font-size: {self.px(13)}; }}</style>")


#: The CSS class of the box that holds a scaled layout's controls (`Layout.controls_css`).
CONTROLS_CLASS = "psp-lite-large-controls"


#: A laptop screen: every panel in 11 x 7 in, text 9-12 pt.
SCREEN = Layout(figsize=(11.0, 7.0), text_scale=1.0, stacked=False, legend_columns=3)
#: A projector: text 13.5-18 pt in the same width, so the figure is taller (about one screen).
PROJECTOR = Layout(figsize=(11.0, 9.4), text_scale=1.5, stacked=True, legend_columns=2,
                   weight_ticks=3, z2_ticks=4, top_in=1.05, bottom_in=2.45)


@dataclass
class Panels:
    """The axes `place_panels` made, and the height (figure fraction) of the weights' title:
    just above their row."""

    error: Axes
    z2: Axes
    lambdas: SubplotSpec       # the slot `report.lambda_curves.lambda_axes` splits in two
    weights: list[Axes]
    weights_title_y: float


def place_panels(fig: Figure, layout: Layout, n_layers: int) -> Panels:
    """Lay out the explorer's panels in `fig`: test error and <z^2> against the epoch, the
    lambda panels, and one weight histogram per layer (`n_layers`, at most 4)."""
    height = layout.figsize[1]
    top, bottom = 1 - layout.top_in / height, layout.bottom_in / height
    if layout.stacked:
        grid = fig.add_gridspec(3, 12, height_ratios=(0.8, 1.25, 0.8), hspace=1.2, wspace=3.0,
                                left=0.09, right=0.98, top=top, bottom=bottom)
        error = fig.add_subplot(grid[0, 0:6])
        z2 = fig.add_subplot(grid[0, 6:12])
        lambdas, weights_row = grid[1, 0:12], 2
    else:
        grid = fig.add_gridspec(2, 12, height_ratios=(1.15, 1), hspace=0.62, wspace=2.4,
                                left=0.065, right=0.99, top=top, bottom=bottom)
        error = fig.add_subplot(grid[0, 0:3])
        z2 = fig.add_subplot(grid[0, 3:6])
        lambdas, weights_row = grid[0, 6:12], 1
    weights = [fig.add_subplot(grid[weights_row, 3 * i:3 * i + 3]) for i in range(n_layers)]
    if layout.weight_ticks:
        for ax in weights:  # fewer, lower labels: clear of the density axis's lowest one
            ax.xaxis.set_major_locator(MaxNLocator(layout.weight_ticks))
            ax.tick_params(axis="x", pad=7)
    row_top = grid[weights_row, 0:12].get_position(fig).y1
    return Panels(error, z2, lambdas, weights, row_top + layout.pt(0.3) / layout.figsize[1])


__all__ = ["CONTROLS_CLASS", "PROJECTOR", "SCREEN", "Layout", "Panels", "place_panels"]
