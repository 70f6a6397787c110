"""The lambda explorer (notebook 08): Figs. 2-3 of a finished sweep for one (regularizer,
lambda, epoch), drawn by `figure` and driven by ipywidgets sliders in `widgets`."""

from psp_lite.explorer.figure import ExplorerFigure, ExplorerState, format_lambda, nearest_lambda
from psp_lite.explorer.widgets import LambdaExplorer

__all__ = ["ExplorerFigure", "ExplorerState", "LambdaExplorer", "format_lambda", "nearest_lambda"]
