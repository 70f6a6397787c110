"""What a training run is: its config (everything that determines its numbers), its per-epoch
history, and the authors' protocols as configs. Types only: no training happens here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import psp_lite.training.checks as checks
from psp_lite.data import CATALOG, SYNTHETIC_DEFAULT_SIZES, TensorData, canonical_dataset
from psp_lite.device import parse_device, pick_device
from psp_lite.models import canonical_model, check_input_shape
from psp_lite.regularizers import REGULARIZERS, check_lambda, check_normalization, short_name

#: "bfloat16" runs each training forward pass under autocast; parameters, optimizer, the PSP
#: penalty's sums and the evaluation stay in float32.
PRECISIONS = ("float32", "bfloat16")
#: Seeds torch tells apart: its generators keep the low 32 bits, so seed 2**32 would train
#: exactly like seed 0 under another cache key.
MAX_SEED = 2**32 - 1
#: Upper bounds of lambda and the learning rate: far above any useful value (the paper's are
#: 1e-4..1e-3 and 0.1; such a run diverges, and is reported so), far below float32's 3.4e38,
#: past which training cannot even start ("value cannot be converted to type float").
MAX_LAMBDA, MAX_LR = 1e6, 1e6


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
    precision: str = "float32"  # "bfloat16": the forward pass under autocast (GPU speed)

    def __post_init__(self) -> None:
        """Check every field at construction (a one-line ValueError naming the field) and store
        plain Python values, so that a numpy scalar or a list cannot reach the cache key."""
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("dataset", canonical_dataset(self.dataset))
        put("model", canonical_model(self.model))
        check_input_shape(self.model, self.dataset, CATALOG[self.dataset].input_shape)
        if self.regularizer not in REGULARIZERS:
            raise ValueError(
                f"unknown regularizer {self.regularizer!r}; use one of {REGULARIZERS}.")
        put("lam", check_lambda(self.lam))
        if self.lam > MAX_LAMBDA:
            raise ValueError(f"lam must be at most {MAX_LAMBDA:g}, got {self.lam:g}; useful "
                             "values are about 1e-5..1e-1.")
        check_normalization(self.normalization)
        if self.regularizer == "none" and self.lam != 0:
            raise ValueError("regularizer 'none' takes lam=0; use regularizer='l2' or 'psp'.")
        for name in ("epochs", "batch_size", "test_batch_size"):
            put(name, checks.integer(name, getattr(self, name)))
        put("seed", checks.integer("seed", self.seed, minimum=0, maximum=MAX_SEED,
                                   hint="torch keeps a seed's low 32 bits"))
        put("lr", checks.real("lr", self.lr, low=0.0, low_open=True, high=MAX_LR,
                              high_open=False))
        put("momentum", checks.real("momentum", self.momentum, low=0.0, high=1.0,
                                    hint="the paper uses 0 (MNIST) and 0.9 (CIFAR-10)"))
        put("lr_gamma", checks.real("lr_gamma", self.lr_gamma, low=0.0, low_open=True))
        put("lr_milestones", checks.milestones("lr_milestones", self.lr_milestones))
        if not isinstance(self.augment, (bool, np.bool_)):
            raise ValueError(f"augment must be True or False, got {self.augment!r}.")
        put("augment", bool(self.augment))
        put("device", "auto" if self.device in (None, "auto") else str(parse_device(self.device)))
        train_size, test_size = CATALOG[self.dataset].sizes
        put("train_subset", checks.optional_size("train_subset", self.train_subset, train_size,
                                                 self.dataset))
        put("test_subset", checks.optional_size("test_subset", self.test_subset, test_size,
                                                self.dataset))
        put("snapshot_epochs", checks.epochs_in_run("snapshot_epochs", self.snapshot_epochs,
                                                    self.epochs, from_end=True))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")

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
            return short_name("none")
        return f"{short_name(self.regularizer)} (λ={self.lam:.0e})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        d = dict(d)
        for key in ("lr_milestones", "snapshot_epochs"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


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


#: Seeds per regularizer in the authors' code for LeNet5 (the paper states none).
AUTHORS_SEEDS = 10


@dataclass(frozen=True)
class Protocol:
    """A published protocol's numbers, for a notebook's parameters cell (from `paper_config`)."""

    epochs: int
    seeds: int
    lams: dict[str, float]  # per regularizer with a lambda
    normalization: str
    train_images: int  # the whole training set


def protocol(dataset: str, model: str | None = None) -> Protocol:
    """The published protocol for `dataset`: for LeNet5 (MNIST, Fashion-MNIST) the epochs and
    seeds of the authors' code, for CIFAR-10 the paper's 450 epochs; the lambdas of both."""
    psp = paper_config(dataset, "psp", model)
    return Protocol(epochs=psp.epochs, seeds=AUTHORS_SEEDS,
                    lams={r: paper_config(dataset, r, model).lam for r in ("l2", "psp")},
                    normalization=psp.normalization, train_images=CATALOG[psp.dataset].sizes[0])


#: --quick: a short but real protocol (one seed, real data) that ends in minutes on a laptop CPU.
#: Fashion-MNIST: scarce data, where PSP's effect on test error shows soonest (measured with
#: scripts/cheapest_protocol.py over 3 seeds: after 20 epochs PSP at lambda 3e-2 is 0.90 +- 0.11
#: points below no regularization; README, "The cheapest protocol").
QUICK = {
    "mnist": dict(epochs=3, train_subset=20000),
    "fashion-mnist": dict(epochs=20, train_subset=2000),
    "cifar10": dict(epochs=2, train_subset=2000, test_subset=1000),
}
#: --quick's lambdas where they differ from the authors' protocol (their best on the quick data).
QUICK_LAMS = {"fashion-mnist": {"psp": 3e-2}}


def check_data(config: RunConfig, data: TensorData) -> None:
    """ValueError unless `data` is `config`'s dataset with `config`'s subset sizes (a run is
    cached under both, so a stand-in's numbers can never be filed under another dataset)."""
    if data.name != config.dataset:
        raise ValueError(f"data is {data.name!r} but the config says {config.dataset!r}; pass "
                         "the config of the dataset trained on (the cache keys runs by both).")
    synthetic = SYNTHETIC_DEFAULT_SIZES if config.dataset.startswith("synthetic") else None
    for i, (split, subset) in enumerate((("train", config.train_subset),
                                         ("test", config.test_subset))):
        wanted = subset or (synthetic or CATALOG[config.dataset].sizes)[i]
        if data.fingerprint[split] != wanted:
            raise ValueError(f"data has {data.fingerprint[split]} {split} images but the config "
                             f"asks for {wanted} ({split}_subset={subset}); load the data with "
                             "the config's subsets.")
