"""The lambda explorer in a notebook: ipywidgets (sliders, image, "train this λ") over its figure.

`LambdaExplorer(result)` is an `ExplorerFigure` (Figs. 2-3 of a finished sweep
for one state, drawn as a PNG) with controls: `explorer.ui()` builds the regularizer toggle, the
lambda and epoch sliders and the train button, and every change redraws the image. The image is an
`ipywidgets.Image`, so the explorer looks the same under the inline backend, ipympl, Colab and
Voila. "train this λ" trains one more lambda with `psp_lite.experiments.train_one`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psp_lite.experiments.lambda_sweep import train_one
from psp_lite.explorer.figure import DPI, ExplorerFigure
from psp_lite.explorer.layout import CONTROLS_CLASS, SCREEN, Layout
from psp_lite.explorer.state import (
    DrawRecord,
    ExplorerState,
    format_lambda,
    lambda_labels,
    nearest_lambda,
)
from psp_lite.regularizers import short_name

if TYPE_CHECKING:
    import ipywidgets

    from psp_lite.runners.spec import Runner
    from psp_lite.training.history import RunHistory, SweepResult


class LambdaExplorer(ExplorerFigure):
    """The explorer's figure with sliders over (regularizer, lambda, epoch) and a train button."""

    def __init__(self, result: SweepResult, *, layout: Layout = SCREEN, dpi: int = DPI,
                 runner: str | Runner = "local") -> None:
        self.runner = runner  # where "train this lambda" trains: "local", "ray" or a Runner
        self.controls: Any = None  # the ipywidgets, once ui() has built them
        self._hold = False
        super().__init__(result, layout=layout, dpi=dpi)

    # ------------------------------------------------------------------ adding runs

    def add_run(self, history: RunHistory) -> None:
        """Add a run (e.g. a newly trained lambda) and rebuild the figure around it; with the
        widgets built, the sliders move to it."""
        super().add_run(history)
        if self.controls is not None:
            c = history.config
            self.set_state(ExplorerState(c.regularizer, c.lam, int(self.controls.epoch.value)))

    def train_lambda(self, regularizer: str, lam: float, *, progress: bool = True) -> RunHistory:
        """Train `lam` under the sweep's protocol (or load it from the cache), add it and show it.

        With the widgets built, the progress bars go to the explorer's log area.
        """
        if self.controls is None:
            history = train_one(self.result, regularizer, lam, progress=progress,
                                runner=self.runner)
            self.add_run(history)
            return history
        c = self.controls
        c.train_button.disabled = True
        c.status.value = f"training {short_name(regularizer)} λ={lam:g} …"
        start = time.perf_counter()
        try:
            with c.log:
                history = train_one(self.result, regularizer, lam, progress=progress,
                                    runner=self.runner)
            self.add_run(history)
        finally:
            c.train_button.disabled = False
        c.status.value += f" — added λ={lam:g} ({time.perf_counter() - start:.1f} s)"
        return history

    # ------------------------------------------------------------------ widgets

    def ui(self, state: ExplorerState | None = None) -> ipywidgets.VBox:
        """The explorer as ipywidgets (sliders, image, train button); display it in a cell."""
        import ipywidgets as w

        _enable_colab_widgets()
        state = self.check(state or self.default_state())
        lams = self.lambdas(state.regularizer)
        c = _Controls(
            reg=w.ToggleButtons(options=[(short_name(r), r) for r in self.regularizers()],
                                value=state.regularizer, description="regularizer"),
            lam=w.SelectionSlider(options=list(zip(lambda_labels(lams), lams, strict=True)),
                                  value=state.lam, description="λ", continuous_update=True,
                                  layout=w.Layout(width=self.layout.px(480))),
            epoch=w.IntSlider(value=state.epoch, min=1, max=self.result.epochs,
                              description="epoch", continuous_update=True),
            image=w.Image(format="png", layout=w.Layout(width=f"{self.shown_width_px}px",
                                                        max_width="100%", height="auto")),
            status=w.HTML(),
            new_lam=w.FloatText(value=2e-3, description="new λ", step=1e-4,
                                layout=w.Layout(width=self.layout.px(200))),
            train_button=w.Button(description="train this λ", icon="play",
                                  tooltip="train this lambda with the sweep's protocol"),
            log=w.Output(),
        )
        self.controls = c
        c.reg.observe(self._on_reg, names="value")
        c.lam.observe(self._on_change, names="value")
        c.epoch.observe(self._on_change, names="value")
        c.train_button.on_click(self._on_train)
        self.warm()
        self.show(state)
        style = [w.HTML(css)] if (css := self.layout.controls_css()) else []
        box = w.VBox([
            *style,
            w.HBox([c.reg, c.lam]),
            w.HBox([c.epoch, c.new_lam, c.train_button]),
            c.status, c.image, c.log,
        ])
        box.add_class("psp-lite-explorer")
        if style:
            box.add_class(CONTROLS_CLASS)  # a projector's controls grow with its text
        return box

    def slider_state(self) -> ExplorerState:
        """The state the sliders show."""
        c = self.controls
        return ExplorerState(c.reg.value, float(c.lam.value), int(c.epoch.value))

    def show(self, state: ExplorerState) -> None:
        """Draw `state` into the image widget (what every slider callback does)."""
        data = self.png(state)
        c = self.controls
        c.image.value = data
        h = self.history(self.last.state)
        c.status.value = (f"<b>{h.config.label}</b>, epoch {self.last.state.epoch}: test error "
                          f"{h.test_error[self.last.state.epoch - 1]:.2f} %, redraw "
                          f"{1000 * self.last.seconds:.0f} ms")

    def _on_change(self, change: dict | None = None) -> None:
        if not self._hold:
            self.show(self.slider_state())

    def _on_reg(self, change: dict) -> None:
        if self._hold:
            return
        self._sync_lambda_slider(change["new"], float(self.controls.lam.value))
        self.show(self.slider_state())

    def _sync_lambda_slider(self, regularizer: str, near: float) -> None:
        """Give the lambda slider `regularizer`'s values, keeping the one nearest `near`."""
        c = self.controls
        lams = self.lambdas(regularizer)
        held, self._hold = self._hold, True
        try:
            c.lam.options = list(zip(lambda_labels(lams), lams, strict=True))
            c.lam.value = nearest_lambda(lams, near)
        finally:
            self._hold = held

    def _on_train(self, _button: Any = None) -> None:
        c = self.controls
        try:
            self.train_lambda(c.reg.value, float(c.new_lam.value))
        except Exception as error:  # noqa: BLE001 - shown in the UI, not raised into the void
            c.status.value = f"<span style='color:#b00'>could not train: {error}</span>"

    def set_state(self, state: ExplorerState) -> None:
        """Move every slider to `state` and redraw once."""
        state = self.check(state)
        c = self.controls
        held, self._hold = self._hold, True
        try:
            c.reg.value = state.regularizer
            self._sync_lambda_slider(state.regularizer, state.lam)
            c.epoch.value = state.epoch
        finally:
            self._hold = held
        self.show(self.slider_state())


@dataclass
class _Controls:
    reg: Any
    lam: Any
    epoch: Any
    image: Any
    status: Any
    new_lam: Any
    train_button: Any
    log: Any


def _enable_colab_widgets() -> None:
    """In Colab, turn on the widget manager that third-party/ipywidgets 8 widgets need."""
    if "google.colab" in sys.modules:
        try:
            from google.colab import output  # type: ignore[import-not-found]

            output.enable_custom_widget_manager()
        except Exception:  # noqa: BLE001 - best effort; the widgets may still work
            pass


__all__ = ["DrawRecord", "ExplorerState", "LambdaExplorer", "format_lambda"]
