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

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from psp_lite.device import device_name
from psp_lite.regularizers import WITH_LAMBDA, check_lambda
from psp_lite.runners.local import resolve, run_configs
from psp_lite.runners.outcomes import FailedRun, OnResult, histories_or_raise
from psp_lite.runners.spec import Runner
from psp_lite.training.config import RunConfig, paper_config
from psp_lite.training.history import RunHistory, SweepResult, default_snapshots

#: Half-decade steps from 1e-5 to 1e-1 (9 values); holds the paper's PSP 1e-3 and l2 1e-4.
DEFAULT_LAMBDAS: tuple[float, ...] = tuple(float(f"{v:.3g}") for v in np.logspace(-5, -1, 9))
#: The default protocol: minutes on a laptop CPU (see the notebook for the measured time).
DEFAULT_EPOCHS = 5
DEFAULT_TRAIN_SUBSET = 10000
DEFAULT_TEST_SUBSET = 2000

#: Notebook 08's class protocol: every (regularizer, lambda) over CLASS_SEEDS seeds, so that
#: the lambda curve has a band over seeds, on grids coarse enough to stay affordable on a laptop
#: CPU (39 short runs) and with a point every decade, so no line spans untried lambdas. Each
#: grid runs from the paper's value to past the point where training breaks down: PSP's lambda
#: multiplies a layer-mean <z^2> (the reference normalization), l2's half the squared weights,
#: so the two scales are not comparable and the grids differ. Measured on this protocol (3
#: seeds): l2 at 1 stops the network learning (test error at chance); PSP's error is lowest at 1,
#: climbs through 10 and 30, and at 100 the training diverges. CLASS_EPOCHS x
#: CLASS_TRAIN_SUBSET / 100 = 160 SGD steps: enough for a large lambda to move the weights
#: visibly away from their initial distribution.
CLASS_PSP_LAMBDAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 30.0, 100.0)
CLASS_L2_LAMBDAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
CLASS_SEEDS = 3
CLASS_EPOCHS = 8
CLASS_TRAIN_SUBSET = 2000
CLASS_TEST_SUBSET = 2000


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
    on_result: OnResult | None = None,
    seeds: int = 1,
    **grid,
) -> SweepResult:
    """Train (or load from the cache) LeNet5 over the lambda grid; one progress bar for all runs.

    `grid` takes `sweep_configs`' keywords (epochs, seed, subsets, snapshot_epochs, device, ...);
    `runner` is "local", "ray" or a `psp_lite.runners.spec.Runner` (a Ray cluster's address, per-run
    GPUs and CPUs); `on_result(i, outcome)` is called as each run to train ends.

    `seeds`: every (regularizer, lambda) is trained for seeds `seed`, `seed + 1`, ...,
    `seed + seeds - 1`, each its own cached run; the whole grid of the first seed comes first,
    so an interrupted sweep has one complete curve soonest. Only the first seed keeps weight
    snapshots (the explorer's histograms show one network), which keeps the cache small.

    A run that diverges is recorded in `result.diverged` instead of stopping the sweep; its
    history is cached like any other, so a resumed sweep does not retrain it. Interrupting loses
    only the runs in progress; call again to resume.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}.")
    first_seed = grid.pop("seed", 0)
    later = {**grid, "snapshot_epochs": ()}
    configs = resolve([c for i in range(seeds) for c in sweep_configs(
        dataset, psp_lambdas, l2_lambdas, seed=first_seed + i, **(later if i else grid))], runner)
    result = SweepResult(base=dataclasses.replace(configs[0], regularizer="none", lam=0.0))
    outcomes = run_configs(configs, runner=runner, data_dir=data_dir, progress=progress,
                           on_result=on_result, desc=f"λ sweep ({dataset})")
    for config, outcome in zip(configs, outcomes, strict=True):
        key = (config.regularizer, config.lam)
        if isinstance(outcome, FailedRun):
            raise outcome.error
        if outcome.diverged_at is None:
            result.add(outcome)
        elif key not in result.diverged:
            result.diverged.append(key)
    return result


def train_one(result: SweepResult, regularizer: str, lam: float, *,
              data_dir: str | Path | None = None, progress: bool = True,
              runner: str | Runner = "local", seeds: int | None = None) -> RunHistory:
    """Train (or load) one more lambda under the sweep's protocol and add it to `result`, for
    the sweep's seeds (or the first `seeds` of them), so its point on the lambda curve is the
    same statistic as the others'; returns the first seed's run."""
    if regularizer not in WITH_LAMBDA:
        raise ValueError(f"regularizer must be 'psp' or 'l2', got {regularizer!r}.")
    check_lambda(lam)
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lambda must be > 0, got {lam!r}.")
    sweep_seeds = sorted({h.config.seed for hs in result.seed_runs.values() for h in hs}
                         | {result.base.seed})
    chosen = sweep_seeds[:seeds] if seeds else sweep_seeds
    configs = [result.config_for(regularizer, lam, s) if s == result.base.seed else
               dataclasses.replace(result.config_for(regularizer, lam, s), snapshot_epochs=())
               for s in chosen]
    histories = histories_or_raise(run_configs(configs, runner=runner, data_dir=data_dir,
                                               progress=progress))
    for history in histories:
        result.add(history)
    return histories[0]

