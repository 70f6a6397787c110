"""What a training run leaves: its per-epoch history, and groups of histories (per regularizer,
or a lambda sweep's grid) as the report side reads them.

Divergence, in one place (issue 17): a run whose loss became NaN/inf is a `RunHistory` with
`diverged_at` set to that epoch, holding the epochs before it. It is stored in the run cache and
in packs like any other history (a resumed sweep does not retrain it), returned by `run_many`,
`train_many` and the runners, and left out of statistics by `report.stats.finished`. Only the
single-run calls `train` and `run` raise, `TrainingDiverged`, which carries that history and
says what to try; `SweepResult.diverged` lists the keys of a sweep's diverged histories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.training.config import RunConfig


def late_epochs(epochs: int) -> int:
    """How many final epochs every late-epoch number averages: epochs 31..end as the authors do
    when there are more than 40, else the last 40 % (at least 1). One rule for tables, sweep
    points and the explorer's lambda curve, so that what is plotted side by side is the same
    statistic."""
    return epochs - 30 if epochs > 40 else max(1, round(0.4 * epochs))


@dataclass
class RunHistory:
    """Per-epoch record of one run (index i is epoch i + 1)."""

    config: RunConfig
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)  # percent
    z2: list[float] = field(default_factory=list)  # layer-mean <z^2> on the test set (Fig. 2b)
    z2_layers: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # wall time per epoch
    weights: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # epoch -> name -> flat
    device: str = ""
    data_note: str = ""
    diverged_at: int | None = None  # the epoch whose loss became NaN/inf; earlier epochs are kept

    @property
    def epochs(self) -> list[int]:
        return list(range(1, len(self.test_error) + 1))

    def final_error(self, last: int = 1) -> float:
        """Mean test error (%) over the last `last` epochs."""
        return float(np.mean(self.test_error[-last:]))

    def late_error(self) -> float:
        """Mean test error (%) over the late epochs (`late_epochs` of the epochs run)."""
        return self.final_error(late_epochs(len(self.test_error)))


class TrainingDiverged(RuntimeError):
    """Raised by `train` / `run` for a diverged run: `history` (with `diverged_at` set) holds
    the epochs finished before; `value` is the loss seen, when known."""

    def __init__(self, history: RunHistory, value: float | None = None) -> None:
        if history.diverged_at is None:
            raise ValueError("TrainingDiverged needs a history with diverged_at set.")
        config, epoch = history.config, history.diverged_at
        loss = "NaN/inf" if value is None else f"{value}"
        super().__init__(
            f"{config.label}: the training loss became {loss} in epoch {epoch}; try a smaller "
            f"lambda (now {config.lam:g}) or learning rate (now {config.lr:g}). The {epoch - 1} "
            "epochs before are kept in this error's history.")
        self.history, self.value = history, value

    def __reduce__(self) -> tuple[type, tuple[RunHistory, float | None]]:
        """Pickled (e.g. from a Ray or multiprocessing worker) with its history, not only the
        message."""
        return type(self), (self.history, self.value)


Groups = dict[str, list[RunHistory]]  # a group (e.g. a regularizer) -> one history per seed
Key = tuple[str, float]  # (regularizer, lambda); ("none", 0.0) is the unregularized run


def default_snapshots(epochs: int) -> tuple[int, ...]:
    """First, middle and last epoch: what the epoch slider's histograms can show."""
    return tuple(sorted({1, (epochs + 1) // 2, epochs}))


def snapshot_for(epochs_kept: Iterable[int], epoch: int) -> int:
    """The latest kept snapshot epoch at or before `epoch` (the earliest one if none is)."""
    kept = sorted(epochs_kept)
    if not kept:
        raise ValueError("this run kept no weight snapshots.")
    earlier = [e for e in kept if e <= epoch]
    return earlier[-1] if earlier else kept[0]


@dataclass
class SweepResult:
    """The runs of one sweep, keyed by (regularizer, lambda).

    `runs` holds the first seed's run of each key (the explorer draws its curves and weights);
    `seed_runs` every seed's run of each key, the first seed first (a one-seed sweep may leave
    it empty). Every number over lambda is the late-epoch test error (`late_epochs`), the mean
    over the seeds that finished.
    """

    base: RunConfig  # the shared protocol (regularizer "none", the first seed)
    runs: dict[Key, RunHistory] = field(default_factory=dict)
    diverged: list[Key] = field(default_factory=list)  # keys of histories with diverged_at set
    seed_runs: dict[Key, list[RunHistory]] = field(default_factory=dict)

    def lambdas(self, regularizer: str) -> list[float]:
        """The swept lambdas of `regularizer`, ascending (0.0 for "none")."""
        return sorted(lam for reg, lam in self.runs if reg == regularizer)

    def get(self, regularizer: str, lam: float) -> RunHistory:
        """The run of `regularizer` at `lam` (lam 0 gives the unregularized run)."""
        if lam == 0 or regularizer == "none":
            return self.runs[("none", 0.0)]
        return self.runs[(regularizer, float(lam))]

    def histories(self, regularizer: str, lam: float) -> list[RunHistory]:
        """Every seed's run of `regularizer` at `lam`, the first seed first."""
        key = ("none", 0.0) if lam == 0 or regularizer == "none" else (regularizer, float(lam))
        return self.seed_runs.get(key) or [self.runs[key]]

    @property
    def seeds(self) -> int:
        """The most seeds any (regularizer, lambda) of the sweep has."""
        return max((len(self.histories(*key)) for key in self.runs), default=0)

    def groups(self) -> Groups:
        """Every seed's run, grouped by regularizer ("none", "psp", "l2"): what
        `report.stats.sweep_points` reads, for a student's sweep and a pack's alike."""
        out: Groups = {}
        for reg, lam in sorted(self.runs, key=lambda k: (k[0] != "none", k)):
            out.setdefault(reg, []).extend(self.histories(reg, lam))
        return out

    @property
    def baseline(self) -> RunHistory | None:
        return self.runs.get(("none", 0.0))

    @property
    def epochs(self) -> int:
        return self.base.epochs

    def late_window(self) -> str:
        """The epochs every late-epoch number averages, e.g. "epochs 7-10" (or "epoch 2")."""
        k, n = late_epochs(self.epochs), self.epochs
        return f"epoch {n}" if k == 1 else f"epochs {n - k + 1}-{n}"

    def late_errors(self, regularizer: str) -> list[tuple[float, list[float]]]:
        """(lambda, late-epoch test error % of each seed) for each lambda of `regularizer`."""
        return [(lam, [h.late_error() for h in self.histories(regularizer, lam)])
                for lam in self.lambdas(regularizer)]

    def final_errors(self, regularizer: str) -> list[tuple[float, float]]:
        """(lambda, late-epoch test error %, mean over seeds) for each lambda of `regularizer`."""
        return [(lam, float(np.mean(errors))) for lam, errors in self.late_errors(regularizer)]

    def best(self, regularizer: str) -> tuple[float, float]:
        """(lambda, late-epoch test error %) of the lowest such error of `regularizer`."""
        return min(self.final_errors(regularizer), key=lambda item: item[1])

    def add(self, history: RunHistory) -> None:
        """Add (or replace) a run, e.g. one trained later from the explorer; a run of another
        seed than the sweep's first joins `seed_runs` only."""
        c = history.config
        key = (c.regularizer, float(c.lam))
        if c.seed == self.base.seed or key not in self.runs:
            self.runs[key] = history
        seeds = [h for h in self.seed_runs.get(key, []) if h.config.seed != c.seed]
        self.seed_runs[key] = sorted([*seeds, history],
                                     key=lambda h: (h.config.seed != self.base.seed,
                                                    h.config.seed))

    def config_for(self, regularizer: str, lam: float, seed: int | None = None) -> RunConfig:
        """The config of a run of this sweep's protocol at (regularizer, lam), for `seed`
        (default: the sweep's first)."""
        if regularizer == "none":
            lam = 0.0
        changes = {} if seed is None else {"seed": seed}
        return dataclasses.replace(self.base, regularizer=regularizer, lam=float(lam), **changes)

    def table(self, regularizer: str | None = None) -> str:
        """Late-epoch test error (%, averaged over `late_window()`) vs lambda as a Markdown
        table, one column per regularizer, or only `regularizer`'s with its own λ column (their
        λ are in different units); with several seeds, mean ± std over seeds (seeds in
        brackets)."""
        tried = {*self.runs, *self.diverged}
        regs = [r for r in WITH_LAMBDA if any(k[0] == r for k in tried)
                and regularizer in (None, r)]
        lams = sorted({lam for r, lam in tried if r in regs})
        first = f"{short_name(regularizer)} λ" if regularizer else "λ"
        head = f"| {first} | " + " | ".join("test error %" if regularizer else
                                            f"{short_name(r)}: test error %" for r in regs) + " |"
        lines = [head, "|---" * (len(regs) + 1) + "|"]

        def cell(key: Key) -> str:
            errors = [h.late_error() for h in self.histories(*key)]
            if len(errors) == 1:
                return f"{errors[0]:.2f}"
            return f"{np.mean(errors):.2f} ± {np.std(errors):.2f} ({len(errors)})"

        if self.baseline is not None:
            lines.append("| 0 (no regularization) | "
                         + " | ".join([cell(("none", 0.0))] * len(regs)) + " |")
        for lam in lams:
            cells = []
            for r in regs:
                if (r, lam) in self.runs:
                    cells.append(cell((r, lam)))
                else:
                    cells.append("diverged" if (r, lam) in self.diverged else "—")
            lines.append(f"| {lam:g} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
