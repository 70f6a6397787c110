"""On-disk cache of run histories, keyed by the run's config.

One `.npz` file per run: the numbers as JSON text plus the weight snapshots as plain arrays,
read with `allow_pickle=False` (nothing is ever unpickled). Written to a temporary file and
renamed into place, so an interrupted write leaves no entry; an unreadable entry is reported and
treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from psp_lite.train import RunConfig, RunHistory

FORMAT = 1


def cache_dir() -> Path:
    """`$PSP_LITE_CACHE`, else ~/.cache/psp-lite/runs."""
    return Path(os.environ.get("PSP_LITE_CACHE") or Path.home() / ".cache" / "psp-lite" / "runs")


def key(config: RunConfig) -> str:
    """A stable hash of the config (its canonical JSON)."""
    text = json.dumps({"format": FORMAT, **config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def path_for(config: RunConfig) -> Path:
    return cache_dir() / f"{config.dataset}-{config.model}-{config.regularizer}-{key(config)}.npz"


def save(history: RunHistory) -> Path:
    """Write `history` atomically; return its path."""
    path = path_for(history.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT, "config": history.config.to_dict(), "train_loss": history.train_loss,
        "test_loss": history.test_loss, "test_error": history.test_error, "z2": history.z2,
        "z2_layers": history.z2_layers, "seconds": history.seconds, "device": history.device,
        "data_note": history.data_note,
    }
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
    return path


def load(config: RunConfig) -> RunHistory | None:
    """The cached history for `config`, or None (also, with a warning, for an unreadable entry)."""
    from psp_lite.train import RunConfig, RunHistory

    path = path_for(config)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            weights: dict[int, dict[str, np.ndarray]] = {}
            for name in f.files:
                if name.startswith("w:"):
                    _, epoch, param = name.split(":", 2)
                    weights.setdefault(int(epoch), {})[param] = f[name]
        if meta.get("format") != FORMAT or RunConfig.from_dict(meta["config"]) != config:
            raise ValueError("entry belongs to another config or format")
        return RunHistory(
            config=config, train_loss=meta["train_loss"], test_loss=meta["test_loss"],
            test_error=meta["test_error"], z2=meta["z2"], z2_layers=meta["z2_layers"],
            seconds=meta["seconds"], weights=weights, device=meta["device"],
            data_note=meta["data_note"],
        )
    except Exception as error:  # noqa: BLE001 - any unreadable entry is a cache miss
        warnings.warn(f"cache entry {path} is unreadable ({error}); recomputing it.", stacklevel=2)
        return None
