"""On-disk cache of run histories, keyed by the run's config, the data it used and the code.

One `.npz` file per run: the numbers as JSON text plus the weight snapshots as plain arrays,
read with `allow_pickle=False` (nothing is ever unpickled). The key hashes

* the config (`RunConfig.to_dict`),
* the fingerprint of the data actually trained on (`TensorData.fingerprint`: dataset name,
  train / test sizes, a checksum of the labels), so a stand-in's run is never filed under the
  dataset it stands in for,
* `FORMAT` (the file layout) and `TRAINING_VERSION` (what training computes), so that numbers
  made by older code are not reused after training changes.

Writes go to a temporary file renamed into place, so an interrupted write leaves no entry (and a
`.tmp-*` file that is removed later). On load every field is checked (types, and one value per
epoch); an unreadable or ill-formed entry is reported and treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory

#: Layout of an entry (the JSON fields and the weight arrays); bump when it changes.
FORMAT = 2
#: What training computes. Bump by hand whenever a change to psp_lite's training or evaluation
#: code can change a run's numbers: every older entry is then recomputed instead of reused.
#: 2: evaluation outside the PSP block, fused PSP as a loss term (issue 9).
TRAINING_VERSION = 2
#: `.tmp-*` files older than this (seconds) are left by interrupted writes and are removed.
STALE_TMP_SECONDS = 15 * 60

#: RunHistory's fields stored as JSON and how each is checked on load ("per-epoch": one number
#: per epoch; "per-layer": layer name -> one number per epoch; "text": a string; "finished":
#: None, since only runs that did not diverge are stored).
FIELDS = {
    "train_loss": "per-epoch", "test_loss": "per-epoch", "test_error": "per-epoch",
    "z2": "per-epoch", "seconds": "per-epoch", "z2_layers": "per-layer", "device": "text",
    "data_note": "text", "diverged_at": "finished",
}


class CacheNotWritableError(OSError):
    """The run cache folder cannot be written (reported before any training starts)."""


class CorruptEntry(ValueError):
    """A cache entry whose contents are not a well-formed history of its config."""


def cache_dir() -> Path:
    """`$PSP_LITE_CACHE`, else ~/.cache/psp-lite/runs."""
    return Path(os.environ.get("PSP_LITE_CACHE") or Path.home() / ".cache" / "psp-lite" / "runs")


def key(config: RunConfig, fingerprint: Mapping[str, Any]) -> str:
    """A stable hash of the config, the data fingerprint and the code versions."""
    text = json.dumps({"format": FORMAT, "training": TRAINING_VERSION, "data": dict(fingerprint),
                       **config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def path_for(config: RunConfig, fingerprint: Mapping[str, Any]) -> Path:
    return (cache_dir() / f"{config.dataset}-{config.model}-{config.regularizer}-"
                          f"{key(config, fingerprint)}.npz")


def remove_stale_tmp(folder: Path | None = None, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete `.tmp-*` files left in `folder` by interrupted writes; return how many.

    Only files older than `older_than` seconds are touched, so a write in progress in another
    process keeps its file.
    """
    folder = cache_dir() if folder is None else folder
    removed = 0
    now = time.time()
    for tmp in folder.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


def check_writable(folder: Path | None = None) -> Path:
    """Make sure runs can be saved into `folder` (default: `cache_dir()`), before training;
    raise CacheNotWritableError naming the folder and `$PSP_LITE_CACHE` otherwise."""
    folder = cache_dir() if folder is None else folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise CacheNotWritableError(
            f"the run cache folder {folder} is not writable ({error.strerror or error}); set "
            "$PSP_LITE_CACHE to a writable folder, or pass use_cache=False, so that finished "
            "runs are not lost.") from error
    remove_stale_tmp(folder)
    return folder


def save(history: RunHistory, fingerprint: Mapping[str, Any]) -> Path:
    """Write `history`, trained on data with `fingerprint`, atomically; return its path."""
    if history.diverged_at is not None:
        raise ValueError(f"{history.config.label} diverged in epoch {history.diverged_at}; only "
                         "finished runs are cached.")
    path = path_for(history.config, fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "training": TRAINING_VERSION, "data": dict(fingerprint),
            "config": history.config.to_dict(),
            **{name: getattr(history, name) for name in FIELDS}}
    arrays = {f"w:{epoch}:{name}": w
              for epoch, ws in history.weights.items() for name, w in ws.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_stale_tmp(path.parent)
    return path


def _numbers(name: str, values: Any, n: int) -> list[float]:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise CorruptEntry(f"{name} should hold {n} numbers (one per epoch), got {got}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise CorruptEntry(f"{name} holds a value that is not a number")
    return [float(v) for v in values]


def _weights(files: dict[str, np.ndarray], epochs: set[int]) -> dict[int, dict[str, np.ndarray]]:
    weights: dict[int, dict[str, np.ndarray]] = {}
    for name, array in files.items():
        _, epoch, param = name.split(":", 2)
        if not epoch.isdigit() or array.ndim != 1 or array.dtype.kind != "f":
            raise CorruptEntry(f"weight array {name!r} is ill-formed ({array.dtype}, "
                               f"{array.ndim}-D)")
        weights.setdefault(int(epoch), {})[param] = array
    if set(weights) != epochs:
        raise CorruptEntry(f"weights kept at epochs {sorted(weights)}, expected {sorted(epochs)}")
    names = {frozenset(ws) for ws in weights.values()}
    if len(names) > 1:
        raise CorruptEntry("the weight snapshots do not all hold the same parameters")
    return weights


def _history(meta: Any, files: dict[str, np.ndarray], config: RunConfig,
             fingerprint: Mapping[str, Any]) -> RunHistory:
    """The checked RunHistory of an entry's JSON `meta` and weight arrays, or CorruptEntry."""
    if not isinstance(meta, dict):
        raise CorruptEntry("its metadata is not a JSON object")
    if (meta.get("format"), meta.get("training")) != (FORMAT, TRAINING_VERSION):
        raise CorruptEntry(f"it was written by other code (format {meta.get('format')}, "
                           f"training {meta.get('training')})")
    if meta.get("data") != dict(fingerprint):
        raise CorruptEntry(f"it was trained on other data ({meta.get('data')})")
    if not isinstance(meta.get("config"), dict) or RunConfig.from_dict(meta["config"]) != config:
        raise CorruptEntry("it belongs to another config")
    missing = [name for name in FIELDS if name not in meta]
    if missing:
        raise CorruptEntry(f"fields {missing} are missing")
    n = config.epochs  # a stored run is a finished run: one value per epoch
    values: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        value = meta[name]
        if kind == "per-epoch":
            values[name] = _numbers(name, value, n)
        elif kind == "per-layer":
            if not isinstance(value, dict) or not value:
                raise CorruptEntry(f"{name} should map layer names to per-epoch numbers")
            values[name] = {str(k): _numbers(f"{name}[{k!r}]", v, n) for k, v in value.items()}
        elif kind == "finished":
            if value is not None:
                raise CorruptEntry(f"{name} should be null for a stored run, got {value!r}")
            values[name] = None
        elif not isinstance(value, str):
            raise CorruptEntry(f"{name} should be text, got {type(value).__name__}")
        else:
            values[name] = value
    keep = {e if e > 0 else n + 1 + e for e in config.snapshot_epochs} | {n}
    return RunHistory(config=config, weights=_weights(files, keep), **values)


def load(config: RunConfig, fingerprint: Mapping[str, Any]) -> RunHistory | None:
    """The cached history of `config` trained on data with `fingerprint`, or None (also, with
    a warning, for an unreadable or ill-formed entry, which is then recomputed)."""
    path = path_for(config, fingerprint)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            files = {name: f[name] for name in f.files if name.startswith("w:")}
        return _history(meta, files, config, fingerprint)
    except Exception as error:  # noqa: BLE001 - any unreadable entry is a cache miss
        warnings.warn(f"cache entry {path} is unreadable or ill-formed ({error}); recomputing "
                      "it.", stacklevel=2)
        return None

