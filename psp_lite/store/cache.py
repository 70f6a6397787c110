"""On-disk cache of run histories, keyed by the run's config, the data it used and the code.

One `.npz` file per run: the history's JSON record (`psp_lite.store.codec`) as the `meta` array
plus the weight snapshots as plain float32 arrays; nothing is ever unpickled. A run that diverged
is stored like any other (its `diverged_at` set), so a resumed sweep does not retrain it. The key
hashes

* the config (`RunConfig.to_dict`),
* the fingerprint of the data actually trained on (`TensorData.fingerprint`: dataset name,
  train / test sizes, a checksum of the labels), so a stand-in's run is never filed under the
  dataset it stands in for,
* `FORMAT` (the file layout) and `TRAINING_VERSION` (what training computes), so that numbers
  made by older code are not reused after training changes.

Writes go to a uniquely named temporary file renamed into place (`psp_lite.store.atomic`); a
failed write raises `CacheWriteError` naming the file. On load the archive's headers are checked
before any array is read (`psp_lite.store.archive`), then every value (`codec.decode`); an
unreadable or ill-formed entry is reported and treated as missing, while a bug propagates.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import psp_lite.store.atomic as atomic
import psp_lite.store.codec as codec
from psp_lite.store.archive import Archive, ArchiveError
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory

#: Layout of an entry (the JSON fields and the weight arrays); bump when it changes.
#: 3: one codec with packs; diverged runs are stored.
FORMAT = 3
#: What training computes. Bump by hand whenever a change to psp_lite's training or evaluation
#: code can change a run's numbers: every older entry is then recomputed instead of reused.
#: 2: evaluation outside the PSP block, fused PSP as a loss term (issue 9).
TRAINING_VERSION = 2
#: The `meta` JSON is at most this many characters (a 150-epoch ResNet-18 run needs ~0.1 M).
MAX_META_CHARS = 4_000_000
STALE_TMP_SECONDS = atomic.STALE_TMP_SECONDS
HINT = "set $PSP_LITE_CACHE to a writable folder (or pass use_cache=False) to keep finished runs"


class CacheNotWritableError(atomic.StoreWriteError):
    """The run cache folder cannot be written (reported before any training starts)."""

    template = "the run cache folder {path} is not writable ({why})"


class CacheWriteError(atomic.StoreWriteError):
    """A finished run could not be written to its cache entry (e.g. a full disk)."""


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
    """Delete `.tmp-*` files left in `folder` by interrupted writes; return how many (only
    files older than `older_than` seconds: a write in progress elsewhere keeps its file)."""
    return atomic.remove_stale_tmp(cache_dir() if folder is None else folder, older_than)


def check_writable(folder: Path | None = None) -> Path:
    """Make sure runs can be saved into `folder` (default: `cache_dir()`), before training;
    raise CacheNotWritableError naming the folder and `$PSP_LITE_CACHE` otherwise."""
    return atomic.check_writable(cache_dir() if folder is None else folder,
                                 CacheNotWritableError, HINT)


def save(history: RunHistory, fingerprint: Mapping[str, Any]) -> Path:
    """Write `history` (finished or diverged), trained on data with `fingerprint`, atomically;
    return its path. CacheWriteError (an OSError) names the entry when it cannot be written."""
    path = path_for(history.config, fingerprint)
    meta = {"format": FORMAT, "training": TRAINING_VERSION, "data": dict(fingerprint),
            "config": codec.config_to_json(history.config), "history": codec.encode(history)}
    arrays = {f"w:{epoch}:{name}": np.asarray(w, dtype=codec.WEIGHT_DTYPE)
              for epoch, ws in history.weights.items() for name, w in ws.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_atomic(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)),
                                                     **arrays))
    except OSError as error:
        raise CacheWriteError(path, error, HINT) from error
    remove_stale_tmp(path.parent)
    return path


def _meta(archive: Archive) -> Any:
    header = archive.headers.get("meta")
    if header is None or header.dtype.kind != "U" or header.shape != ():
        raise CorruptEntry("its metadata array is missing or not text")
    if header.dtype.itemsize // 4 > MAX_META_CHARS:
        raise CorruptEntry(f"its metadata claims {header.dtype.itemsize // 4} characters, more "
                           f"than {MAX_META_CHARS}")
    try:
        return json.loads(str(archive.read("meta")))
    except json.JSONDecodeError as error:
        raise CorruptEntry(f"its metadata is not JSON ({error})") from None


def _read(archive: Archive, config: RunConfig, fingerprint: Mapping[str, Any]) -> RunHistory:
    """The checked history of an open entry: metadata first, weight headers next, arrays last."""
    meta = _meta(archive)
    if not isinstance(meta, dict):
        raise CorruptEntry("its metadata is not a JSON object")
    if (meta.get("format"), meta.get("training")) != (FORMAT, TRAINING_VERSION):
        raise CorruptEntry(f"it was written by other code (format {meta.get('format')}, "
                           f"training {meta.get('training')})")
    if meta.get("data") != dict(fingerprint):
        raise CorruptEntry(f"it was trained on other data ({meta.get('data')})")
    if codec.config_from_json(meta.get("config")) != config:
        raise CorruptEntry("it belongs to another config")
    history = codec.decode(meta.get("history"), config)
    found = {}
    for name, header in archive.headers.items():
        if name == "meta":
            continue
        _, epoch, param = (name.split(":", 2) + ["", ""])[:3]
        if not name.startswith("w:") or not epoch.isdigit() or not param:
            raise CorruptEntry(f"array {name!r} is not a weight snapshot 'w:EPOCH:PARAMETER'")
        found[(int(epoch), param)] = header
    n = len(history.test_error)
    codec.check_weight_headers(found, config, codec.snapshot_epochs_run(config, n),
                               every_epoch=True)
    for epoch, param in found:
        array = codec.check_weight_values(param, archive.read(f"w:{epoch}:{param}"))
        history.weights.setdefault(epoch, {})[param] = array
    return history


def load(config: RunConfig, fingerprint: Mapping[str, Any]) -> RunHistory | None:
    """The cached history of `config` trained on data with `fingerprint` (finished or diverged),
    or None: also, with a warning, for an unreadable or ill-formed entry, which is recomputed.
    Anything else (a bug) propagates."""
    path = path_for(config, fingerprint)
    if not path.exists():
        return None
    try:
        with Archive(path) as archive:
            return _read(archive, config, fingerprint)
    except (OSError, ArchiveError, CorruptEntry, codec.InvalidRecord) as error:
        warnings.warn(f"cache entry {path} is unreadable or ill-formed ({error}); recomputing "
                      "it.", stacklevel=2)
        return None
