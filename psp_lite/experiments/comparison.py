"""The paper's experiments as functions: train each regularizer over seeds, summarize beside the
paper's numbers. Shared by the notebooks 04-07 and `psp-lite reproduce`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from psp_lite.data import (
    CATALOG,
    SYNTHETIC_DEFAULT_SIZES,
    DatasetNotFoundError,
    canonical_dataset,
    load_dataset,
)
from psp_lite.device import device_name
from psp_lite.experiments.smoke import is_smoke
from psp_lite.runners.local import run_configs
from psp_lite.runners.outcomes import OnResult, histories_or_raise
from psp_lite.runners.spec import Runner
from psp_lite.training.config import paper_config
from psp_lite.training.history import Groups


def compare(
    dataset: str,
    regularizers: tuple[str, ...] = ("none", "l2", "psp"),
    *,
    seeds: tuple[int, ...] = (0,),
    model: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    lams: Mapping[str, float] | None = None,
    runner: str | Runner = "local",
    on_result: OnResult | None = None,
    **overrides,
) -> Groups:
    """Train (or load from the cache) every regularizer x seed under the published protocol
    (the paper's; for LeNet5 the epoch and seed counts of the authors' code).

    `overrides` replace protocol fields (epochs, train_subset, ...) for every regularizer;
    `lams` replaces the lambda of some (e.g. ``{"psp": 3e-4}``). `runner` is "local", "ray" or a
    `psp_lite.runners.Runner`; `on_result(i, outcome)` is called as each run ends. A run that
    fails (e.g. diverges) raises its error once the others have ended (they stay cached).
    """
    device = device_name(overrides.pop("device", None))
    lams = dict(lams or {})
    unknown = set(lams) - set(regularizers)
    if unknown:
        raise ValueError(f"lams names regularizers not compared: {sorted(unknown)}.")
    configs = [paper_config(dataset, r, model, device=device, seed=s,
                            **({"lam": lams[r]} if r in lams else {}), **overrides)
               for r in regularizers for s in seeds]
    runs = histories_or_raise(run_configs(configs, runner=runner, data_dir=data_dir,
                                          progress=progress, on_result=on_result,
                                          desc=f"{dataset} runs"))
    return {r: runs[k * len(seeds):(k + 1) * len(seeds)] for k, r in enumerate(regularizers)}


#: Smoke-mode stand-ins, tried in order when a dataset is not on disk (never downloaded).
STAND_INS: dict[str, tuple[str, ...]] = {
    "mnist": ("fashion-mnist", "synthetic-mnist"),
    "fashion-mnist": ("synthetic-mnist",),
    "cifar10": ("synthetic-cifar10",),
}


@dataclass(frozen=True)
class DatasetChoice:
    """The dataset a notebook asked for, the one it will train on, and a note saying which."""

    requested: str
    dataset: str
    note: str

    @property
    def stand_in(self) -> bool:
        return self.dataset != self.requested

    def __str__(self) -> str:
        return self.note


def _found(name: str, data_dir: str | Path | None, download: bool) -> str:
    """Where `name` was found (raises DatasetNotFoundError when it is nowhere)."""
    note = load_dataset(name, data_dir, train_subset=1, test_subset=1, download=download).note
    return note.split("; subset")[0]


def choose_dataset(dataset: str, data_dir: str | Path | None = None, *,
                   smoke: bool | None = None) -> DatasetChoice:
    """The dataset to train on, checked before any training starts.

    Without smoke mode this is `dataset` itself, and a dataset that cannot be had (on disk or by
    download) raises the clear `DatasetNotFoundError`. In smoke mode nothing is downloaded: a
    dataset not on disk is replaced by its stand-in (MNIST -> Fashion-MNIST -> synthetic images,
    CIFAR-10 -> synthetic images), and the note names it.
    """
    smoke = is_smoke() if smoke is None else smoke
    dataset = canonical_dataset(dataset)  # a ValueError naming the choices for unknown names
    title = CATALOG[dataset].title
    if not smoke:
        return DatasetChoice(dataset, dataset, f"data: {_found(dataset, data_dir, True)}")
    missing = []
    for name in (dataset, *STAND_INS.get(dataset, ())):
        try:
            where = _found(name, data_dir, False)
        except DatasetNotFoundError:
            missing.append(CATALOG[name].title)
            continue
        if name == dataset:
            return DatasetChoice(dataset, name, f"data (smoke run): {where}")
        used = CATALOG[name].stand_in_title or CATALOG[name].title
        return DatasetChoice(dataset, name, (
            f"STAND-IN (smoke run): {' and '.join(missing)} not available offline, so this "
            f"smoke run trains on {used} instead of {title}. Every number below is measured on "
            f"{used}, not on {title}; the paper's column shows the paper's numbers for the "
            f"dataset actually used, where it has any. [{re.sub(r' [(][^()]*[)]$', '', where)}]"))
    raise DatasetNotFoundError(f"no dataset or stand-in found for {title}: {missing}")


def cifar_schedule(epochs: int) -> dict:
    """The paper's CIFAR-10 learning-rate schedule (lr x 0.1 after epochs 150, 250, 350 of 450)
    compressed proportionally to `epochs`; `epochs=450` gives the paper's own (Sec. 4.3)."""
    paper = paper_config("cifar10", "l2")
    scaled = sorted({max(1, round(m * epochs / paper.epochs)) for m in paper.lr_milestones})
    return dict(epochs=epochs, lr_milestones=tuple(m for m in scaled if m < epochs))


def protocol_note(groups: Groups) -> str:
    """One line on what the runs of `groups` trained on, e.g. 'lenet5 on Fashion-MNIST: 2,000
    of 60,000 training images, 10,000 test images, 20 epochs, 1 seed per regularizer'."""
    configs = [h.config for hs in groups.values() for h in hs]
    if not configs:
        return ""
    first = configs[0]
    info = CATALOG[first.dataset]
    sizes = SYNTHETIC_DEFAULT_SIZES if info.stand_in_for else info.sizes
    train = f"{first.train_subset or sizes[0]:,}"
    if not info.stand_in_for:
        train += f" of {info.sizes[0]:,}" if first.train_subset else " (all)"
    test = f"{first.test_subset or sizes[1]:,}"
    seeds = max(len(hs) for hs in groups.values())
    return (f"{first.model} on {info.title}: {train} training images, {test} test images, "
            f"{first.epochs} epoch{'s' if first.epochs > 1 else ''}, "
            f"{seeds} seed{'s' if seeds > 1 else ''} per regularizer")
