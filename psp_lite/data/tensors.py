"""MNIST, Fashion-MNIST and CIFAR-10 as normalized tensors that live on the training device.

`load_dataset(name)` gets the decoded arrays from `psp_lite.data.files` (which finds the files
offline where it can and otherwise raises a `DatasetNotFoundError` saying where it looked),
takes a fixed subset if asked, normalizes as the authors' code does and moves the tensors to the
device. Batching them is `psp_lite.data.batches`'s job.

Two synthetic stand-ins (`synthetic-mnist`, `synthetic-cifar10`) give deterministic, learnable
random images for smoke runs without any files; their `note` says SYNTHETIC.
"""

from __future__ import annotations

import functools
import hashlib
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from psp_lite.data.catalog import CATALOG, SYNTHETIC_DEFAULT_SIZES, canonical_dataset
from psp_lite.data.files import default_data_dir, find_and_decode
from psp_lite.device import pick_device

#: Seed of the fixed permutation whose first k items form a subset.
SUBSET_SEED = 0


@dataclass
class TensorData:
    """A dataset as device-resident tensors: float32 N x C x H x W images, int64 labels."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    note: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes (10 for every dataset here)."""
        return 10 if self.name in CATALOG else int(self.train_y.max().item()) + 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @functools.cached_property
    def fingerprint(self) -> dict[str, object]:
        """What identifies the data a run was trained and tested on: the dataset's name, the
        train / test sizes and a SHA-256 of the labels in order (a run-cache key part)."""
        digest = hashlib.sha256()
        for labels in (self.train_y, self.test_y):
            digest.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
            digest.update(b"|")
        return {"name": self.name, "train": int(self.train_y.shape[0]),
                "test": int(self.test_y.shape[0]), "labels": digest.hexdigest()[:32]}

    @property
    def synthetic(self) -> bool:
        """True for the random stand-ins, which are not real data."""
        return self.name.startswith("synthetic")

    def __repr__(self) -> str:
        return (f"TensorData({self.name!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)}, device={self.train_x.device}, "
                f"note={self.note!r})")


# ----------------------------------------------------------------------------- discovery


def clear_cache() -> None:
    """Forget the decoded datasets held in memory (they are reloaded on the next call)."""
    find_and_decode.cache_clear()
    _synthetic.cache_clear()


# ----------------------------------------------------------------------------- synthetic


@functools.lru_cache(maxsize=8)
def _synthetic(name: str, n_train: int, n_test: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Deterministic, learnable uint8 images: a smooth random pattern per class plus noise."""
    channels, size = (1, 28) if name == "synthetic-mnist" else (3, 32)
    seed = 20190917 + (0 if name == "synthetic-mnist" else 100)
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(10, channels, 7, 7, generator=g)
    protos = torch.sigmoid(2.0 * F.interpolate(coarse, size=(size, size), mode="bilinear",
                                               align_corners=False))
    out = []
    for split, n in ((1, n_train), (2, n_test)):
        gs = torch.Generator().manual_seed(seed + split)
        y = (torch.arange(n) % 10)[torch.randperm(n, generator=gs)]
        scale = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=gs)
        noise = 0.25 * torch.randn(n, channels, size, size, generator=gs)
        x = (scale * protos[y] + noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        out += [x, y]
    return out[0], out[1], out[2], out[3]


# ----------------------------------------------------------------------------- loading


def _check_subset(value: int | None, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive integer or None, got {value!r}.")


def _subset(x: Tensor, y: Tensor, k: int | None, what: str, title: str) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    if k is None:
        return x, y
    if k > n:
        raise ValueError(f"{what}={k} exceeds the {n} items of {title}'s {what.split('_')[0]} set.")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[: int(k)]
    return x[idx], y[idx]


def _normalize(x: Tensor, name: str) -> Tensor:
    mean, std = CATALOG[name].mean, CATALOG[name].std
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.to(torch.float32).div_(255.0).sub_(m).div_(s)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    train_subset: int | None = None,
    test_subset: int | None = None,
    download: bool = True,
) -> TensorData:
    """Load `name` (one of DATASETS) as normalized float32 tensors on `device`.

    Subsets are the first k items of a fixed permutation (seed 0), so the class mix stays
    representative. For the synthetic sets a subset is the size generated (default 2000 / 500).
    """
    key = canonical_dataset(name)
    _check_subset(train_subset, "train_subset")
    _check_subset(test_subset, "test_subset")
    dev = pick_device(device)
    info = CATALOG[key]
    title = info.title
    if key.startswith("synthetic"):
        for k, limit, what in ((train_subset, info.sizes[0], "train_subset"),
                               (test_subset, info.sizes[1], "test_subset")):
            if k is not None and k > limit:
                raise ValueError(f"{what}={k} exceeds the {limit} items allowed for {key}.")
        n_train = int(train_subset or SYNTHETIC_DEFAULT_SIZES[0])
        n_test = int(test_subset or SYNTHETIC_DEFAULT_SIZES[1])
        tx, ty, vx, vy = _synthetic(key, n_train, n_test)
        real = CATALOG[info.stand_in_for].title
        note = (f"SYNTHETIC stand-in for {real}: random class patterns plus noise, not real data "
                f"({n_train} train / {n_test} test)")
    else:
        env_root = os.environ.get("PSP_LITE_DATA") or None
        root_key = None if root is None else str(Path(root).expanduser().resolve())
        tx, ty, vx, vy, note = find_and_decode(key, title, root_key, env_root,
                                               str(default_data_dir()), bool(download))
        tx, ty = _subset(tx, ty, train_subset, "train_subset", title)
        vx, vy = _subset(vx, vy, test_subset, "test_subset", title)
        if train_subset is not None or test_subset is not None:
            note += f"; subset {tx.shape[0]} train / {vx.shape[0]} test (seed {SUBSET_SEED})"
    return TensorData(
        name=key,
        train_x=_normalize(tx.to(dev), key),
        train_y=ty.to(dev, copy=True),
        test_x=_normalize(vx.to(dev), key),
        test_y=vy.to(dev, copy=True),
        note=note,
    )
