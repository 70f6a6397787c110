"""The store against hostile and concurrent use (issue 18): an archive whose headers claim huge
arrays is refused before anything is allocated; two writers of one results pack never leave, and
a reader never sees, a mix of their files."""

from __future__ import annotations

import json
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from psp_lite.data import load_dataset
from psp_lite.runners.cached import run
from psp_lite.store import cache
from psp_lite.store import packs as results
from psp_lite.store.archive import Archive, ArchiveError
from psp_lite.store.packs import PackError, load_pack, write_pack
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import train

SMALL = dict(dataset="synthetic-mnist", epochs=2, train_subset=200, test_subset=60, device="cpu",
             batch_size=50, test_batch_size=64)
#: What the hostile member claims: 2**25 float32 = 128 MiB, deflated to ~130 kB of zeros.
CLAIMED = 2**25
#: Reading a refused archive may allocate at most this (its headers, the JSON, a model's shape).
PEAK_LIMIT = 16 * 2**20


def write_npz(path: Path, arrays: dict[str, np.ndarray], hostile: str, claimed: int,
              data_bytes: int | None = None) -> None:
    """`arrays` as a normal .npz plus a member `hostile` whose header claims `claimed` float32
    values, followed by `data_bytes` zero bytes (default: as many as it claims)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
        with zf.open(f"{hostile}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (claimed,)})
            left = 4 * claimed if data_bytes is None else data_bytes
            block = bytes(1 << 20)
            while left > 0:
                f.write(block[:left])
                left -= len(block)


def peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_cache_entry_claiming_a_huge_array_is_refused_without_allocating_it(isolated_cache):
    config = RunConfig(**SMALL).resolved()
    run(config, progress=False)
    fp = load_dataset("synthetic-mnist", device="cpu", train_subset=200,
                      test_subset=60).fingerprint
    path = cache.path_for(config, fp)
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files if name != "w:2:fc2.weight"}
    write_npz(path, arrays, "w:2:fc2.weight", CLAIMED)
    assert path.stat().st_size < 2 * 2**20  # a small file ...
    got = []
    with pytest.warns(UserWarning, match=r"weight 'fc2.weight' of epoch 2 is float32 of shape"):
        peak = peak_while(lambda: got.append(cache.load(config, fp)))
    assert got == [None]
    assert peak < PEAK_LIMIT, f"refusing it allocated {peak / 2**20:.0f} MiB"  # ... no 128 MiB


def test_a_pack_whose_weights_claim_a_huge_array_is_refused_without_allocating_it(tmp_path):
    history = train(RunConfig(regularizer="l2", lam=1e-4, **SMALL), progress=False)
    write_pack({"fig3": {"l2": [history]}}, tmp_path, manifest_extra={"device": "cpu",
                                                                      "wall_seconds": 1.0})
    weights = tmp_path / results.WEIGHTS
    with np.load(weights, allow_pickle=False) as f:
        arrays = dict(f.items())
    hostile = sorted(arrays)[0]
    write_npz(weights, {k: v for k, v in arrays.items() if k != hostile}, hostile, CLAIMED)
    manifest = tmp_path / results.MANIFEST
    d = json.loads(manifest.read_text())
    d["files"][results.WEIGHTS] = results.sha256(weights)  # as a writer would sign it
    manifest.write_text(json.dumps(d))
    errors = []

    def load():
        try:
            load_pack(tmp_path)
        except PackError as error:
            errors.append(str(error))

    peak = peak_while(load)
    assert len(errors) == 1 and "needs float32" in errors[0] and f"({CLAIMED},)" in errors[0]
    assert peak < PEAK_LIMIT, f"refusing it allocated {peak / 2**20:.0f} MiB"


def test_a_member_whose_size_is_not_its_headers_is_refused_before_reading(tmp_path):
    path = tmp_path / "lying.npz"
    write_npz(path, {"ok": np.zeros(3, np.float32)}, "big", 10**12, data_bytes=64)
    with pytest.raises(ArchiveError, match="'big.npy' holds .* bytes, its header says"):
        Archive(path)
    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(3, dtype=np.float32))
    with Archive(good) as archive:
        assert archive.headers["a"].shape == (3,) and archive.read("a").tolist() == [0, 1, 2]


def test_two_writers_and_a_reader_never_see_a_mix(tmp_path):
    """Writer A writes fig2-only packs, writer B sweep-only packs, into one folder at once; a
    reader loads throughout. Every load is one writer's whole pack; the last one stands."""
    data_a = [train(RunConfig(regularizer=r, seed=s, **SMALL), progress=False)
              for r in ("none", "l2") for s in (0, 1)]
    data_b = [train(RunConfig(regularizer="psp", lam=1e-3, seed=s, **SMALL), progress=False)
              for s in (0, 1, 2)]
    packs = {"A": {"fig2": {"none": data_a[:2], "l2": data_a[2:]}},
             "B": {"sweep": {"psp λ=0.001": data_b}}}
    out = tmp_path / "pack"
    failures: list[str] = []
    seen: list[str] = []
    done = threading.Event()
    writes = 8

    def writer(tag: str) -> None:
        try:
            for _ in range(writes):
                write_pack(packs[tag], out, manifest_extra={"device": "cpu", "wall_seconds": 1.0,
                                                            "writer": tag})
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(f"writer {tag}: {error!r}")

    def reader() -> None:
        while not done.is_set():
            try:
                pack = load_pack(out)
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(f"reader: {error!r}")
                continue
            if pack is not None:
                tag = pack.manifest["writer"]
                if set(pack.experiments) != set(packs[tag]):
                    failures.append(f"reader: {tag}'s manifest with {set(pack.experiments)}")
                seen.append(tag)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "AB"]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert failures == []
    assert seen  # the reader did read packs while they were written
    final = load_pack(out)
    assert set(final.experiments) == set(packs[final.manifest["writer"]])
    assert not list(out.glob(".tmp-*"))  # every temp file renamed or removed
