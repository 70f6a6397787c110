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
    **grid,
) -> SweepResult:
    """Train (or load from the cache) LeNet5 over the lambda grid; one progress bar for all runs.

    `grid` takes `sweep_configs`' keywords (epochs, seed, subsets, snapshot_epochs, device, ...);
    `runner` is "local", "ray" or a `psp_lite.runners.spec.Runner` (a Ray cluster's address, per-run
    GPUs and CPUs); `on_result(i, outcome)` is called as each run to train ends.

    A run that diverges is recorded in `result.diverged` instead of stopping the sweep; its
    history is cached like any other, so a resumed sweep does not retrain it. Interrupting loses
    only the runs in progress; call again to resume.
    """
    configs = resolve(sweep_configs(dataset, psp_lambdas, l2_lambdas, **grid), runner)
    result = SweepResult(base=dataclasses.replace(configs[0], regularizer="none", lam=0.0))
    outcomes = run_configs(configs, runner=runner, data_dir=data_dir, progress=progress,
                           on_result=on_result, desc=f"λ sweep ({dataset})")
    for config, outcome in zip(configs, outcomes, strict=True):
        key = (config.regularizer, config.lam)
        if isinstance(outcome, FailedRun):
            raise outcome.error
        if outcome.diverged_at is None:
            result.runs[key] = outcome
        else:
            result.diverged.append(key)
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

