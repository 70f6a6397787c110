"""psp_lite.data: discovery, normalization, subsets, synthetic stand-ins, batching, augmentation."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from psp_lite import data
from psp_lite.data import DATASETS, DatasetNotFoundError, TensorData, load_dataset
from psp_lite.data import files as dataset_files
from psp_lite.data.batches import batches, crop_flip


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No $PSP_LITE_DATA, a private default user data dir, no system places, a fresh cache."""
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(dataset_files, "SYSTEM_IDX_DIRS",
                        {k: () for k in dataset_files.SYSTEM_IDX_DIRS})
    monkeypatch.setattr(dataset_files, "SYSTEM_ROOTS",
                        {k: () for k in dataset_files.SYSTEM_ROOTS})
    data.clear_cache()
    yield
    data.clear_cache()


# ----------------------------------------------------------------------------- stand-in files


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Uncompressed idx3/idx1 files, as torchvision's MNIST reads them."""
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">iiii", 0x803, n, h, w) + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">ii", 0x801, n) + labels.astype(np.uint8).tobytes())


def tiny_mnist(root: Path, folder: str = "MNIST", n_train: int = 30, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[0] = 255
        images[1] = 0
        write_idx(root / folder / "raw", prefix, images, np.arange(n) % 10)


def cifar_pixel(n: int, c: int, h: int, w: int) -> np.ndarray:
    return (n * 7 + c * 60 + h * 3 + w) % 256


def tiny_cifar(root: Path, per_batch: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    n, c, h, w = np.meshgrid(np.arange(per_batch), np.arange(3), np.arange(32), np.arange(32),
                             indexing="ij")
    flat = cifar_pixel(n, c, h, w).astype(np.uint8).reshape(per_batch, 3072)  # R, G, B planes
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": flat, "labels": list(range(per_batch))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


@pytest.fixture
def no_cifar_md5(monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda path, md5=None: Path(path).is_file())


# ----------------------------------------------------------------------------- real Fashion-MNIST


def test_fashion_mnist_from_debian_files_into_given_root(tmp_path, monkeypatch,
                                                         debian_fashion_mnist):
    monkeypatch.setitem(dataset_files.SYSTEM_IDX_DIRS, "fashion-mnist",
                        ((str(debian_fashion_mnist), "Debian"),))
    root = tmp_path / "given"
    d = load_dataset("fashion-mnist", root)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert abs(d.train_x.mean().item() - (0.2860 - 0.5) / 0.5) < 1e-3
    assert d.train_x.min().item() == -1.0 and d.train_x.max().item() == 1.0
    assert d.train_y.bincount().tolist() == [6000] * 10
    assert d.test_y.bincount().tolist() == [1000] * 10
    assert (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert str(debian_fashion_mnist) in d.note and str(root) in d.note
    assert not d.synthetic and d.num_classes == 10 and d.input_shape == (1, 28, 28)

    def no_second_decode(*args, **kwargs):
        raise AssertionError("the decoded arrays must come from the in-memory cache")

    monkeypatch.setattr(dataset_files, "_decode", no_second_decode)
    again = load_dataset("fashion-mnist", root, train_subset=500, test_subset=100)
    perm = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:500]
    assert torch.equal(again.train_x, d.train_x[perm])
    assert torch.equal(again.train_y, d.train_y[perm])
    assert again.train_y.bincount(minlength=10).min() > 20  # a representative class mix


def test_fashion_mnist_decompressed_into_psp_lite_data(tmp_path, monkeypatch,
                                                       debian_fashion_mnist):
    monkeypatch.setitem(dataset_files.SYSTEM_IDX_DIRS, "fashion-mnist",
                        ((str(debian_fashion_mnist), "Debian"),))
    env = tmp_path / "env"
    monkeypatch.setenv("PSP_LITE_DATA", str(env))
    d = load_dataset("fashion-mnist", test_subset=10)
    assert (env / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert not (tmp_path / "xdg" / "psp-lite" / "data" / "FashionMNIST").exists()
    assert d.test_x.shape == (10, 1, 28, 28)


# ----------------------------------------------------------------------------- discovery


def test_mnist_stand_in_from_given_root_normalized(tmp_path):
    tiny_mnist(tmp_path)
    d = load_dataset("mnist", tmp_path, download=False)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert torch.allclose(d.train_x[0], torch.full((1, 28, 28), (1 - 0.1307) / 0.3081))
    assert torch.allclose(d.train_x[1], torch.full((1, 28, 28), -0.1307 / 0.3081))
    raw = np.frombuffer((tmp_path / "MNIST/raw/train-images-idx3-ubyte").read_bytes()[16:],
                        dtype=np.uint8).reshape(30, 1, 28, 28)
    expected = (torch.from_numpy(raw.copy()).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(d.train_x, expected, atol=1e-6)
    assert d.train_y.tolist() == [i % 10 for i in range(30)]
    assert str(tmp_path) in d.note and "given root" in d.note


def test_discovery_via_psp_lite_data_and_root_first(tmp_path, monkeypatch):
    env, given = tmp_path / "env", tmp_path / "given"
    tiny_mnist(env, n_train=12)
    monkeypatch.setenv("PSP_LITE_DATA", str(env))
    assert load_dataset("mnist", download=False).train_x.shape[0] == 12
    tiny_mnist(given, n_train=17)
    assert load_dataset("mnist", given, download=False).train_x.shape[0] == 17  # root wins
    assert load_dataset("mnist", tmp_path / "empty", download=False).train_x.shape[0] == 12


def test_system_idx_gz_files_decompressed_into_default_user_dir(tmp_path, monkeypatch):
    src = tmp_path / "system"
    tiny_mnist(tmp_path / "plain", folder="x")
    src.mkdir()
    for f in (tmp_path / "plain" / "x" / "raw").iterdir():
        (src / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
    monkeypatch.setitem(dataset_files.SYSTEM_IDX_DIRS, "mnist", ((str(src), "test system folder"),))
    d = load_dataset("mnist", download=False)
    user_raw = tmp_path / "xdg" / "psp-lite" / "data" / "MNIST" / "raw"
    assert (user_raw / "train-images-idx3-ubyte").read_bytes() == \
        (tmp_path / "plain/x/raw/train-images-idx3-ubyte").read_bytes()
    assert d.train_x.shape == (30, 1, 28, 28) and str(src) in d.note


def test_missing_dataset_error_names_dataset_and_places(tmp_path, monkeypatch):
    env = tmp_path / "env"
    monkeypatch.setenv("PSP_LITE_DATA", str(env))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", tmp_path / "given", download=False)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "MNIST" in msg and "download=False" in msg and "PSP_LITE_DATA" in msg
    for place in (tmp_path / "given" / "MNIST" / "raw", env / "MNIST" / "raw",
                  tmp_path / "xdg" / "psp-lite" / "data" / "MNIST" / "raw"):
        assert str(place) in msg
    assert msg.index(str(tmp_path / "given")) < msg.index(str(env))

    with pytest.raises(DatasetNotFoundError, match="dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", tmp_path / "given", download=False)
    assert "Fashion-MNIST" in str(info.value)


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    def offline(self):
        raise URLError("no network here")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", tmp_path, download=True)
    assert "no network here" in str(info.value)
    assert info.value.__cause__ is None and "Traceback" not in str(info.value)


def test_cifar10_stand_in_per_channel_normalization(tmp_path, no_cifar_md5):
    tiny_cifar(tmp_path)
    d = load_dataset("cifar10", tmp_path, download=False)
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    assert d.input_shape == (3, 32, 32)
    n, c, h, w = torch.meshgrid(*(torch.arange(k) for k in (4, 3, 32, 32)), indexing="ij")
    pixels = torch.as_tensor(cifar_pixel(n.numpy(), c.numpy(), h.numpy(), w.numpy())).float()
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    assert torch.allclose(d.test_x, (pixels / 255 - mean) / std, atol=1e-5)
    assert d.test_y.tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- subsets, names


def test_subsets_deterministic_and_validated(tmp_path):
    tiny_mnist(tmp_path)
    a = load_dataset("mnist", tmp_path, train_subset=7, test_subset=5, download=False)
    b = load_dataset("mnist", tmp_path, train_subset=7, test_subset=5, download=False)
    full = load_dataset("mnist", tmp_path, download=False)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    idx = torch.randperm(30, generator=torch.Generator().manual_seed(0))[:7]
    assert not torch.equal(idx, torch.arange(7))
    assert torch.equal(a.train_x, full.train_x[idx]) and a.test_x.shape[0] == 5
    a.train_y += 100  # callers' tensors are theirs: the cache stays intact
    assert load_dataset("mnist", tmp_path, train_subset=7, download=False).train_y.max() < 10
    for bad in (0, -3, 2.5, True, "7"):
        with pytest.raises(ValueError, match="train_subset"):
            load_dataset("mnist", tmp_path, train_subset=bad, download=False)
    with pytest.raises(ValueError, match="31"):
        load_dataset("mnist", tmp_path, train_subset=31, download=False)
    with pytest.raises(ValueError, match="test_subset"):
        load_dataset("mnist", tmp_path, test_subset=21, download=False)


def test_unknown_name_lists_datasets():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASETS)


@pytest.mark.parametrize("name, shape", [("synthetic-mnist", (1, 28, 28)),
                                         ("synthetic-cifar10", (3, 32, 32))])
def test_synthetic_deterministic_learnable_and_labelled(name, shape):
    d = load_dataset(name)
    assert isinstance(d, TensorData) and d.synthetic and "SYNTHETIC" in d.note
    assert d.train_x.shape == (2000, *shape) and d.test_x.shape == (500, *shape)
    assert d.input_shape == shape and d.num_classes == 10
    assert d.train_y.bincount().tolist() == [200] * 10
    data.clear_cache()
    again = load_dataset(name, train_subset=2000)
    assert torch.equal(d.train_x, again.train_x) and torch.equal(d.test_y, again.test_y)
    small = load_dataset(name, train_subset=100, test_subset=50)
    assert small.train_x.shape[0] == 100 and small.test_x.shape[0] == 50
    # learnable: nearest class mean (from train) classifies the test set far better than chance
    means = torch.stack([d.train_x[d.train_y == k].mean(0) for k in range(10)]).flatten(1)
    pred = torch.cdist(d.test_x.flatten(1), means).argmin(1)
    assert (pred != d.test_y).float().mean().item() < 0.2


# ----------------------------------------------------------------------------- batching


def test_batches_cover_every_index_once_and_are_seeded():
    x = torch.arange(103, dtype=torch.float32).view(103, 1, 1, 1)
    y = torch.arange(103)
    out = list(batches(x, y, 10, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert [len(b[1]) for b in out] == [10] * 10 + [3]
    seen = torch.cat([b[1] for b in out])
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    assert all(torch.equal(bx.view(-1), by.float()) for bx, by in out)  # x and y stay paired
    again = list(batches(x, y, 10, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(seen, torch.cat([b[1] for b in again]))
    plain = torch.cat([b[1] for b in batches(x, y, 25)])
    assert plain.tolist() == list(range(103))
    with pytest.raises(ValueError):
        next(batches(x, y, 0))


def _matches(out: torch.Tensor, src: torch.Tensor, pad: int) -> set[tuple[int, int, bool]]:
    """The (dy, dx, flip) under which `out` is a crop of zero-padded `src`."""
    padded = torch.nn.functional.pad(src, (pad,) * 4)
    h, w = src.shape[-2:]
    hits = set()
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[..., dy:dy + h, dx:dx + w]
            for flip in (False, True):
                if torch.equal(out, crop.flip(-1) if flip else crop):
                    hits.add((dy, dx, flip))
    return hits


def test_crop_flip_shapes_flips_and_shifts():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8) + 1.0  # no zeros, so padding shows up
    flipped = crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    assert flipped.shape == x.shape
    is_flip = [torch.equal(f, s.flip(-1)) for f, s in zip(flipped, x, strict=True)]
    is_same = [torch.equal(f, s) for f, s in zip(flipped, x, strict=True)]
    assert all(a or b for a, b in zip(is_flip, is_same, strict=True)) and 10 < sum(is_flip) < 54
    assert torch.equal(flipped, crop_flip(x, torch.Generator().manual_seed(0), padding=0))

    out = crop_flip(x, g, padding=2)
    assert out.shape == x.shape
    found = [_matches(o, s, 2) for o, s in zip(out, x, strict=True)]
    assert all(len(f) == 1 for f in found)
    shifts = [next(iter(f)) for f in found]
    assert sum(dy != 2 or dx != 2 for dy, dx, _ in shifts) > 40  # content moved in most images
    assert {dy for dy, _, _ in shifts} == set(range(5))
    assert {dx for _, dx, _ in shifts} == set(range(5))
    assert (out == 0).any()  # shifted-in zero padding


def test_batches_augment_uses_crop_flip():
    x = torch.rand(20, 3, 32, 32) + 1.0
    y = torch.arange(20)
    (xb, yb), = list(batches(x, y, 20, augment=True, generator=torch.Generator().manual_seed(1)))
    assert xb.shape == x.shape and not torch.equal(xb, x)
    assert all(_matches(o, x[i], 4) for o, i in zip(xb[:3], yb[:3].tolist(), strict=True))
