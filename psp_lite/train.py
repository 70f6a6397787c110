"""One training run = one `RunConfig` -> one `RunHistory` (per-epoch numbers), cached on disk.

The defaults are the authors' LeNet5 protocol: SGD lr 0.1, no momentum, batch 100, test batch
1000. `paper_config` gives each experiment's full protocol; `run` trains or reuses the cache.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from psp_lite import cache, checks
from psp_lite.data import (
    INPUT_SHAPES,
    SIZES,
    SYNTHETIC_DEFAULT_SIZES,
    TensorData,
    batches,
    canonical_dataset,
    load_dataset,
)
from psp_lite.device import describe, parse_device, pick_device
from psp_lite.models import build_model, canonical_model, check_input_shape
from psp_lite.potentials import capture, output_name, watch_potentials
from psp_lite.regularizers import check_lambda, check_normalization, psp_penalty

REGULARIZERS = ("none", "l2", "psp")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers (data location and progress bars do not)."""

    dataset: str = "mnist"
    model: str = "lenet5"
    regularizer: str = "none"  # "none" | "l2" (SGD weight decay, Eq. 3-5) | "psp" (Eq. 7)
    lam: float = 0.0  # weight decay for l2, lambda for psp
    normalization: str = "reference"  # psp only: "paper" | "reference"
    epochs: int = 10
    batch_size: int = 100
    test_batch_size: int = 1000
    lr: float = 0.1
    momentum: float = 0.0
    lr_milestones: tuple[int, ...] = ()  # epochs after which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    augment: bool = False  # CIFAR-10 random crop + flip
    seed: int = 0
    device: str = "auto"  # resolved to "cpu" / "cuda" / "mps" before a run is keyed
    train_subset: int | None = None
    test_subset: int | None = None
    snapshot_epochs: tuple[int, ...] = ()  # weights are kept at these epochs and the last

    def __post_init__(self) -> None:
        """Check every field at construction (a one-line ValueError naming the field) and store
        plain Python values, so that a numpy scalar or a list cannot reach the cache key."""
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("dataset", canonical_dataset(self.dataset))
        put("model", canonical_model(self.model))
        check_input_shape(self.model, self.dataset, INPUT_SHAPES[self.dataset])
        if self.regularizer not in REGULARIZERS:
            raise ValueError(
                f"unknown regularizer {self.regularizer!r}; use one of {REGULARIZERS}.")
        put("lam", check_lambda(self.lam))
        check_normalization(self.normalization)
        if self.regularizer == "none" and self.lam != 0:
            raise ValueError("regularizer 'none' takes lam=0; use regularizer='l2' or 'psp'.")
        for name in ("epochs", "batch_size", "test_batch_size"):
            put(name, checks.integer(name, getattr(self, name)))
        put("seed", checks.integer("seed", self.seed, minimum=0))
        put("lr", checks.real("lr", self.lr, low=0.0, low_open=True))
        put("momentum", checks.real("momentum", self.momentum, low=0.0, high=1.0,
                                    hint="the paper uses 0 (MNIST) and 0.9 (CIFAR-10)"))
        put("lr_gamma", checks.real("lr_gamma", self.lr_gamma, low=0.0, low_open=True))
        put("lr_milestones", checks.milestones("lr_milestones", self.lr_milestones))
        if not isinstance(self.augment, (bool, np.bool_)):
            raise ValueError(f"augment must be True or False, got {self.augment!r}.")
        put("augment", bool(self.augment))
        put("device", "auto" if self.device in (None, "auto") else str(parse_device(self.device)))
        train_size, test_size = SIZES[self.dataset]
        put("train_subset", checks.optional_size("train_subset", self.train_subset, train_size,
                                                 self.dataset))
        put("test_subset", checks.optional_size("test_subset", self.test_subset, test_size,
                                                self.dataset))
        put("snapshot_epochs", checks.epochs_in_run("snapshot_epochs", self.snapshot_epochs,
                                                    self.epochs, from_end=True))

    def resolved(self) -> RunConfig:
        """The same config with `device` naming the device the run will use: its type when it
        was "auto", else the device asked for (an absent one is a ValueError here)."""
        device = pick_device(self.device)
        return dataclasses.replace(self, device=device.type if self.device == "auto"
                                   else str(device))

    @property
    def label(self) -> str:
        """Short legend label, e.g. 'PSP (λ=1e-03)'."""
        if self.regularizer == "none":
            return "no regularization"
        return f"{'PSP' if self.regularizer == 'psp' else 'l2'} (λ={self.lam:.0e})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        d = dict(d)
        for key in ("lr_milestones", "snapshot_epochs"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; `history` holds the epochs finished before."""

    def __init__(self, message: str, history: RunHistory | None = None) -> None:
        super().__init__(message)
        self.history = history


#: Steps between two checks of the running loss for NaN/inf (one host sync each on a GPU).
DIVERGENCE_CHECK_STEPS = 25


def paper_config(
    dataset: str, regularizer: str, model: str | None = None, **overrides
) -> RunConfig:
    """The paper's protocol for `dataset` and `regularizer` (reference-code-facts.md)."""
    dataset = canonical_dataset(dataset)
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; use one of {REGULARIZERS}.")
    if dataset in ("mnist", "fashion-mnist", "synthetic-mnist"):
        lam = {"none": 0.0, "l2": 1e-4, "psp": 1e-3}[regularizer]
        base = dict(model=model or "lenet5", epochs=50 if dataset == "mnist" else 150,
                    batch_size=100, lr=0.1, momentum=0.0)
    elif dataset in ("cifar10", "synthetic-cifar10"):
        lam = {"none": 0.0, "l2": 5e-4, "psp": 1e-3}[regularizer]
        base = dict(model=model or "resnet18", epochs=450, batch_size=128, lr=0.1, momentum=0.9,
                    lr_milestones=(150, 250, 350), augment=True, test_batch_size=500)
    else:
        raise ValueError(f"no paper protocol for dataset {dataset!r}.")
    return RunConfig(**{**dict(dataset=dataset, regularizer=regularizer, lam=lam, **base),
                        **overrides})


def layer_names(model: nn.Module, captured: list[str]) -> list[str]:
    """Readable names for the captured potentials: the producing layer where the model says."""
    names = getattr(model, "potential_layers", None)
    return list(names) if names and len(names) == len(captured) else captured


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, batch_size: int) -> tuple[float, float, dict]:
    """Test loss, test error (%) and per-potential <z^2> over the whole test set.

    Sums stay on the device (float32 per batch); the batch totals are added in float64 on the
    host after one transfer, so a GPU syncs once per evaluation and MPS needs no float64.
    """
    model.eval()
    z_sums: list[dict[str, torch.Tensor]] = []  # per batch: name -> sum of z^2 (float32)
    outcome: list[torch.Tensor] = []  # per batch: (summed loss, number wrong)
    counts: dict[str, int] = {}

    def record(name: str, z: torch.Tensor) -> None:
        z_sums[-1][name] = z.detach().float().square().sum()
        counts[name] = counts.get(name, 0) + z.numel()

    with watch_potentials(model, record):
        for x, y in batches(data.test_x, data.test_y, batch_size):
            z_sums.append({})
            out = model(x)
            record(output_name(z_sums[-1]), out)
            outcome.append(torch.stack([F.cross_entropy(out.float(), y, reduction="sum"),
                                        (out.argmax(1) != y).sum().float()]))
    names = list(z_sums[0])
    per_batch = torch.stack([torch.stack([*o, *(b[k] for k in names)])
                             for o, b in zip(outcome, z_sums, strict=True)])
    loss_sum, wrong, *sums = per_batch.cpu().double().sum(0).tolist()  # the one sync
    n = len(data.test_y)
    z2 = OrderedDict((k, s / counts[k]) for k, s in zip(names, sums, strict=True))
    return loss_sum / n, 100.0 * wrong / n, z2


def _diverged(history: RunHistory, epoch: int, value: float) -> TrainingDiverged:
    config = history.config
    history.diverged_at = epoch
    return TrainingDiverged(
        f"{config.label}: the training loss became {value} in epoch {epoch}; try a smaller "
        f"lambda (now {config.lam:g}) or learning rate (now {config.lr:g}). The {epoch - 1} "
        "epochs before are kept in this error's history.", history)


def train(config: RunConfig, data: TensorData | None = None, *, data_dir: str | Path | None = None,
          progress: bool = True) -> RunHistory:
    """Train one run from scratch (no cache) and return its history.

    PSP is a term of the loss (`capture` + `psp_penalty`, Eq. 7), l2 is SGD's weight decay
    (Eq. 5). The caller's random state is left as it was. A NaN/inf loss raises
    `TrainingDiverged`, whose `history` keeps the epochs before it (marked `diverged_at`).
    """
    config = config.resolved()
    device = torch.device(config.device)
    if data is None:
        data = load_dataset(config.dataset, data_dir, device=device,
                            train_subset=config.train_subset, test_subset=config.test_subset)
    model = init_model(config, device)
    weight_decay = config.lam if config.regularizer == "l2" else 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones),
                                                     config.lr_gamma)
    order = torch.Generator().manual_seed(config.seed)
    psp = config.regularizer == "psp" and config.lam > 0
    history = RunHistory(config, device=describe(device), data_note=data.note)
    steps_per_epoch = math.ceil(len(data.train_y) / config.batch_size)

    bar = tqdm(range(1, config.epochs + 1), desc=config.label, unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        seen = 0
        steps = tqdm(batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                             generator=order, augment=config.augment),
                     total=steps_per_epoch, leave=False, unit="batch", disable=not progress)
        for step, (x, y) in enumerate(steps, 1):
            if psp:
                out, potentials = capture(model, x)
                loss = F.cross_entropy(out, y) + psp_penalty(potentials, config.lam,
                                                             config.normalization)
            else:
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            seen += len(y)
            if step % DIVERGENCE_CHECK_STEPS == 0 and not torch.isfinite(total).item():
                raise _diverged(history, epoch, total.item())
        scheduler.step()
        train_loss = (total / seen).item()
        if not math.isfinite(train_loss):
            raise _diverged(history, epoch, train_loss)
        test_loss, test_error, z2 = evaluate(model, data, config.test_batch_size)
        record_epoch(history, epoch, time.perf_counter() - start, train_loss, test_loss,
                     test_error, z2, layer_names(model, list(z2)), model.named_parameters())
        bar.set_postfix(test_error=f"{test_error:.2f}%", z2=f"{history.z2[-1]:.3g}")
    return history


def init_model(config: RunConfig, device: torch.device) -> nn.Module:
    """The run's network, initialized from `config.seed` (the same for every regularizer),
    without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model)
    return model.to(device)


def snapshot_epochs(config: RunConfig) -> set[int]:
    """Epochs whose weights are kept: `config.snapshot_epochs` (negative = from the end), last."""
    return ({e if e > 0 else config.epochs + 1 + e for e in config.snapshot_epochs}
            | {config.epochs})


def record_epoch(history: RunHistory, epoch: int, seconds: float, train_loss: float,
                 test_loss: float, test_error: float, z2: dict, layers: list[str],
                 parameters: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Append one epoch's numbers to `history` (and the weights, at a snapshot epoch).

    `z2` is name -> <z^2> in capture order; `layers` gives their display names.
    """
    history.seconds.append(seconds)
    history.train_loss.append(train_loss)
    history.test_loss.append(test_loss)
    history.test_error.append(test_error)
    history.z2.append(float(np.mean(list(z2.values()))))
    for name, value in zip(layers, z2.values(), strict=True):
        history.z2_layers.setdefault(name, []).append(value)
    if epoch in snapshot_epochs(history.config):
        history.weights[epoch] = {
            name: p.detach().float().cpu().numpy().ravel().copy() for name, p in parameters
        }


def check_data(config: RunConfig, data: TensorData) -> None:
    """ValueError unless `data` is `config`'s dataset with `config`'s subset sizes (a run is
    cached under both, so a stand-in's numbers can never be filed under another dataset)."""
    if data.name != config.dataset:
        raise ValueError(f"data is {data.name!r} but the config says {config.dataset!r}; pass "
                         "the config of the dataset trained on (the cache keys runs by both).")
    synthetic = SYNTHETIC_DEFAULT_SIZES if config.dataset.startswith("synthetic") else None
    for i, (split, subset) in enumerate((("train", config.train_subset),
                                         ("test", config.test_subset))):
        wanted = subset or (synthetic or SIZES[config.dataset])[i]
        if data.fingerprint[split] != wanted:
            raise ValueError(f"data has {data.fingerprint[split]} {split} images but the config "
                             f"asks for {wanted} ({split}_subset={subset}); load the data with "
                             "the config's subsets.")


def run(config: RunConfig, *, data: TensorData | None = None, data_dir: str | Path | None = None,
        use_cache: bool = True, progress: bool = True) -> RunHistory:
    """`train(config)`, reusing a cached history of the same config and data when there is one.

    The data is loaded first (it is cached per process): the cache key holds its fingerprint.
    Data passed in must be the config's dataset with the config's subset sizes.
    An unwritable cache folder is reported before training starts; if saving still fails after
    training, a warning names the folder and the history is returned all the same.
    """
    config = config.resolved()
    if data is None:
        data = load_dataset(config.dataset, data_dir, device=config.device,
                            train_subset=config.train_subset, test_subset=config.test_subset)
    else:
        check_data(config, data)
    if not use_cache:
        return train(config, data, progress=progress)
    cached = cache.load(config, data.fingerprint)
    if cached is not None:
        return cached
    cache.check_writable()
    history = train(config, data, progress=progress)
    try:
        cache.save(history, data.fingerprint)
    except OSError as error:
        where = cache.path_for(config, data.fingerprint)
        warnings.warn(f"could not save the finished run to {where} ({error}); returning it "
                      f"uncached. Make {cache.cache_dir()} writable or "
                      "set $PSP_LITE_CACHE to a writable folder to keep runs.", stacklevel=2)
    return history
