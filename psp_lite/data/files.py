"""Finding and decoding the real datasets' files (MNIST, Fashion-MNIST, CIFAR-10), offline first.

`find_and_decode` looks in the given root, then `$PSP_LITE_DATA`, then the default user data dir
and known system places: torchvision roots, and folders of idx .gz files such as Debian's
`dataset-fashion-mnist` (decompressed into the first writable root). torchvision downloads only
as a last resort; otherwise a `DatasetNotFoundError` says where it looked and how to provide the
files. The arrays come straight from torchvision's dataset objects (no per-item PIL loop) and are
cached per process. Normalizing, subsets and the synthetic stand-ins live in `psp_lite.data`.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
from pathlib import Path

import torch
from torch import Tensor

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


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places searched and could not be downloaded.

    `str(error)` is the full report for Python users; `for_cli()` is one line naming the
    command line's ways to provide it (--data-dir, PSP_LITE_DATA).
    """

    def __init__(self, message: str, title: str = "", places: tuple[str, ...] = (),
                 layout: str = "") -> None:
        super().__init__(message)
        self.title, self.places, self.layout = title, places, layout

    def for_cli(self) -> str:
        """One line: what is missing, where it was looked for, how to provide it."""
        if not self.title:
            return " ".join(str(self).split())
        return (f"{self.title} not found (looked in {', '.join(self.places) or 'no folder'}); "
                f"put its files in ROOT/{self.layout} and pass --data-dir ROOT or set "
                "PSP_LITE_DATA=ROOT.")


def default_data_dir() -> Path:
    """The user data dir written to when no root is given: $XDG_CACHE_HOME/psp-lite/data."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "psp-lite" / "data"


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


def _how_to(name: str, title: str) -> str:
    if name == "cifar10":
        layout = "<root>/cifar-10-batches-py/ (the extracted cifar-10-python.tar.gz)"
    else:
        layout = (f"<root>/{_tv_class(name).__name__}/raw/ (train-images-idx3-ubyte, "
                  "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
                  ".gz or uncompressed)")
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
def find_and_decode(
    name: str, title: str, root: str | None, env_root: str | None, user_dir: str, download: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """(train_x uint8 NCHW, train_y, test_x, test_y, where they came from) of the real dataset
    `name` ("mnist", "fashion-mnist" or "cifar10"), `title` naming it in messages.

    Cached per process, keyed on every place used; `find_and_decode.cache_clear()` forgets.
    """
    searched: list[str] = []
    roots: list[tuple[Path, str]] = []
    candidates = [(root, "given root", "given root: none passed"),
                  (env_root, "$PSP_LITE_DATA", "$PSP_LITE_DATA: not set"),
                  (user_dir, "default user data dir", "")]
    candidates += [(p, "system datasets folder", "") for p in SYSTEM_ROOTS[name]]

    def attempt(where: Path, label: str, *, dl: bool = False) -> tuple | None:
        place = _expected_place(name, where)
        if name != "cifar10" and all((place / f"{b}.gz").is_file() for b in IDX_FILES):
            try:  # the four .gz files in the root's own raw folder: decompressed beside them
                _decompress_idx(place, name, where)
            except OSError as err:
                searched.append(f"{place} ({label}): .gz files found but could not be "
                                f"decompressed beside them: {_short(err)}")
                return None
        try:
            return _decode(name, where, download=dl)
        except Exception as err:  # torchvision raises RuntimeError, urllib URLError, OSError...
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

    places = tuple(str(_expected_place(name, p)) for p, _ in roots)
    places += tuple(src for src, _ in SYSTEM_IDX_DIRS[name])
    layout = ("cifar-10-batches-py/" if name == "cifar10"
              else f"{_tv_class(name).__name__}/raw/ (the four idx files, .gz or not)")
    raise DatasetNotFoundError(
        f"{title} ({name!r}) not found. Searched, in order:\n"
        + "\n".join(f"  - {s}" for s in searched)
        + "\n" + _how_to(name, title), title, places, layout)
