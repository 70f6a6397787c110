"""Results packs: full-length histories made once (`psp-lite reproduce all`, on a GPU) and
loaded by the notebooks, so a class sees the authors' protocol at once beside its own short run.

A pack is a folder of three files, none of them pickled:

* `manifest.json`: the pack format, the code version, the device, the date, the wall time, every
  run's config, and each experiment's runs grouped as `experiments.compare` returns them
  (group, e.g. a regularizer -> one run id per seed); plus whatever the writer adds (smoke mode,
  stand-in data);
* `histories.json`: per run, its per-epoch numbers (test error, losses, <z^2>, per layer too);
* `weights.npz`: float32 weights only where a figure uses them (`WEIGHTS_KEPT`: Fig. 3's l2 and
  PSP networks at their last epoch), read with `allow_pickle=False`.

`load_pack()` looks in `$PSP_LITE_RESULTS`, else the repository's `results/` folder, and returns
None when there is no pack; a damaged pack raises `PackError` naming the file and the problem.
What the notebooks show of a pack (its provenance line, tables, figures) is in
`psp_lite.report.pack_views`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import numbers
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psp_lite.training.config import RunConfig
from psp_lite.training.history import Groups, RunHistory

#: Layout of a pack; bump when the files change.
FORMAT = 1
MANIFEST, HISTORIES, WEIGHTS = "manifest.json", "histories.json", "weights.npz"
#: Experiment -> groups whose networks are kept, at each run's last epoch (Fig. 3's histograms).
WEIGHTS_KEPT: dict[str, tuple[str, ...]] = {"fig3": ("l2", "psp")}
#: RunHistory's per-epoch number lists, stored in histories.json.
PER_EPOCH = ("train_loss", "test_loss", "test_error", "z2", "seconds")



class PackError(ValueError):
    """A results pack that cannot be read: names the file and what is wrong with it."""


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
        return bool(self.manifest.get("smoke"))


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


def run_id(config: RunConfig) -> str:
    """A readable, stable id of a run: dataset, regularizer, lambda, seed and a config hash."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{config.dataset}-{config.regularizer}-{config.lam:g}-s{config.seed}-{digest}"


def _history_json(h: RunHistory) -> dict[str, Any]:
    return {**{name: list(getattr(h, name)) for name in PER_EPOCH},
            "z2_layers": {k: list(v) for k, v in h.z2_layers.items()},
            "device": h.device, "data_note": h.data_note, "diverged_at": h.diverged_at}


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with tmp.open("wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    out.mkdir(parents=True, exist_ok=True)
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
    arrays: dict[str, np.ndarray] = {}
    for name, groups in weights_kept.items():
        for group in groups:
            for rid in experiments.get(name, {}).get(group, []):
                h = runs[rid]
                if not h.weights:
                    raise ValueError(f"{rid} kept no weights, but {name} needs its network.")
                epoch = max(h.weights)
                for param, w in h.weights[epoch].items():
                    arrays[f"{rid}/{epoch}/{param}"] = np.asarray(w, dtype=np.float32)
    manifest = {
        "format": FORMAT,
        "made_by": "psp-lite reproduce all",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        **dict(manifest_extra or {}),
        "experiments": experiments,
        "runs": {rid: h.config.to_dict() for rid, h in runs.items()},
    }
    histories = {rid: _history_json(h) for rid, h in runs.items()}
    _atomic_write(out / HISTORIES, lambda f: f.write(json.dumps(histories).encode()))
    _atomic_write(out / WEIGHTS, lambda f: np.savez_compressed(f, **arrays))
    _atomic_write(out / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    return out / MANIFEST


# ----------------------------------------------------------------------------- loading


def _fail(path: Path, what: str) -> PackError:
    return PackError(f"results pack {path.parent}: {path.name}: {what}; remake the pack with "
                     "`psp-lite reproduce all --out DIR`, or remove it.")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise _fail(path, "the file is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(path, f"not readable as JSON ({error})") from None


def _numbers(path: Path, where: str, values: Any, n: int) -> list[float]:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise _fail(path, f"{where} should hold {n} numbers (one per epoch), got {got}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise _fail(path, f"{where} holds a value that is not a number")
    return [float(v) for v in values]


def _config(path: Path, rid: str, d: Any) -> RunConfig:
    if not isinstance(d, dict):
        raise _fail(path, f"the config of run {rid} is not a JSON object")
    try:
        return RunConfig.from_dict(d)
    except (TypeError, ValueError) as error:
        raise _fail(path, f"the config of run {rid} is not valid ({error})") from None


def _history(path: Path, rid: str, config: RunConfig, d: Any) -> RunHistory:
    if not isinstance(d, dict):
        raise _fail(path, f"run {rid} is missing or not a JSON object")
    diverged = d.get("diverged_at")
    if diverged is not None and not (isinstance(diverged, int) and 1 <= diverged <= config.epochs):
        raise _fail(path, f"run {rid}: diverged_at should be null or an epoch, got {diverged!r}")
    errors = d.get("test_error")
    n = len(errors) if isinstance(errors, list) else -1
    expected = config.epochs if diverged is None else diverged - 1
    if n != expected:
        raise _fail(path, f"run {rid}: test_error should hold {expected} numbers (its epochs"
                    f"{'' if diverged is None else ' before it diverged'}), got "
                    f"{n if n >= 0 else type(errors).__name__}")
    values = {name: _numbers(path, f"run {rid}: {name}", d.get(name), n) for name in PER_EPOCH}
    layers = d.get("z2_layers")
    if not isinstance(layers, dict) or (n and not layers):
        raise _fail(path, f"run {rid}: z2_layers should map layer names to per-epoch numbers")
    values["z2_layers"] = {str(k): _numbers(path, f"run {rid}: z2_layers[{k!r}]", v, n)
                           for k, v in layers.items()}
    for name in ("device", "data_note"):
        if not isinstance(d.get(name), str):
            raise _fail(path, f"run {rid}: {name} should be text")
        values[name] = d[name]
    return RunHistory(config=config, diverged_at=diverged, **values)


def _weights(path: Path, runs: Mapping[str, RunHistory]) -> None:
    """Attach the stored weights to their runs (a KeyError-free check of every name)."""
    if not path.is_file():
        raise _fail(path, "the file is missing")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as error:  # noqa: BLE001 - any unreadable archive is a damaged pack
        raise _fail(path, f"not a readable .npz archive ({error})") from None
    for name, array in arrays.items():
        parts = name.split("/", 2)
        if len(parts) != 3 or parts[0] not in runs or not parts[1].isdigit():
            raise _fail(path, f"array {name!r} does not name a run of the pack, an epoch and a "
                        "parameter")
        h = runs[parts[0]]
        epoch = int(parts[1])
        if not 1 <= epoch <= len(h.test_error) or array.ndim != 1 or array.dtype.kind != "f":
            raise _fail(path, f"array {name!r} is ill-formed ({array.dtype}, {array.ndim}-D, "
                        f"epoch {epoch} of {len(h.test_error)})")
        h.weights.setdefault(epoch, {})[parts[2]] = array


def load_pack(path: str | Path | None = None) -> Pack | None:
    """The results pack in `path` (default: `default_path()`), or None when there is none there.

    Every file is checked; a damaged pack raises `PackError` naming the file and the problem.
    """
    folder = Path(path) if path is not None else default_path()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise _fail(manifest_path, "not a JSON object")
    if manifest.get("format") != FORMAT:
        raise _fail(manifest_path, f"pack format {manifest.get('format')!r}, this psp_lite "
                    f"reads format {FORMAT}")
    for name, kind in (("date", str), ("device", str), ("wall_seconds", numbers.Real),
                       ("code_version", dict), ("experiments", dict), ("runs", dict)):
        if not isinstance(manifest.get(name), kind):
            raise _fail(manifest_path, f"the field {name!r} is missing or not a "
                        f"{'number' if kind is numbers.Real else kind.__name__}")
    configs = {rid: _config(manifest_path, rid, d) for rid, d in manifest["runs"].items()}
    histories_path = folder / HISTORIES
    stored = _read_json(histories_path)
    if not isinstance(stored, dict):
        raise _fail(histories_path, "not a JSON object")
    runs = {rid: _history(histories_path, rid, c, stored.get(rid)) for rid, c in configs.items()}
    experiments: dict[str, Groups] = {}
    for name, groups in manifest["experiments"].items():
        if not isinstance(groups, dict) or not groups:
            raise _fail(manifest_path, f"experiment {name!r} should map groups to run ids")
        experiments[name] = {}
        for group, ids in groups.items():
            if not isinstance(ids, list) or not ids or any(i not in runs for i in ids):
                raise _fail(manifest_path, f"experiment {name!r}, group {group!r}: its run ids "
                            "are not all runs of the pack")
            experiments[name][group] = [runs[i] for i in ids]
    _weights(folder / WEIGHTS, runs)
    for name, groups in WEIGHTS_KEPT.items():
        for group in groups:
            for h in experiments.get(name, {}).get(group, []):
                if not h.weights:
                    raise _fail(folder / WEIGHTS, f"{name} needs the weights of "
                                f"{run_id(h.config)}, which are not there")
    return Pack(folder, manifest, experiments)
