"""What a run ends as, shared by both runners: its history (a diverged run too: `diverged_at`
set, see `psp_lite.training.history`), or a `FailedRun` in its place when the run could not be
trained for its own reasons; and the driver's bookkeeping of runs as they end (one progress bar,
failures written beside it).

A `FailedRun` is made only where a run is prepared: its device resolved (`RESOLVE_FAILURES`) or
its data found (`DATA_FAILURES`). Issue 17: every ValueError of a whole group, bugs included,
printed "run failed"; now anything raised while training propagates."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from psp_lite.data import DatasetNotFoundError
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged

#: A run's own failures, caught only around its preparation, reported in its place and never
#: retried: a device this machine lacks (`RunConfig.resolved`), its dataset missing.
RESOLVE_FAILURES: tuple[type[BaseException], ...] = (ValueError,)
DATA_FAILURES: tuple[type[BaseException], ...] = (DatasetNotFoundError,)


@dataclass
class FailedRun:
    """A run that could not be trained: its config and the error that stopped it (its own
    preparation's, or its Ray worker dying past its retries)."""

    config: RunConfig
    error: BaseException

    def __str__(self) -> str:
        return (f"{self.config.label}, seed {self.config.seed}: "
                f"{type(self.error).__name__}: {self.error}")


Outcome = RunHistory | FailedRun
OnResult = Callable[[int, Outcome], None]


def histories_or_raise(outcomes: Sequence[Outcome]) -> list[RunHistory]:
    """The histories, all finished: else the first failed run's own error raised, or
    `TrainingDiverged` carrying the first diverged history."""
    for outcome in outcomes:
        if isinstance(outcome, FailedRun):
            raise outcome.error
        if outcome.diverged_at is not None:
            raise TrainingDiverged(outcome)
    return list(outcomes)  # type: ignore[arg-type]


def runs_bar(total: int, desc: str, progress: bool) -> tqdm:
    """One progress bar over `total` runs (hidden without `progress`)."""
    return tqdm(total=total, desc=desc, unit="run", disable=not progress)


def record_outcome(bar: tqdm, i: int, outcome: Outcome, on_result: OnResult | None) -> None:
    """Driver-side bookkeeping of one ended run: report a failure, advance the bar, callback."""
    if not bar.disable and isinstance(outcome, FailedRun):
        bar.write(f"run failed: {outcome}")
    elif not bar.disable and outcome.diverged_at is not None:
        bar.write(f"run diverged: {outcome.config.label}, seed {outcome.config.seed}, in epoch "
                  f"{outcome.diverged_at}")
    bar.update()
    if on_result is not None:
        on_result(i, outcome)


def finish_bar(bar: tqdm, outcomes: Sequence[Outcome | None], start: float,
              note: str = "") -> None:
    """The bar's last word: how many runs failed or diverged, and the seconds it all took."""
    failed = sum(isinstance(o, FailedRun) for o in outcomes)
    diverged = sum(isinstance(o, RunHistory) and o.diverged_at is not None for o in outcomes)
    bar.set_postfix_str(f"{note}{failed} failed, {diverged} diverged, "
                        f"{time.perf_counter() - start:.0f} s")
