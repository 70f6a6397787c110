"""The lambda explorer (notebook 08): Figs. 2-3 of a finished sweep for one (regularizer,
lambda, epoch), the sliders' `state`, drawn by `figure` in a `layout` (laptop or projector) and
driven by ipywidgets sliders in `widgets`; `activity` measures the class activity's answers
(where each regularizer stops the network learning, and how the weights and <z^2> differ
there)."""

from psp_lite.explorer.activity import (
    activity_pair,
    activity_reading,
    contrast_table,
    learning_limit,
)
from psp_lite.explorer.figure import ExplorerFigure
from psp_lite.explorer.layout import PROJECTOR, SCREEN, Layout
from psp_lite.explorer.state import ExplorerState, format_lambda, nearest_lambda
from psp_lite.explorer.widgets import LambdaExplorer

__all__ = ["PROJECTOR", "SCREEN", "ExplorerFigure", "ExplorerState", "LambdaExplorer", "Layout",
           "activity_pair",
           "activity_reading", "contrast_table", "format_lambda", "learning_limit",
           "nearest_lambda"]
