"""MNIST, Fashion-MNIST and CIFAR-10 as normalized tensors that live on the training device.

`load_dataset(name)` finds the files offline where it can (the given root, then `$PSP_LITE_DATA`,
then the default user data dir and known system places such as Debian's `dataset-fashion-mnist`),
lets torchvision download them only as a last resort, and otherwise raises a
`DatasetNotFoundError` that says where it looked and how to provide the files. The decoded arrays
are taken straight from torchvision's dataset objects (no per-item PIL/ToTensor loop) and cached
per process. `batches` slices them by index on the device: no DataLoader, no workers.

Two synthetic stand-ins (`synthetic-mnist`, `synthetic-cifar10`) give deterministic, learnable
random images for smoke runs without any files; their `note` says SYNTHETIC.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import numbers
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from psp_lite.device import pick_device

DATASETS = ("mnist", "fashion-mnist", "cifar10", "synthetic-mnist", "synthetic-cifar10")

#: Input normalization of the authors' code: per-channel (mean, std) of pixels in [0, 1].
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.5,), (0.5,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}
NORMALIZATION["synthetic-mnist"] = NORMALIZATION["mnist"]
NORMALIZATION["synthetic-cifar10"] = NORMALIZATION["cifar10"]

TITLES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "synthetic-mnist": "synthetic MNIST stand-in",
    "synthetic-cifar10": "synthetic CIFAR-10 stand-in",
}

#: (train, test) sizes of the real sets; the synthetic ones may be asked for up to these sizes.
SIZES = {
    "mnist": (60000, 10000),
    "fashion-mnist": (60000, 10000),
    "cifar10": (50000, 10000),
    "synthetic-mnist": (60000, 10000),
    "synthetic-cifar10": (50000, 10000),
}
SYNTHETIC_DEFAULT_SIZES = (2000, 500)

#: (C, H, W) of one image of each dataset.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "synthetic-mnist": (1, 28, 28),
    "synthetic-cifar10": (3, 32, 32),
}

#: Folders holding the four idx .gz files of a system package (searched after the roots).
SYSTEM_IDX_DIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "fashion-mnist": (
        ("/usr/share/datasets/fashion-mnist", "Debian package dataset-fashion-mnist"),
        ("/usr/local/share/datasets/fashion-mnist", "system datasets folder"),
    ),
    "mnist": (
        ("/usr/share/datasets/mnist", "system datasets folder"),
        ("/usr/local/share/datasets/mnist", "system datasets folder"),
    ),
    "cifar10": (),
}
#: System folders tried as torchvision roots for CIFAR-10 (holding cifar-10-batches-py/).
SYSTEM_ROOTS: dict[str, tuple[str, ...]] = {
    "mnist": (),
    "fashion-mnist": (),
    "cifar10": ("/usr/share/datasets", "/usr/local/share/datasets"),
}

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SUBSET_SEED = 0


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places searched and could not be downloaded."""


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
        return 10 if self.name in DATASETS else int(self.train_y.max().item()) + 1

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


def default_data_dir() -> Path:
    """The user data dir written to when no root is given: $XDG_CACHE_HOME/psp-lite/data."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "psp-lite" / "data"


def canonical_dataset(name: str) -> str:
    """The DATASETS name of `name` ("Fashion_MNIST" -> "fashion-mnist"); ValueError naming the
    valid choices for anything else."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return key



def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _tv_class(name: str) -> type:
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST,
            "cifar10": datasets.CIFAR10}[name]


def _expected_place(name: str, root: Path) -> Path:
    if name == "cifar10":
        return root / "cifar-10-batches-py"
    return root / _tv_class(name).__name__ / "raw"


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _decode(name: str, root: Path, download: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_x uint8 NCHW, train_y, test_x, test_y) via torchvision's dataset objects."""
    cls = _tv_class(name)
    parts = []
    for train in (True, False):
        ds = cls(str(root), train=train, download=download and train)
        if name == "cifar10":
            x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            y = torch.as_tensor(ds.targets, dtype=torch.int64)
        else:
            x = ds.data.unsqueeze(1).contiguous()
            y = ds.targets.to(torch.int64)
        parts += [x, y]
    return parts[0], parts[1], parts[2], parts[3]


def _decompress_idx(source: Path, name: str, root: Path) -> Path:
    """Decompress the four idx .gz files of `source` into where torchvision looks in `root`."""
    raw = _expected_place(name, root)
    raw.mkdir(parents=True, exist_ok=True)
    for base in IDX_FILES:
        target = raw / base
        if target.exists():
            continue
        tmp = raw / f".{base}.{os.getpid()}.tmp"
        with gzip.open(source / f"{base}.gz", "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, target)
    return raw


def _how_to(name: str) -> str:
    title = TITLES[name]
    if name == "cifar10":
        layout = "<root>/cifar-10-batches-py/ (the extracted cifar-10-python.tar.gz)"
    else:
        layout = (f"<root>/{_tv_class(name).__name__}/raw/ (train-images-idx3-ubyte, "
                  "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
                  "uncompressed)")
    lines = [
        f"To provide {title}:",
        f"  - put its files in {layout} and pass that root as data_dir / --data-dir, "
        "or set PSP_LITE_DATA=<root>;",
    ]
    if name == "fashion-mnist":
        lines.append("  - or install the Debian package: apt-get install dataset-fashion-mnist;")
    lines.append("  - or go online and load with download=True so torchvision downloads it.")
    return "\n".join(lines)


@functools.lru_cache(maxsize=8)
def _find_and_decode(
    name: str, root: str | None, env_root: str | None, user_dir: str, download: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """Discovery + decoding of a real dataset, cached per process (keyed on every place used)."""
    title = TITLES[name]
    searched: list[str] = []
    roots: list[tuple[Path, str]] = []
    candidates = [(root, "given root", "given root: none passed"),
                  (env_root, "$PSP_LITE_DATA", "$PSP_LITE_DATA: not set"),
                  (user_dir, "default user data dir", "")]
    candidates += [(p, "system datasets folder", "") for p in SYSTEM_ROOTS[name]]

    def attempt(where: Path, label: str, *, dl: bool = False) -> tuple | None:
        try:
            return _decode(name, where, download=dl)
        except Exception as err:  # torchvision raises RuntimeError, urllib URLError, OSError...
            place = _expected_place(name, where)
            reason = "no data" if not place.exists() and not dl else _short(err)
            searched.append(f"{place} ({label}): {reason}")
            return None

    for where, label, missing in candidates:
        if not where:
            searched.append(missing)
            continue
        path = Path(where).expanduser()
        roots.append((path, label))
        found = attempt(path, label)
        if found:
            return (*found, f"{title} from {path} ({label})")

    writable = [(p, label) for p, label in roots[: len(roots) - len(SYSTEM_ROOTS[name])]
                if _writable(p)]
    for source, label in SYSTEM_IDX_DIRS[name]:
        src = Path(source)
        if not all((src / f"{b}.gz").is_file() for b in IDX_FILES):
            searched.append(f"{src} ({label}): no idx .gz files")
            continue
        if not writable:
            searched.append(f"{src} ({label}): found, but no writable root to decompress into")
            continue
        target, target_label = writable[0]
        try:
            _decompress_idx(src, name, target)
        except OSError as err:
            searched.append(f"{src} ({label}): could not decompress into {target}: {_short(err)}")
            continue
        found = attempt(target, f"decompressed from {src}")
        if found:
            return (*found, f"{title} from {src} ({label}), decompressed into {target} "
                            f"({target_label})")

    if not download:
        searched.append("torchvision download: not tried (download=False)")
    elif not writable:
        searched.append("torchvision download: not tried (no writable root)")
    else:
        target, target_label = writable[0]
        found = attempt(target, f"torchvision download into {target_label}", dl=True)
        if found:
            return (*found, f"{title} downloaded by torchvision into {target}")

    raise DatasetNotFoundError(
        f"{title} ({name!r}) not found. Searched, in order:\n"
        + "\n".join(f"  - {s}" for s in searched)
        + "\n" + _how_to(name)
    )


def clear_cache() -> None:
    """Forget the decoded datasets held in memory (they are reloaded on the next call)."""
    _find_and_decode.cache_clear()
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
    mean, std = NORMALIZATION[name]
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
    title = TITLES[key]
    if key.startswith("synthetic"):
        for k, limit, what in ((train_subset, SIZES[key][0], "train_subset"),
                               (test_subset, SIZES[key][1], "test_subset")):
            if k is not None and k > limit:
                raise ValueError(f"{what}={k} exceeds the {limit} items allowed for {key}.")
        n_train = int(train_subset or SYNTHETIC_DEFAULT_SIZES[0])
        n_test = int(test_subset or SYNTHETIC_DEFAULT_SIZES[1])
        tx, ty, vx, vy = _synthetic(key, n_train, n_test)
        real = "MNIST" if key == "synthetic-mnist" else "CIFAR-10"
        note = (f"SYNTHETIC stand-in for {real}: random class patterns plus noise, not real data "
                f"({n_train} train / {n_test} test)")
    else:
        env_root = os.environ.get("PSP_LITE_DATA") or None
        root_key = None if root is None else str(Path(root).expanduser().resolve())
        tx, ty, vx, vy, note = _find_and_decode(key, root_key, env_root, str(default_data_dir()),
                                                bool(download))
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


# ----------------------------------------------------------------------------- batching


def _randint(high: int, n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def crop_flip(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """CIFAR augmentation for a batch: random crop of the zero-padded image, random h-flip.

    Per image an offset in [0, 2 * padding] per axis and a coin flip; one gather, on x's device.
    """
    if x.dim() != 4:
        raise ValueError(f"crop_flip wants an N x C x H x W batch, got shape {tuple(x.shape)}.")
    n, _, h, w = x.shape
    dev = x.device
    dy = _randint(2 * padding + 1, n, dev, generator)
    dx = _randint(2 * padding + 1, n, dev, generator)
    flip = _randint(2, n, dev, generator).bool()
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]
    ar = torch.arange(w, device=dev)[None, :]
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar, ar)
    out = padded[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x, y) batches by index slicing on the data's device; the last one may be short."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x has {n} items but y has {y.shape[0]}.")
    idx = None
    if shuffle:
        gen_device = generator.device if generator is not None else x.device
        idx = torch.randperm(n, generator=generator, device=gen_device).to(x.device)
    for start in range(0, n, int(batch_size)):
        if idx is None:
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        else:
            sel = idx[start:start + batch_size]
            xb, yb = x[sel], y[sel]
        if augment:
            xb = crop_flip(xb, generator)
        yield xb, yb
