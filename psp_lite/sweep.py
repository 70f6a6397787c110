"""A lambda sweep: LeNet5 trained over a grid of lambdas for PSP and for l2, plus no
regularization, each run through the run cache.

Stop and resume: every finished run is written to the cache atomically as soon as it ends, so
interrupting a sweep (Ctrl-C, a closed laptop, a killed kernel) loses only the run in progress;
calling `sweep` again with the same arguments loads the finished runs and trains the rest.

Weight snapshots (for the explorer's epoch slider) are kept at three epochs per run by default:
the first, the middle and the last. LeNet5 has ~431k parameters (1.7 MB per snapshot), so a run
takes ~5 MB of cache and the default 19-run sweep ~100 MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from psp_lite import cache
from psp_lite.checks import positive_int_arg
from psp_lite.data import TensorData, load_dataset
from psp_lite.device import device_name
from psp_lite.names import WITH_LAMBDA, short_name
from psp_lite.readings import sweep_reading
from psp_lite.regularizers import check_lambda
from psp_lite.runner import (
    FailedRun,
    Outcome,
    Runner,
    add_cli_arguments,
    histories_or_raise,
    resolve,
    run_configs,
    runner_from_cli,
)
from psp_lite.train import RunConfig, RunHistory, paper_config

#: Half-decade steps from 1e-5 to 1e-1 (9 values); holds the paper's PSP 1e-3 and l2 1e-4.
DEFAULT_LAMBDAS: tuple[float, ...] = tuple(float(f"{v:.3g}") for v in np.logspace(-5, -1, 9))
#: The default protocol: minutes on a laptop CPU (see the notebook for the measured time).
DEFAULT_EPOCHS = 5
DEFAULT_TRAIN_SUBSET = 10000
DEFAULT_TEST_SUBSET = 2000

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
    """The runs of one sweep, keyed by (regularizer, lambda)."""

    base: RunConfig  # the shared protocol (regularizer "none")
    runs: dict[Key, RunHistory] = field(default_factory=dict)
    diverged: list[Key] = field(default_factory=list)

    def lambdas(self, regularizer: str) -> list[float]:
        """The swept lambdas of `regularizer`, ascending (0.0 for "none")."""
        return sorted(lam for reg, lam in self.runs if reg == regularizer)

    def get(self, regularizer: str, lam: float) -> RunHistory:
        """The run of `regularizer` at `lam` (lam 0 gives the unregularized run)."""
        if lam == 0 or regularizer == "none":
            return self.runs[("none", 0.0)]
        return self.runs[(regularizer, float(lam))]

    @property
    def baseline(self) -> RunHistory | None:
        return self.runs.get(("none", 0.0))

    @property
    def epochs(self) -> int:
        return self.base.epochs

    def final_errors(self, regularizer: str) -> list[tuple[float, float]]:
        """(lambda, final test error %) for each swept lambda of `regularizer`."""
        return [(lam, self.get(regularizer, lam).final_error()) for lam in
                self.lambdas(regularizer)]

    def best(self, regularizer: str) -> tuple[float, float]:
        """(lambda, final test error %) of the lowest final error of `regularizer`."""
        return min(self.final_errors(regularizer), key=lambda item: item[1])

    def add(self, history: RunHistory) -> None:
        """Add (or replace) a run, e.g. one trained later from the explorer."""
        c = history.config
        self.runs[(c.regularizer, float(c.lam))] = history

    def config_for(self, regularizer: str, lam: float) -> RunConfig:
        """The config of a run of this sweep's protocol at (regularizer, lam)."""
        if regularizer == "none":
            lam = 0.0
        return dataclasses.replace(self.base, regularizer=regularizer, lam=float(lam))

    def table(self) -> str:
        """Final test error (%) vs lambda as a Markdown table, one column per regularizer."""
        tried = {*self.runs, *self.diverged}
        regs = [r for r in WITH_LAMBDA if any(k[0] == r for k in tried)]
        lams = sorted({lam for r, lam in tried if r in regs})
        head = "| λ | " + " | ".join(f"{short_name(r)}: test error %" for r in regs) + " |"
        lines = [head, "|---" * (len(regs) + 1) + "|"]
        if self.baseline is not None:
            err = f"{self.baseline.final_error():.2f}"
            lines.append("| 0 (no regularization) | " + " | ".join([err] * len(regs)) + " |")
        for lam in lams:
            cells = []
            for r in regs:
                if (r, lam) in self.runs:
                    cells.append(f"{self.runs[(r, lam)].final_error():.2f}")
                else:
                    cells.append("diverged" if (r, lam) in self.diverged else "—")
            lines.append(f"| {lam:.2g} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"



def _diverged_marker(config: RunConfig, data: TensorData) -> Path:
    return cache.cache_dir() / f"diverged-{cache.key(config, data.fingerprint)}.json"


def _mark_diverged(config: RunConfig, data: TensorData, message: str) -> None:
    """Remember (atomically) that `config` diverged, so a resumed sweep does not retrain it."""
    path = _diverged_marker(config, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"config": config.to_dict(), "error": message}, f)
    os.replace(tmp, path)


def sweep_configs(
    dataset: str = "fashion-mnist",
    psp_lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    l2_lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    *,
    include_none: bool = True,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    train_subset: int | None = DEFAULT_TRAIN_SUBSET,
    test_subset: int | None = DEFAULT_TEST_SUBSET,
    snapshot_epochs: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    model: str | None = None,
    **overrides,
) -> list[RunConfig]:
    """The sweep's run configs: the paper's LeNet5 protocol with these changes, in run order
    (no regularization first, then PSP and l2 by ascending lambda)."""
    for lam in [*psp_lambdas, *l2_lambdas]:
        check_lambda(lam)
        if lam == 0:
            raise ValueError("swept lambdas must be > 0; lambda 0 is the 'none' run, "
                             "included by default (include_none=True).")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    snaps = tuple(snapshot_epochs) if snapshot_epochs is not None else default_snapshots(epochs)
    common = dict(epochs=epochs, seed=seed, train_subset=train_subset, test_subset=test_subset,
                  snapshot_epochs=snaps, device=device_name(device), **overrides)
    grid: list[tuple[str, float]] = [("none", 0.0)] if include_none else []
    grid += [("psp", float(lam)) for lam in sorted(set(psp_lambdas))]
    grid += [("l2", float(lam)) for lam in sorted(set(l2_lambdas))]
    return [paper_config(dataset, reg, model, **{**common, "lam": lam}) for reg, lam in grid]


def sweep(
    dataset: str = "fashion-mnist",
    psp_lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    l2_lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    *,
    data_dir: str | Path | None = None,
    progress: bool = True,
    runner: str | Runner = "local",
    **grid,
) -> SweepResult:
    """Train (or load from the cache) LeNet5 over the lambda grid; one progress bar for all runs.

    `grid` takes `sweep_configs`' keywords (epochs, seed, subsets, snapshot_epochs, device, ...);
    `runner` is "local", "ray" or a `psp_lite.runner.Runner` (a Ray cluster's address, per-run
    GPUs and CPUs).

    A run that diverges is recorded in `result.diverged` (and remembered in the cache) instead of
    stopping the sweep. Interrupting loses only the runs in progress; call again to resume.
    """
    configs = resolve(sweep_configs(dataset, psp_lambdas, l2_lambdas, **grid), runner)
    result = SweepResult(base=dataclasses.replace(configs[0], regularizer="none", lam=0.0))
    base = result.base
    data = load_dataset(dataset, data_dir, device="cpu", train_subset=base.train_subset,
                        test_subset=base.test_subset)  # its fingerprint keys the markers
    todo = [c for c in configs if not _diverged_marker(c, data).exists()]

    def remember(i: int, outcome: Outcome) -> None:
        if isinstance(outcome, FailedRun) and outcome.diverged:
            _mark_diverged(todo[i], data, str(outcome.error))

    outcomes = dict(zip(todo, run_configs(todo, runner=runner, data_dir=data_dir,
                                          progress=progress, on_result=remember,
                                          desc=f"λ sweep ({dataset})"), strict=True))
    for config in configs:
        key = (config.regularizer, config.lam)
        outcome = outcomes.get(config)
        if isinstance(outcome, RunHistory):
            result.runs[key] = outcome
        elif outcome is None or outcome.diverged:
            result.diverged.append(key)
        else:
            raise outcome.error
    return result


def train_one(result: SweepResult, regularizer: str, lam: float, *,
              data_dir: str | Path | None = None, progress: bool = True,
              runner: str | Runner = "local") -> RunHistory:
    """Train (or load) one more lambda under the sweep's protocol and add it to `result`."""
    if regularizer not in WITH_LAMBDA:
        raise ValueError(f"regularizer must be 'psp' or 'l2', got {regularizer!r}.")
    check_lambda(lam)
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lambda must be > 0, got {lam!r}.")
    config = result.config_for(regularizer, lam)
    (history,) = histories_or_raise(run_configs([config], runner=runner, data_dir=data_dir,
                                                progress=progress))
    result.add(history)
    return history


reading = sweep_reading  # the sweep's reading, where notebooks look for it


# ----------------------------------------------------------------------------- psp-lite sweep


def add_cli_parser(sub: argparse._SubParsersAction) -> None:
    """The `psp-lite sweep` subcommand's arguments (the command lives in psp_lite.cli)."""
    p = sub.add_parser("sweep", help="train LeNet5 over a grid of lambdas (PSP and l2)",
                       description="Train LeNet5 over a grid of lambdas for PSP and l2 plus no "
                       "regularization, reusing the run cache (stop with Ctrl-C, run again to "
                       "resume); print final test error vs lambda and plot the U-curve.")
    p.add_argument("--dataset", default="fashion-mnist",
                   choices=("mnist", "fashion-mnist", "synthetic-mnist"))
    p.add_argument("--epochs", type=positive_int_arg, default=DEFAULT_EPOCHS,
                   help=f"epochs per run (default {DEFAULT_EPOCHS})")
    p.add_argument("--psp-lambdas", type=float, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="PSP lambdas (default: 9 values, 1e-5 to 1e-1)")
    p.add_argument("--l2-lambdas", type=float, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="l2 weight decays (default: as for PSP; none: no l2)")
    p.add_argument("--train-subset", type=int, default=DEFAULT_TRAIN_SUBSET,
                   help=f"training images used (default {DEFAULT_TRAIN_SUBSET}; 0: all)")
    p.add_argument("--test-subset", type=int, default=DEFAULT_TEST_SUBSET,
                   help=f"test images used (default {DEFAULT_TEST_SUBSET}; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, help="where the datasets are (or should go)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_cli_arguments(p)


def run_cli(args: argparse.Namespace) -> list[Path]:
    """`psp-lite sweep`: train, print the table, write the table and the U-curve; the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from psp_lite.plots import u_curve

    result = sweep(args.dataset, args.psp_lambdas, args.l2_lambdas, epochs=args.epochs,
                   seed=args.seed, train_subset=args.train_subset or None,
                   test_subset=args.test_subset or None, data_dir=args.data_dir,
                   device=args.device, progress=not args.no_progress,
                   runner=runner_from_cli(args))
    table = result.table()
    print(f"Final test error (%) after {result.epochs} epoch(s), {args.dataset}, seed {args.seed}:")
    print(table)
    for reg in WITH_LAMBDA:
        if result.lambdas(reg):
            lam, err = result.best(reg)
            print(f"lowest {short_name(reg)}: {err:.2f} % at λ={lam:g}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "sweep_table.md", out / "sweep_u_curve.png"
    md.write_text(table)
    u_curve(result).savefig(png, dpi=120, bbox_inches="tight")
    return [md, png]
