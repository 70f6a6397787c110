"""The datasets, one catalog entry each: what a name means, how big its splits are, what one image
looks like and how the authors' code normalizes it. Every other module reads these facts here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: `name` as psp_lite spells it, `title` as a sentence does."""

    name: str
    title: str
    sizes: tuple[int, int]  # (train, test) images; a synthetic set may be asked for up to these
    input_shape: tuple[int, int, int]  # (C, H, W) of one image
    mean: tuple[float, ...]  # per-channel normalization of pixels in [0, 1] (the authors' code)
    std: tuple[float, ...]
    stand_in_for: str | None = None  # a synthetic set: the real dataset it imitates
    stand_in_title: str = ""  # how a smoke run names what it used instead of the real set


_MNIST = dict(input_shape=(1, 28, 28), mean=(0.1307,), std=(0.3081,))
_CIFAR = dict(input_shape=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))

CATALOG: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("mnist", "MNIST", (60000, 10000), **_MNIST),
    DatasetInfo("fashion-mnist", "Fashion-MNIST", (60000, 10000), (1, 28, 28), (0.5,), (0.5,)),
    DatasetInfo("cifar10", "CIFAR-10", (50000, 10000), **_CIFAR),
    DatasetInfo("synthetic-mnist", "synthetic MNIST stand-in", (60000, 10000), **_MNIST,
                stand_in_for="mnist", stand_in_title="synthetic 28x28 grey-scale images"),
    DatasetInfo("synthetic-cifar10", "synthetic CIFAR-10 stand-in", (50000, 10000), **_CIFAR,
                stand_in_for="cifar10", stand_in_title="synthetic 32x32 colour images"),
)}
#: Every dataset name, real ones first.
DATASETS = tuple(CATALOG)
#: (train, test) sizes a synthetic set is generated at unless a subset asks otherwise.
SYNTHETIC_DEFAULT_SIZES = (2000, 500)


def canonical_dataset(name: str) -> str:
    """The catalog name of `name` ("Fashion_MNIST" -> "fashion-mnist"); ValueError naming the
    valid choices for anything else."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}.get(key, key)
    if key not in CATALOG:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """The catalog entry of `name` (spelling variants accepted)."""
    return CATALOG[canonical_dataset(name)]
