"""The run cache: keyed by config, data fingerprint and code version; every loaded entry checked;
unwritable folders reported before training; leftovers of interrupted writes removed."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import time

import numpy as np
import pytest
import torch

import psp_lite.runners.cached as train_module
from psp_lite.data import TensorData, load_dataset
from psp_lite.runners.cached import run, run_many
from psp_lite.store import cache, codec
from psp_lite.training.config import RunConfig
from psp_lite.training.history import TrainingDiverged
from psp_lite.training.loop import train

SMALL = dict(dataset="synthetic-mnist", epochs=2, train_subset=200, test_subset=60, device="cpu",
             batch_size=50, test_batch_size=64, snapshot_epochs=(1,))


@pytest.fixture(autouse=True)
def _every_test_has_its_own_cache(isolated_cache):
    """Each test here runs with an empty run cache of its own (tests/conftest.py)."""


@pytest.fixture
def trained(monkeypatch):
    """Configs actually trained (not loaded) by `run`, in order."""
    calls: list[RunConfig] = []
    real = train_module.train

    def counting(config, *args, **kwargs):
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(train_module, "train", counting)
    return calls


def small_data(**overrides) -> TensorData:
    kw = {"train_subset": SMALL["train_subset"], "test_subset": SMALL["test_subset"], **overrides}
    return load_dataset("synthetic-mnist", device="cpu", **kw)


def rewrite_meta(path, change) -> None:
    """Rewrite the entry at `path` with `change(meta)` applied to its JSON (weights kept); the
    history's record is `meta["history"]`."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {name: f[name] for name in f.files if name != "meta"}
    change(meta)
    with open(path, "wb") as out:
        np.savez(out, meta=np.array(json.dumps(meta)), **arrays)


def test_fingerprint_names_the_data_its_sizes_and_its_labels():
    data = small_data()
    fp = data.fingerprint
    assert (fp["name"], fp["train"], fp["test"]) == ("synthetic-mnist", 200, 60)
    assert small_data().fingerprint == fp  # deterministic
    changed = dataclasses.replace(data, test_y=data.test_y.clone())
    changed.test_y[0] = (changed.test_y[0] + 1) % 10  # one label differs
    assert changed.fingerprint["labels"] != fp["labels"]
    assert small_data(train_subset=199).fingerprint["train"] == 199
    json.dumps(fp)  # usable in the key


def test_key_holds_the_data_fingerprint_and_the_training_version(monkeypatch):
    config = RunConfig(**SMALL).resolved()
    fp = small_data().fingerprint
    fashion_like = {**fp, "name": "fashion-mnist"}
    assert cache.key(config, fp) != cache.key(config, fashion_like)
    before = cache.key(config, fp)
    monkeypatch.setattr(cache, "TRAINING_VERSION", cache.TRAINING_VERSION + 1)
    assert cache.key(config, fp) != before


def test_a_run_is_reused_only_for_the_same_data(trained):
    config = RunConfig(**SMALL)
    first = run(config, progress=False)
    again = run(config, data=small_data(), progress=False)
    assert len(trained) == 1 and again.test_error == first.test_error
    other = dataclasses.replace(small_data(), test_y=small_data().test_y.roll(1))
    run(config, data=other, progress=False)  # same config, other labels: not the cached run
    assert len(trained) == 2


def test_data_of_another_dataset_is_refused_not_filed_under_the_config():
    cifar = load_dataset("synthetic-cifar10", device="cpu", train_subset=50, test_subset=20)
    with pytest.raises(ValueError, match="data is 'synthetic-cifar10' but the config says "
                                         "'synthetic-mnist'"):
        run(RunConfig(**SMALL), data=cifar, progress=False)


def test_data_of_other_sizes_than_the_config_is_refused():
    with pytest.raises(ValueError, match=r"data has 199 train images but the config asks for "
                                         r"200 \(train_subset=200\)"):
        run(RunConfig(**SMALL), data=small_data(train_subset=199), progress=False)
    full = load_dataset("synthetic-mnist", device="cpu")  # the stand-in's default 2000 / 500
    with pytest.raises(ValueError, match="data has 500 test images but the config asks for 60"):
        run(RunConfig(**{**SMALL, "train_subset": None}), data=full, progress=False)


def test_an_entry_from_older_training_code_is_not_reused(monkeypatch, trained):
    config = RunConfig(**SMALL)
    run(config, progress=False)
    monkeypatch.setattr(cache, "TRAINING_VERSION", cache.TRAINING_VERSION + 1)
    run(config, progress=False)
    assert len(trained) == 2


def test_corrupt_file_is_reported_and_recomputed(isolated_cache, trained):
    config = RunConfig(**SMALL).resolved()
    good = run(config, progress=False)
    path = cache.path_for(config, small_data().fingerprint)
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable.*recomputing"):
        again = run(config, progress=False)
    assert again.test_error == good.test_error and len(trained) == 2
    assert cache.load(config, small_data().fingerprint).test_error == good.test_error


def _set(field, value):
    return lambda meta: meta.__setitem__(field, value)


def _set_h(field, value):
    return lambda meta: meta["history"].__setitem__(field, value)


def _set_epoch(field, value, epoch=0):
    return lambda meta: meta["history"][field].__setitem__(epoch, value)


ILL_TYPED = {
    "test_error as text": _set_h("test_error", ["1.0", "2.0"]),
    "a missing epoch": lambda m: m["history"]["z2"].pop(),
    "a bool among numbers": _set_epoch("seconds", True),
    "z2_layers as a list": lambda m: m["history"].__setitem__(
        "z2_layers", list(m["history"]["z2_layers"].values())),
    "a layer with 3 epochs": lambda m: m["history"]["z2_layers"]["conv1"].append(1.0),
    "device as a number": _set_h("device", 7),
    "a missing field": lambda m: m["history"].pop("train_loss"),
    "an unknown field": _set_h("learning_rates", [0.1, 0.1]),
    "a NaN test error": _set_epoch("test_error", float("nan")),
    "an infinite test error": _set_epoch("test_error", float("inf")),
    "a -50 % test error": _set_epoch("test_error", -50.0),
    "a 250 % test error": _set_epoch("test_error", 250.0),
    "a NaN training loss": _set_epoch("train_loss", float("nan")),
    "a negative <z^2>": lambda m: m["history"]["z2_layers"]["conv1"].__setitem__(1, -1.0),
    "diverged_at past the end": _set_h("diverged_at", 9),
    "diverged_at as text": _set_h("diverged_at", "1"),
    "a config field missing": lambda m: m["config"].pop("seed"),
    "another training version": _set("training", -1),
    "other data": lambda m: m["data"].__setitem__("train", 1),
    "another config": lambda m: m["config"].__setitem__("seed", 5),
    "metadata not an object": None,
}


@pytest.mark.parametrize("what", list(ILL_TYPED))
def test_ill_typed_entry_is_corrupt_warned_and_recomputed(what, trained):
    config = RunConfig(**SMALL).resolved()
    good = run(config, progress=False)
    path = cache.path_for(config, small_data().fingerprint)
    change = ILL_TYPED[what]
    if change is None:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files if name != "meta"}
        with open(path, "wb") as out:
            np.savez(out, meta=np.array(json.dumps([1, 2])), **arrays)
    else:
        rewrite_meta(path, change)
    with pytest.warns(UserWarning, match=f"{path.name}.*ill-formed"):
        assert cache.load(config, small_data().fingerprint) is None
    with pytest.warns(UserWarning):
        again = run(config, progress=False)
    assert len(trained) == 2 and again.test_error == good.test_error
    assert again.z2_layers == good.z2_layers


@pytest.mark.parametrize("damage", ["drop epoch 1", "2-D array", "integer array",
                                    "a value short", "a parameter missing", "NaN weights",
                                    "an unknown array"])
def test_entry_with_damaged_weights_is_corrupt(damage, isolated_cache):
    config = RunConfig(**SMALL).resolved()
    run(config, progress=False)
    path = cache.path_for(config, small_data().fingerprint)
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    name = "w:1:fc2.weight"
    if damage == "drop epoch 1":
        arrays = {k: v for k, v in arrays.items() if not k.startswith("w:1:")}
    elif damage == "2-D array":
        arrays[name] = arrays[name].reshape(10, -1)
    elif damage == "integer array":
        arrays[name] = arrays[name].astype(np.int32)
    elif damage == "a value short":
        arrays[name] = arrays[name][:-1]
    elif damage == "a parameter missing":
        del arrays[name]
    elif damage == "NaN weights":
        arrays[name] = np.full_like(arrays[name], np.nan)
    else:
        arrays["w:1:extra.weight"] = np.zeros(3, np.float32)
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    with pytest.warns(UserWarning, match="ill-formed"):
        assert cache.load(config, small_data().fingerprint) is None


def test_loaded_history_equals_the_trained_one_field_by_field():
    config = RunConfig(**SMALL).resolved()
    data = small_data()
    history = train(config, data, progress=False)
    cache.save(history, data.fingerprint)
    loaded = cache.load(config, data.fingerprint)
    for name in codec.RECORD_FIELDS:
        assert getattr(loaded, name) == getattr(history, name), name
    assert sorted(loaded.weights) == [1, 2]
    for epoch, ws in history.weights.items():
        assert list(loaded.weights[epoch]) == list(ws)
        for pname, w in ws.items():
            np.testing.assert_array_equal(loaded.weights[epoch][pname], w)


def test_interrupted_cache_write_leaves_no_entry(isolated_cache, monkeypatch):
    data = small_data()
    history = train(RunConfig(**SMALL), data, progress=False)

    def broken_savez(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        cache.save(history, data.fingerprint)
    assert list(isolated_cache.iterdir()) == []


def test_stale_tmp_files_are_removed_and_fresh_ones_kept(isolated_cache):
    isolated_cache.mkdir(parents=True)
    stale = isolated_cache / ".tmp-abc123.npz"
    fresh = isolated_cache / ".tmp-def456.npz"
    other = isolated_cache / "keep-me.txt"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - 2 * cache.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    run(RunConfig(**SMALL), progress=False)
    assert not stale.exists()
    assert fresh.exists() and other.exists()  # another process may be writing `fresh`


def test_unwritable_cache_is_reported_before_training(tmp_path, monkeypatch, trained):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PSP_LITE_CACHE", str(blocker / "cache"))
    with pytest.raises(cache.CacheNotWritableError,
                       match=r"a-file/cache is not writable.*\$PSP_LITE_CACHE"):
        run(RunConfig(**SMALL), progress=False)
    assert trained == []
    history = run(RunConfig(**SMALL), use_cache=False, progress=False)  # the way out it names
    assert len(history.test_error) == 2


def test_a_failed_save_after_training_warns_and_keeps_the_history(isolated_cache, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "save", disk_full)
    with pytest.warns(UserWarning, match=f"could not save.*{isolated_cache}.*PSP_LITE_CACHE"):
        history = run(RunConfig(**SMALL), progress=False)
    expected = train(RunConfig(**SMALL), small_data(), progress=False)
    assert history.test_error == expected.test_error and history.z2 == expected.z2


def test_numpy_scalars_give_the_same_key_as_plain_numbers():
    fp = small_data().fingerprint
    plain = RunConfig(**{**SMALL, "regularizer": "psp", "lam": 1e-3, "epochs": 2}).resolved()
    numpy = RunConfig(**{**SMALL, "regularizer": "psp", "lam": np.float64(1e-3),
                         "epochs": np.int64(2), "lr": np.float64(0.1),
                         "train_subset": np.int32(200)}).resolved()
    assert cache.key(numpy, fp) == cache.key(plain, fp)
    assert type(numpy.lam) is float and type(numpy.epochs) is int
    assert type(numpy.train_subset) is int and type(numpy.lr) is float


def test_torch_scalar_lambda_is_a_plain_float():
    config = RunConfig(**{**SMALL, "regularizer": "psp", "lam": torch.tensor(1e-3)})
    assert type(config.lam) is float and config.lam == pytest.approx(1e-3)


def test_a_diverged_run_is_cached_and_raises_again_without_retraining(isolated_cache, trained):
    config = RunConfig(**{**SMALL, "regularizer": "psp", "lam": 1e3, "lr": 10.0})
    with pytest.raises(TrainingDiverged, match=r"epoch 1.*smaller lambda") as first:
        run(config, progress=False)
    assert first.value.history.diverged_at == 1 and len(list(isolated_cache.glob("*.npz"))) == 1
    with pytest.raises(TrainingDiverged, match="epoch 1") as again:
        run(config, progress=False)
    assert len(trained) == 1  # the cached diverged history, not a second training
    assert again.value.history.test_error == first.value.history.test_error == []
    sent = pickle.loads(pickle.dumps(first.value))  # as from a worker process: history kept
    assert isinstance(sent, TrainingDiverged) and str(sent) == str(first.value)
    assert sent.history.diverged_at == 1 and sent.history.config == first.value.history.config


def test_run_many_reports_each_run_as_it_is_ready_cached_or_trained(isolated_cache, trained):
    configs = [RunConfig(**{**SMALL, "seed": seed}) for seed in (0, 1)]
    run(configs[1], progress=False)  # seed 1 cached, seed 0 not
    seen = []
    histories = run_many(configs, progress=False, on_result=lambda i, h: seen.append((i, h)))
    assert [i for i, _ in seen] == [1, 0]  # the cached one first
    assert all(h is histories[i] for i, h in seen)
    assert [c.seed for c in trained] == [1, 0]


def test_a_bug_while_reading_an_entry_propagates_instead_of_a_silent_retrain(monkeypatch):
    config = RunConfig(**SMALL).resolved()
    run(config, progress=False)

    def buggy(*args, **kwargs):
        raise KeyError("a bug in psp_lite")

    monkeypatch.setattr(codec, "decode", buggy)
    with pytest.raises(KeyError, match="a bug in psp_lite"):
        cache.load(config, small_data().fingerprint)


def test_a_failed_write_is_a_cache_write_error_naming_the_entry(isolated_cache, monkeypatch):
    data = small_data()
    history = train(RunConfig(**SMALL), data, progress=False)

    def disk_full_midway(f, **arrays):
        f.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", disk_full_midway)
    with pytest.raises(cache.CacheWriteError) as info:
        cache.save(history, data.fingerprint)
    path = cache.path_for(history.config, data.fingerprint)
    assert isinstance(info.value, OSError) and info.value.errno == 28
    assert info.value.path == path and str(path) in str(info.value)
    assert "No space left" in str(info.value) and "\n" not in str(info.value)
    assert list(isolated_cache.iterdir()) == []  # no entry, no .tmp-* left behind
