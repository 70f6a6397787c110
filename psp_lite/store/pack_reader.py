"""Reading a results pack without trusting it (issue 18: damaged numbers, `"experiments": {}`,
`"smoke": "false"` and files of two writes all loaded, then broke the notebooks' views).

`read_pack` checks, in order: the manifest's format and field types; the other two files'
SHA-256 against the manifest's (files of one write); every run's config (and that its id is that
config's); every history's values (`codec.decode`); the experiments' groups; the weight arrays'
headers against each run's model before any array is read (`psp_lite.store.archive`), then their
values. Any problem is a one-line `PackError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psp_lite.store.codec as codec
from psp_lite.store.archive import Archive, ArchiveError, Header
from psp_lite.training.config import RunConfig
from psp_lite.training.history import Groups, RunHistory

#: Layout of a pack; bump when the files change.
#: 2: one codec with the cache (`psp_lite.store.codec`), checksums of the data files.
FORMAT = 2
MANIFEST, HISTORIES, WEIGHTS = "manifest.json", "histories.json", "weights.npz"
#: Experiment -> groups whose networks are kept, at each run's last epoch (Fig. 3's histograms).
WEIGHTS_KEPT: dict[str, tuple[str, ...]] = {"fig3": ("l2", "psp")}
#: A pack's JSON files are at most this big (the full plan's histories take ~3 MB).
MAX_JSON_BYTES = 64 * 2**20
#: Manifest fields: required ones, then optional ones (checked when present).
REQUIRED = {"date": str, "device": str, "wall_seconds": numbers.Real, "code_version": dict,
            "experiments": dict, "runs": dict, "files": dict}
OPTIONAL = {"smoke": bool, "protocol": str, "made_by": str, "data_notes": list,
            "stand_ins": dict}


class PackError(ValueError):
    """A results pack that cannot be read: names the file and what is wrong with it."""


def run_id(config: RunConfig) -> str:
    """A readable, stable id of a run: dataset, regularizer, lambda, seed and a config hash."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{config.dataset}-{config.regularizer}-{config.lam:g}-s{config.seed}-{digest}"


def fail(path: Path, what: str) -> PackError:
    return PackError(f"results pack {path.parent}: {path.name}: {what}; remake the pack with "
                     "`psp-lite reproduce all --out DIR`, or remove it.")


def _bytes(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    try:
        if not path.is_file():
            raise fail(path, "the file is missing")
        if path.stat().st_size > limit:
            raise fail(path, f"{path.stat().st_size} bytes, more than a pack holds ({limit})")
        return path.read_bytes()
    except OSError as error:
        raise fail(path, f"not readable ({error})") from None


def _json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise fail(path, f"not readable as JSON ({error})") from None


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return sha256(path)
    except OSError as error:
        raise fail(path, f"not readable ({error})") from None


def _check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise fail(path, "not a JSON object")
    if manifest.get("format") != FORMAT:
        raise fail(path, f"pack format {manifest.get('format')!r}, this psp_lite reads format "
                   f"{FORMAT}")
    for fields, required in ((REQUIRED, True), (OPTIONAL, False)):
        for name, kind in fields.items():
            if name not in manifest and not required:
                continue
            value = manifest.get(name)
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                what = "number" if kind is numbers.Real else kind.__name__
                raise fail(path, f"the field {name!r} is missing or not a {what} (got "
                           f"{value!r:.40})")
    if not (math.isfinite(manifest["wall_seconds"]) and manifest["wall_seconds"] >= 0):
        raise fail(path, f"wall_seconds is {manifest['wall_seconds']!r}")
    if not all(isinstance(n, str) for n in manifest.get("data_notes", [])):
        raise fail(path, "data_notes should be a list of text")
    if not manifest["experiments"]:
        raise fail(path, "it holds no experiments")
    if not all(isinstance(manifest["files"].get(n), str) for n in (HISTORIES, WEIGHTS)):
        raise fail(path, f"'files' should give the SHA-256 of {HISTORIES} and {WEIGHTS}")
    return manifest


def _configs(path: Path, runs: Mapping[str, Any]) -> dict[str, RunConfig]:
    configs = {}
    for rid, d in runs.items():
        try:
            configs[rid] = codec.config_from_json(d)
        except codec.InvalidRecord as error:
            raise fail(path, f"run {rid}: {error}") from None
        if run_id(configs[rid]) != rid:
            raise fail(path, f"run {rid}: its id is not its config's ({run_id(configs[rid])})")
    return configs


def _experiments(path: Path, experiments: Mapping[str, Any],
                 runs: Mapping[str, RunHistory]) -> dict[str, Groups]:
    out: dict[str, Groups] = {}
    for name, groups in experiments.items():
        if not isinstance(groups, dict) or not groups:
            raise fail(path, f"experiment {name!r} should map groups to run ids")
        out[name] = {}
        for group, ids in groups.items():
            if not isinstance(ids, list) or not ids or any(i not in runs for i in ids):
                raise fail(path, f"experiment {name!r}, group {group!r}: its run ids are not "
                           "all runs of the pack")
            out[name][group] = [runs[i] for i in ids]
    return out


def _weights(path: Path, runs: Mapping[str, RunHistory]) -> None:
    """Attach the stored weights to their runs, every header checked before any array is read."""
    try:
        with Archive(path) as archive:
            found: dict[str, dict[tuple[int, str], Header]] = {}
            for name, header in archive.headers.items():
                parts = name.split("/", 2)
                if len(parts) != 3 or parts[0] not in runs or not parts[1].isdigit():
                    raise fail(path, f"array {name!r} does not name a run of the pack, an epoch "
                               "and a parameter")
                found.setdefault(parts[0], {})[(int(parts[1]), parts[2])] = header
            for rid, headers in found.items():
                h = runs[rid]
                epochs = codec.snapshot_epochs_run(h.config, len(h.test_error))
                try:
                    codec.check_weight_headers(headers, h.config, epochs, every_epoch=False)
                except codec.InvalidRecord as error:
                    raise fail(path, f"run {rid}: {error}") from None
            for rid, headers in found.items():
                for epoch, param in headers:
                    array = archive.read(f"{rid}/{epoch}/{param}")
                    try:
                        codec.check_weight_values(param, array)
                    except codec.InvalidRecord as error:
                        raise fail(path, f"run {rid}: {error}") from None
                    runs[rid].weights.setdefault(epoch, {})[param] = array
    except ArchiveError as error:
        raise fail(path, str(error)) from None
    except OSError as error:
        raise fail(path, f"not readable ({error})") from None


def read_pack(folder: Path) -> tuple[dict[str, Any], dict[str, Groups]]:
    """The checked manifest and experiments (group -> histories) of the pack in `folder`."""
    manifest_path, histories_path, weights_path = (folder / n for n in (MANIFEST, HISTORIES,
                                                                          WEIGHTS))
    manifest = _check_manifest(manifest_path, _json(manifest_path, _bytes(manifest_path)))
    data = _bytes(histories_path)
    if not weights_path.is_file():
        raise fail(weights_path, "the file is missing")
    for p, digest in ((histories_path, hashlib.sha256(data).hexdigest()),
                      (weights_path, _file_digest(weights_path))):
        if digest != manifest["files"][p.name]:
            raise fail(p, "its checksum is not the manifest's: the files come from different "
                       "writes, or this one is damaged")
    configs = _configs(manifest_path, manifest["runs"])
    stored = _json(histories_path, data)
    if not isinstance(stored, dict):
        raise fail(histories_path, "not a JSON object")
    if set(stored) != set(configs):
        raise fail(histories_path, f"it holds {len(stored)} runs, the manifest {len(configs)}")
    runs = {}
    for rid, config in configs.items():
        try:
            runs[rid] = codec.decode(stored[rid], config)
        except codec.InvalidRecord as error:
            raise fail(histories_path, f"run {rid}: {error}") from None
    experiments = _experiments(manifest_path, manifest["experiments"], runs)
    _weights(weights_path, runs)
    for name, groups in WEIGHTS_KEPT.items():
        for group in groups:
            for h in experiments.get(name, {}).get(group, []):
                if not h.weights:
                    raise fail(weights_path, f"{name} needs the weights of {run_id(h.config)}, "
                               "which are not there")
    return manifest, experiments
