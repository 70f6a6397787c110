"""What a run ends as, shared by both runners: its history, or a `FailedRun` in its place; and
the driver's bookkeeping of runs as they end (one progress bar, failures written beside it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from psp_lite.data import DatasetNotFoundError
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged

#: Errors that belong to one run: reported in its place, never retried, the others go on.
FAILURES: tuple[type[BaseException], ...] = (TrainingDiverged, ValueError, DatasetNotFoundError)


@dataclass
class FailedRun:
    """A run that did not finish: its (resolved) config and the error that stopped it."""

    config: RunConfig
    error: BaseException

    @property
    def diverged(self) -> bool:
        return isinstance(self.error, TrainingDiverged)

    def __str__(self) -> str:
        return (f"{self.config.label}, seed {self.config.seed}: "
                f"{type(self.error).__name__}: {self.error}")


Outcome = RunHistory | FailedRun
OnResult = Callable[[int, Outcome], None]


def histories_or_raise(outcomes: Sequence[Outcome]) -> list[RunHistory]:
    """The histories, or the first failed run's own error raised."""
    for outcome in outcomes:
        if isinstance(outcome, FailedRun):
            raise outcome.error
    return list(outcomes)  # type: ignore[arg-type]


def runs_bar(total: int, desc: str, progress: bool) -> tqdm:
    """One progress bar over `total` runs (hidden without `progress`)."""
    return tqdm(total=total, desc=desc, unit="run", disable=not progress)


def record_outcome(bar: tqdm, i: int, outcome: Outcome, on_result: OnResult | None) -> None:
    """Driver-side bookkeeping of one ended run: report a failure, advance the bar, callback."""
    if isinstance(outcome, FailedRun) and not bar.disable:
        bar.write(f"run failed: {outcome}")
    bar.update()
    if on_result is not None:
        on_result(i, outcome)


def finish_bar(bar: tqdm, outcomes: Sequence[Outcome | None], start: float,
              note: str = "") -> None:
    """The bar's last word: how many runs failed, and the seconds it all took."""
    failed = sum(isinstance(o, FailedRun) for o in outcomes)
    bar.set_postfix_str(f"{note}{failed} failed, {time.perf_counter() - start:.0f} s")
