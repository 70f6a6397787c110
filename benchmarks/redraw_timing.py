"""Timing the lambda explorer's redraws: a walk over its sliders and the time each change takes.

Used by bench_widget_redraw.py (and tested in tests/test_widgets.py); it moves the real
ipywidgets of a `psp_lite.explorer.widgets.LambdaExplorer`, as a user would, one control at a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

from psp_lite.explorer.state import ExplorerState, nearest_lambda
from psp_lite.explorer.widgets import LambdaExplorer


def tour(explorer: LambdaExplorer, n: int, start: ExplorerState | None = None
         ) -> list[ExplorerState]:
    """A walk over the sliders: mostly lambda steps, some epoch moves and switches.

    It starts from `start` (default: where the sliders are, else the first regularizer's first
    lambda at the last epoch); every step changes exactly one slider, to the state its callback
    draws (a switch keeps the nearest lambda, as the lambda slider does).
    """
    regs = explorer.regularizers()
    epochs = explorer.result.epochs
    if start is None and explorer.controls is not None:
        start = explorer.slider_state()
    state = start or ExplorerState(regs[0], explorer.lambdas(regs[0])[0], epochs)
    states: list[ExplorerState] = []
    for step in range(10 * n + 10):  # bounded: a one-run sweep has few distinct states
        if len(states) == n:
            break
        reg, lam, epoch = state.regularizer, state.lam, state.epoch
        if step % 10 == 9 and len(regs) > 1:
            reg = regs[(regs.index(reg) + 1) % len(regs)]
            lam = nearest_lambda(explorer.lambdas(reg), lam)
        elif step % 4 == 3:
            epoch = epoch % epochs + 1
        else:
            lams = explorer.lambdas(reg)
            lam = lams[(lams.index(lam) + 1) % len(lams)]
        new = ExplorerState(reg, lam, epoch)
        if new != state:
            states.append(new)
            state = new
    return states


def move_one_slider(explorer: LambdaExplorer, state: ExplorerState) -> None:
    """Move the one control in which `state` differs from the sliders (its callback redraws)."""
    c = explorer.controls
    if c.reg.value != state.regularizer:
        c.reg.value = state.regularizer
    elif c.lam.value != state.lam:
        c.lam.value = state.lam
    elif c.epoch.value != state.epoch:
        c.epoch.value = state.epoch


def time_redraws(explorer: LambdaExplorer, n: int = 30,
                 states: Iterable[ExplorerState] | None = None) -> list[float]:
    """Seconds from a slider change to the finished redraw, for `n` changes.

    With the widgets built the sliders are moved (callback, render, PNG, image update), then put
    back where they were; otherwise `explorer.png(state)` is timed.
    """
    states = list(states or tour(explorer, n))
    before = explorer.slider_state() if explorer.controls is not None else None
    seconds = []
    for state in states[:n]:
        start = time.perf_counter()
        if explorer.controls is not None:
            move_one_slider(explorer, state)
        else:
            explorer.png(state)
        seconds.append(time.perf_counter() - start)
    if before is not None:  # leave the sliders where the user had them
        explorer.set_state(before)
    return seconds


def median_ms(seconds: list[float]) -> float:
    """Median of `seconds` in milliseconds."""
    return 1000 * statistics.median(seconds)
