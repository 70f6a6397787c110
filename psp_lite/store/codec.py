"""One codec for `RunHistory`, shared by the run cache and results packs (issue 17: two codecs
with hand-kept field lists would silently drop a new field).

The fields come from the dataclasses themselves: `kinds()` reads `RunHistory`'s type hints and
knows how to store and check each type (a new field of a known type is stored with no change
here; one of an unknown type fails at import). A history is stored as a JSON record (every
field but `config` and `weights`) plus its weight snapshots as float32 arrays, stored by the
container (cache entry or pack).

Decoding checks every value (issue 18: NaN, inf, -50 % or 250 % test errors loaded without a
word): one finite number per epoch run (all epochs, or those before `diverged_at`), test errors
in [0, 100], losses, <z^2> and seconds >= 0; weight headers against the parameters of the
config's model, before any array is read. Anything else is an `InvalidRecord` naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from psp_lite.models import get_model
from psp_lite.store.archive import Header
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory
from psp_lite.training.loop import snapshot_epochs

#: How each field type is stored: "per-epoch" (a number per epoch run), "per-layer" (layer name
#: -> a number per epoch run), "text", "epoch" (None or an epoch: `diverged_at`), and the two the
#: containers store themselves, "config" and "weights".
TYPE_KINDS: list[tuple[Any, str]] = [
    (list[float], "per-epoch"), (dict[str, list[float]], "per-layer"), (str, "text"),
    (int | None, "epoch"), (RunConfig, "config"), (dict[int, dict[str, np.ndarray]], "weights"),
]
#: Per-epoch bounds (inclusive); a field not named here need only be finite.
BOUNDS: dict[str, tuple[float, float]] = {
    "test_error": (0.0, 100.0), "train_loss": (0.0, math.inf), "test_loss": (0.0, math.inf),
    "z2": (0.0, math.inf), "seconds": (0.0, math.inf), "z2_layers": (0.0, math.inf),
}
WEIGHT_DTYPE = np.dtype("<f4")


class InvalidRecord(ValueError):
    """A stored history or config that is not well formed; the message names the field."""


def kinds(cls: type = RunHistory) -> dict[str, str]:
    """Field name -> storage kind of every field of the dataclass `cls`; TypeError for a field
    whose type the codec cannot store (so that no field is ever dropped)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        kind = next((k for t, k in TYPE_KINDS if hints[f.name] == t), None)
        if kind is None:
            raise TypeError(f"the store's codec cannot store {cls.__name__}.{f.name} of type "
                            f"{hints[f.name]}; teach psp_lite/store/codec.py how.")
        out[f.name] = kind
    return out


KINDS = kinds()
#: The JSON record's fields: every field but the two the containers store themselves.
RECORD_FIELDS = tuple(name for name, kind in KINDS.items() if kind not in ("config", "weights"))


# ----------------------------------------------------------------------------- configs


def config_to_json(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(d: Any) -> RunConfig:
    """The RunConfig of a stored dict holding exactly its fields (checked by RunConfig)."""
    if not isinstance(d, dict):
        raise InvalidRecord("the config is not a JSON object")
    names = [f.name for f in dataclasses.fields(RunConfig)]
    missing, unknown = sorted(set(names) - set(d)), sorted(set(d) - set(names))
    if missing or unknown:
        raise InvalidRecord(f"the config's fields differ (missing {missing}, unknown {unknown})")
    hints = typing.get_type_hints(RunConfig)
    values = {k: tuple(v) if typing.get_origin(hints[k]) is tuple and isinstance(v, list) else v
              for k, v in d.items()}
    try:
        return RunConfig(**values)
    except (TypeError, ValueError) as error:
        raise InvalidRecord(f"the config is not valid ({error})") from None


# ----------------------------------------------------------------------------- histories


def encode(history: Any) -> dict[str, Any]:
    """The JSON record of a history (or of any dataclass `kinds` accepts): every field but
    `config` and `weights`."""
    out: dict[str, Any] = {}
    for name, kind in kinds(type(history)).items():
        value = getattr(history, name)
        if kind == "per-epoch":
            out[name] = [float(v) for v in value]
        elif kind == "per-layer":
            out[name] = {str(k): [float(v) for v in vs] for k, vs in value.items()}
        elif kind in ("text", "epoch"):
            out[name] = value
    return out


def epochs_run(config: RunConfig, diverged_at: int | None) -> int:
    """How many epochs a history records: all, or those before the one that diverged."""
    return config.epochs if diverged_at is None else diverged_at - 1


def _numbers(name: str, values: Any, n: int, bounds: tuple[float, float]) -> list[float]:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise InvalidRecord(f"{name} should hold {n} numbers (one per epoch run), got {got}")
    low, high = bounds
    for v in values:
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise InvalidRecord(f"{name} holds a value that is not a number ({v!r})")
        if not (math.isfinite(v) and low <= v <= high):
            raise InvalidRecord(f"{name} holds {v!r}, outside [{low:g}, {high:g}]")
    return [float(v) for v in values]


def _epoch(value: Any, config: RunConfig) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= config.epochs:
        raise InvalidRecord(f"diverged_at should be null or an epoch 1..{config.epochs}, got "
                            f"{value!r}")
    return value


def decode(record: Any, config: RunConfig, weights: dict[int, dict[str, np.ndarray]] | None = None,
           cls: type = RunHistory) -> Any:
    """The checked `cls` instance of a JSON `record`, its config and its (checked) weights."""
    if not isinstance(record, dict):
        raise InvalidRecord("the history is not a JSON object")
    names = [name for name, kind in kinds(cls).items() if kind not in ("config", "weights")]
    missing, unknown = sorted(set(names) - set(record)), sorted(set(record) - set(names))
    if missing or unknown:
        raise InvalidRecord(f"the history's fields differ (missing {missing}, unknown {unknown})")
    epoch_fields = [name for name, kind in kinds(cls).items() if kind == "epoch"]
    diverged = {name: _epoch(record[name], config) for name in epoch_fields}
    n = epochs_run(config, diverged.get("diverged_at"))
    values: dict[str, Any] = dict(diverged)
    for name, kind in kinds(cls).items():
        value = record.get(name)
        bounds = BOUNDS.get(name, (-math.inf, math.inf))
        if kind == "per-epoch":
            values[name] = _numbers(name, value, n, bounds)
        elif kind == "per-layer":
            if not isinstance(value, dict) or (n > 0) != bool(value):
                raise InvalidRecord(f"{name} should map layer names to {n} numbers each")
            values[name] = {str(k): _numbers(f"{name}[{k!r}]", v, n, bounds)
                            for k, v in value.items()}
        elif kind == "text":
            if not isinstance(value, str):
                raise InvalidRecord(f"{name} should be text, got {type(value).__name__}")
            values[name] = value
    return cls(config=config, weights=dict(weights or {}), **values)


# ----------------------------------------------------------------------------- weights


@functools.cache
def parameter_sizes(model: str) -> dict[str, int]:
    """Parameter name -> number of values of `model` (built on the meta device: no memory)."""
    with torch.device("meta"):
        net = get_model(model)
    return {name: p.numel() for name, p in net.named_parameters()}


def snapshot_epochs_run(config: RunConfig, n: int) -> set[int]:
    """The snapshot epochs a history that ran `n` epochs keeps."""
    return {e for e in snapshot_epochs(config) if e <= n}


def check_weight_headers(found: Mapping[tuple[int, str], Header], config: RunConfig,
                         epochs: set[int], *, every_epoch: bool) -> None:
    """Check the weight arrays' headers ((epoch, parameter) -> Header) before reading them:
    epochs among `epochs` (all of them when `every_epoch`), every parameter of the config's
    model at each, each a float32 vector of the parameter's size."""
    sizes = parameter_sizes(config.model)
    by_epoch: dict[int, dict[str, Header]] = {}
    for (epoch, name), header in found.items():
        by_epoch.setdefault(epoch, {})[name] = header
    if not set(by_epoch) <= epochs or (every_epoch and set(by_epoch) != epochs):
        raise InvalidRecord(f"weights kept at epochs {sorted(by_epoch)}, expected "
                            f"{'' if every_epoch else 'some of '}{sorted(epochs)}")
    for epoch, headers in by_epoch.items():
        if set(headers) != set(sizes):
            raise InvalidRecord(
                f"the weights of epoch {epoch} miss {sorted(set(sizes) - set(headers))[:3]} and "
                f"hold unknown {sorted(set(headers) - set(sizes))[:3]} ({config.model})")
        for name, h in headers.items():
            if h.dtype != WEIGHT_DTYPE or h.shape != (sizes[name],):
                raise InvalidRecord(f"weight {name!r} of epoch {epoch} is {h.dtype} of shape "
                                    f"{h.shape}; {config.model} needs float32 ({sizes[name]},)")


def check_weight_values(name: str, array: np.ndarray) -> np.ndarray:
    """A read weight array, refused if it holds NaN or inf."""
    if not np.isfinite(array).all():
        raise InvalidRecord(f"weight {name!r} holds NaN or inf")
    return array
