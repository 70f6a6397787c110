"""Results packs: full-length histories made once (`psp-lite reproduce all`, on a GPU) and
loaded by the notebooks, so a class sees the authors' protocol at once beside its own short run.

A pack is a folder of three files, none of them pickled:

* `manifest.json`: the pack format, the code version, the device, the date, the wall time, every
  run's config, and each experiment's runs grouped as `experiments.compare` returns them
  (group, e.g. a regularizer -> one run id per seed); plus whatever the writer adds (smoke mode,
  stand-in data);
* `histories.json`: per run, its history's record (`psp_lite.store.codec`, as in the cache);
* `weights.npz`: float32 weights only where a figure uses them (`WEIGHTS_KEPT`: Fig. 3's l2 and
  PSP networks at their last epoch), never unpickled.

A pack is written as one unit (issue 18: two writers sharing one temp name broke 3 packs in 4):
each file goes to a unique temporary name, the manifest records the other two files' SHA-256,
and the three are renamed into place under an exclusive lock on the folder, readers taking a
shared one; a reader that still meets files of two writes (no `flock`, e.g. on Windows) sees the
checksums differ. A failed write raises `PackWriteError` (an OSError) naming the folder.

`load_pack()` looks in `$PSP_LITE_RESULTS`, else the repository's `results/` folder, and returns
None when there is no pack; a damaged pack raises `PackError` naming the file and the problem
(`psp_lite.store.pack_reader` checks every file, value and array header).
What the notebooks show of a pack (its provenance line, tables, figures) is in
`psp_lite.report.pack_views`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import psp_lite.store.atomic as atomic
import psp_lite.store.codec as codec
from psp_lite.store.pack_reader import (
    FORMAT,
    HISTORIES,
    MANIFEST,
    WEIGHTS,
    WEIGHTS_KEPT,
    PackError,
    read_pack,
    run_id,
    sha256,
)
from psp_lite.training.history import Groups, RunHistory

__all__ = ["FORMAT", "HISTORIES", "MANIFEST", "WEIGHTS", "WEIGHTS_KEPT", "Pack", "PackError",
           "PackWriteError", "check_writable", "code_version", "default_path", "load_pack",
           "run_id", "write_pack"]
HINT = "choose a writable folder for --out"


class PackWriteError(atomic.StoreWriteError):
    """A results pack could not be written: names the folder or file and why."""


@dataclass
class Pack:
    """A loaded results pack: its folder, its manifest and its experiments' histories."""

    path: Path
    manifest: dict[str, Any]
    experiments: dict[str, Groups] = field(default_factory=dict)

    def results(self, experiment: str) -> Groups:
        """The histories of `experiment` (e.g. "fig2"), as `experiments.compare` returns them."""
        if experiment not in self.experiments:
            raise KeyError(f"the results pack in {self.path} holds no {experiment!r} (it has "
                           f"{sorted(self.experiments)}); remake it with `psp-lite reproduce all`.")
        return self.experiments[experiment]

    @property
    def smoke(self) -> bool:
        return self.manifest.get("smoke") is True


def default_path() -> Path:
    """`$PSP_LITE_RESULTS`, else the `results/` folder next to the package (the repository's)."""
    env = os.environ.get("PSP_LITE_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "results"


# ----------------------------------------------------------------------------- writing


def code_version() -> dict[str, str]:
    """The installed psp-lite's version and `git describe --always --dirty` of the checkout
    ("unknown" when it is not a git checkout or git is missing)."""
    try:
        version = importlib.metadata.version("psp-lite")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"

    try:
        git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).resolve().parent.parent)
        described = git.stdout.strip() if git.returncode == 0 and git.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        described = "unknown"
    return {"psp_lite": version, "git": described}


def _rollup(histories_by_experiment: Mapping[str, Mapping[str, Sequence[RunHistory]]]
            ) -> tuple[dict[str, RunHistory], dict[str, dict[str, list[str]]]]:
    """The runs by id (each stored once) and each experiment's groups of run ids."""
    runs: dict[str, RunHistory] = {}
    experiments: dict[str, dict[str, list[str]]] = {}
    for name, groups in histories_by_experiment.items():
        experiments[name] = {}
        for group, histories in groups.items():
            ids = []
            for h in histories:
                rid = run_id(h.config)
                if rid in runs and runs[rid] is not h and runs[rid].test_error != h.test_error:
                    raise ValueError(f"two different histories of one config ({rid}).")
                runs[rid] = h
                ids.append(rid)
            experiments[name][str(group)] = ids
    if not experiments or not all(experiments.values()):
        raise ValueError("write_pack needs at least one experiment, each with a group of runs.")
    return runs, experiments


def check_writable(out_dir: str | Path) -> Path:
    """Make sure a pack can be written into `out_dir` (creating it), before training;
    `PackWriteError` naming the folder otherwise."""
    return atomic.check_writable(Path(out_dir), PackWriteError, HINT)


def write_pack(histories_by_experiment: Mapping[str, Mapping[str, Sequence[RunHistory]]],
               out_dir: str | Path, *, manifest_extra: Mapping[str, Any] | None = None,
               weights_kept: Mapping[str, Sequence[str]] = WEIGHTS_KEPT) -> Path:
    """Write a pack of `histories_by_experiment` (experiment -> group -> one history per seed)
    into `out_dir`; return the manifest's path.

    A run in several experiments (Fig. 2 and Fig. 3 share theirs) is stored once. Weights are
    kept only for the groups of `weights_kept`, at each run's last epoch. `manifest_extra` must
    hold `device` (`device.describe`) and `wall_seconds`, and may add more (smoke, protocol,
    ...); the date, the code version and the format are filled in.
    """
    missing = [k for k in ("device", "wall_seconds") if k not in (manifest_extra or {})]
    if missing:
        raise ValueError(f"write_pack needs manifest_extra to say {missing} (where and how long "
                         "the runs took).")
    out = Path(out_dir)
    runs, experiments = _rollup(histories_by_experiment)
    arrays: dict[str, np.ndarray] = {}
    for name, groups in weights_kept.items():
        for group in groups:
            for rid in experiments.get(name, {}).get(group, []):
                h = runs[rid]
                if not h.weights:
                    raise ValueError(f"{rid} kept no weights, but {name} needs its network.")
                epoch = max(h.weights)
                for param, w in h.weights[epoch].items():
                    arrays[f"{rid}/{epoch}/{param}"] = np.asarray(w, dtype=codec.WEIGHT_DTYPE)
    histories = {rid: codec.encode(h) for rid, h in runs.items()}
    temps: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        temps[HISTORIES] = atomic.write_tmp(out, ".json", lambda f: f.write(
            json.dumps(histories).encode()))
        temps[WEIGHTS] = atomic.write_tmp(out, ".npz", lambda f: np.savez_compressed(f, **arrays))
        manifest = {
            "format": FORMAT,
            "made_by": "psp-lite reproduce all",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(),
            **dict(manifest_extra or {}),
            "experiments": experiments,
            "runs": {rid: codec.config_to_json(h.config) for rid, h in runs.items()},
            "files": {name: sha256(tmp) for name, tmp in temps.items()},
        }
        temps[MANIFEST] = atomic.write_tmp(out, ".json", lambda f: f.write(
            json.dumps(manifest, indent=1).encode()))
        with atomic.locked(out, exclusive=True):  # readers never see files of two writes
            for name in (HISTORIES, WEIGHTS, MANIFEST):
                atomic.replace(temps.pop(name), out / name)
    except OSError as error:
        raise PackWriteError(out, error, HINT) from error
    finally:
        for tmp in temps.values():  # left only when a write failed
            tmp.unlink(missing_ok=True)
    atomic.remove_stale_tmp(out)
    return out / MANIFEST


def load_pack(path: str | Path | None = None) -> Pack | None:
    """The results pack in `path` (default: `default_path()`), or None when there is none there.

    Every file is checked; a damaged pack raises `PackError` naming the file and the problem.
    """
    folder = Path(path) if path is not None else default_path()
    if not (folder / MANIFEST).is_file():
        return None
    with atomic.locked(folder, exclusive=False):
        manifest, experiments = read_pack(folder)
    return Pack(folder, manifest, experiments)
