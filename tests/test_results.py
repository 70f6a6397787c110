"""Results packs: written and loaded exactly, damaged ones refused naming the file; `psp-lite
reproduce all` writes a loadable pack; notebook 04 shows a pack's curves, labelled."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import psp_lite
import psp_lite.cli
import psp_lite.cli.commands
import psp_lite.runners.cached
from psp_lite.cli import main
from psp_lite.data import load_dataset
from psp_lite.report import figures as plots
from psp_lite.report import pack_views as pack_views
from psp_lite.store import atomic, codec
from psp_lite.store import packs as results
from psp_lite.store.packs import PackError, load_pack, write_pack
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import train

ROOT = Path(__file__).resolve().parent.parent
PER_EPOCH = [name for name, kind in codec.KINDS.items() if kind == "per-epoch"]
TINY = dict(dataset="synthetic-mnist", epochs=2, train_subset=200, test_subset=100, device="cpu")
LAMS = {"none": 0.0, "l2": 1e-4, "psp": 1e-3}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PSP_LITE_RESULTS", raising=False)


@pytest.fixture(scope="module")
def histories():
    """Tiny runs as an experiment set: fig2 (3 regimes x 2 seeds), fig3 (its l2 and PSP runs),
    and a sweep of two lambdas, one of which diverged after its first epoch."""
    data = load_dataset("synthetic-mnist", train_subset=200, test_subset=100)
    fig2 = {r: [train(RunConfig(regularizer=r, lam=lam, seed=s, **TINY), data, progress=False)
                for s in (0, 1)] for r, lam in LAMS.items()}
    blown = train(RunConfig(regularizer="psp", lam=1e-1, **TINY), data, progress=False)
    blown = dataclasses.replace(blown, diverged_at=2, weights={}, **{
        name: getattr(blown, name)[:1] for name in PER_EPOCH},
        z2_layers={k: v[:1] for k, v in blown.z2_layers.items()})
    sweep = {"none": fig2["none"][:1], "psp λ=0.001": fig2["psp"][:1], "psp λ=0.1": [blown]}
    return {"fig2": fig2, "fig3": {r: fig2[r] for r in ("l2", "psp")}, "sweep": sweep}


@pytest.fixture
def pack_dir(tmp_path, histories) -> Path:
    write_pack(histories, tmp_path / "pack", manifest_extra={"device": "cpu (test)",
                                                             "wall_seconds": 12.5, "smoke": True})
    return tmp_path / "pack"


def test_every_number_of_a_written_pack_loads_back_exactly(pack_dir, histories):
    pack = load_pack(pack_dir)
    assert set(pack.experiments) == {"fig2", "fig3", "sweep"}
    for name, groups in histories.items():
        assert list(pack.results(name)) == list(groups)
        for group, originals in groups.items():
            loaded = pack.results(name)[group]
            assert len(loaded) == len(originals)
            for h, o in zip(loaded, originals, strict=True):
                assert h.config == o.config
                for field in codec.RECORD_FIELDS:
                    assert getattr(h, field) == getattr(o, field), (name, group, field)
    # weights: Fig. 3's networks at their last epoch, bit for bit; nothing else
    for reg in ("l2", "psp"):
        for h, o in zip(pack.results("fig3")[reg], histories["fig3"][reg], strict=True):
            assert list(h.weights) == [2]
            assert h.weights[2].keys() == o.weights[2].keys()
            for param, w in o.weights[2].items():
                assert h.weights[2][param].dtype == np.float32
                assert np.array_equal(h.weights[2][param], w)
        assert pack.results("fig2")[reg][0] is pack.results("fig3")[reg][0]  # stored once
    assert all(not h.weights for h in pack.results("fig2")["none"])
    with np.load(pack_dir / "weights.npz") as f:
        assert len(f.files) == 4 * len(histories["fig3"]["l2"][0].weights[2])
    # the plots take a pack's groups as they take experiments.compare's results
    assert (plots.weight_spread(pack.results("fig3"))
            == plots.weight_spread(histories["fig3"]))
    plots.test_error_curves(pack.results("fig2"))


def test_the_manifest_says_what_how_and_where(pack_dir, histories):
    manifest = load_pack(pack_dir).manifest
    assert manifest["format"] == results.FORMAT
    assert (manifest["device"], manifest["wall_seconds"], manifest["smoke"]) == (
        "cpu (test)", 12.5, True)
    made = dt.datetime.fromisoformat(manifest["date"])
    assert abs((dt.datetime.now(dt.timezone.utc) - made).total_seconds()) < 600
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True, cwd=ROOT)
    assert manifest["code_version"] == {
        "psp_lite": psp_lite.__version__,
        "git": git.stdout.strip() if git.returncode == 0 else "unknown"}
    runs = {h.config for groups in histories.values() for hs in groups.values() for h in hs}
    assert len(manifest["runs"]) == len(runs) == 7
    assert sorted(map(json.dumps, manifest["runs"].values())) == sorted(
        json.dumps(c.to_dict()) for c in runs)


def test_code_version_is_unknown_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert results.code_version() == {"psp_lite": psp_lite.__version__, "git": "unknown"}


def test_no_pack_is_none_and_the_default_place_is_results_or_the_environment(tmp_path,
                                                                             monkeypatch):
    assert load_pack(tmp_path / "nowhere") is None
    assert load_pack(tmp_path) is None  # a folder without a manifest
    assert results.default_path() == ROOT / "results"
    monkeypatch.setenv("PSP_LITE_RESULTS", str(tmp_path / "elsewhere"))
    assert results.default_path() == tmp_path / "elsewhere"
    assert load_pack() is None
    line = pack_views.describe_pack(None, "fig2")
    assert line.startswith(f"No results pack found in {tmp_path / 'elsewhere'}")
    assert "psp-lite reproduce all --out results" in line


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _first_run(d: dict) -> dict:
    return d[sorted(d)[0]]


def _resign(pack_dir: Path) -> None:
    """Record the data files' current checksums in the manifest, as a writer would: the damage
    then reaches the check it is meant for, not the checksum's."""
    files = {name: results.sha256(pack_dir / name) for name in (results.HISTORIES, results.WEIGHTS)
             if (pack_dir / name).exists()}
    _edit_json(pack_dir / results.MANIFEST, lambda d: d["files"].update(files))


def _rewrite_weights(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    change(arrays)
    np.savez_compressed(path, **arrays)


def _a_weight(arrays: dict) -> str:
    return sorted(arrays)[0]


def _run_edit(field, index, value):
    return lambda p: _edit_json(p, lambda d: _first_run(d)[field].__setitem__(index, value))


DAMAGES = {
    "histories not JSON": ("histories.json", lambda p: p.write_text("{oops"),
                           "not readable as JSON"),
    "an epoch missing": ("histories.json",
                         lambda p: _edit_json(p, lambda d: _first_run(d)["z2"].pop()),
                         "z2 should hold 2 numbers (one per epoch run), got 1 values"),
    "text in a curve": ("histories.json", _run_edit("test_loss", 0, "x"), "not a number"),
    "a NaN test error": ("histories.json", _run_edit("test_error", 0, float("nan")),
                         "test_error holds nan, outside [0, 100]"),
    "a 250 % test error": ("histories.json", _run_edit("test_error", 1, 250.0),
                           "test_error holds 250.0, outside [0, 100]"),
    "a -50 % test error": ("histories.json", _run_edit("test_error", 1, -50.0), "outside [0, 100]"),
    "an infinite loss": ("histories.json", _run_edit("test_loss", 1, float("inf")), "test_loss"),
    "a NaN training loss": ("histories.json", _run_edit("train_loss", 0, float("nan")),
                            "train_loss holds nan"),
    "a run dropped": ("histories.json", lambda p: _edit_json(p, lambda d: d.pop(sorted(d)[0])),
                      "it holds 6 runs, the manifest 7"),
    "no device": ("manifest.json", lambda p: _edit_json(p, lambda d: d.pop("device")),
                  "the field 'device' is missing"),
    "newer format": ("manifest.json", lambda p: _edit_json(p, lambda d: d.update(format=99)),
                     "pack format 99, this psp_lite reads format 2"),
    "no experiments": ("manifest.json", lambda p: _edit_json(p, lambda d: d.update(
        experiments={})), "it holds no experiments"),
    "smoke as text": ("manifest.json", lambda p: _edit_json(p, lambda d: d.update(smoke="false")),
                      "the field 'smoke' is missing or not a bool"),
    "NaN wall time": ("manifest.json", lambda p: _edit_json(
        p, lambda d: d.update(wall_seconds=float("nan"))), "wall_seconds is nan"),
    "unknown run": ("manifest.json", lambda p: _edit_json(
        p, lambda d: d["experiments"]["fig2"]["psp"].append("ghost")),
        "experiment 'fig2', group 'psp': its run ids are not all runs of the pack"),
    "bad config": ("manifest.json", lambda p: _edit_json(
        p, lambda d: _first_run(d["runs"]).update(epochs=-3)), "is not valid (epochs"),
    "a config not its id's": ("manifest.json", lambda p: _edit_json(
        p, lambda d: _first_run(d["runs"]).update(seed=7)), "its id is not its config's"),
    "weights gone": ("weights.npz", lambda p: p.unlink(), "the file is missing"),
    "weights truncated": ("weights.npz", lambda p: p.write_bytes(p.read_bytes()[:1000]),
                          "not a readable .npz archive"),
    "a weight array short": ("weights.npz", lambda p: _rewrite_weights(
        p, lambda a: a.__setitem__(_a_weight(a), a[_a_weight(a)][:-1])),
        "needs float32"),
    "a weight array missing": ("weights.npz", lambda p: _rewrite_weights(
        p, lambda a: a.pop(_a_weight(a))), "the weights of epoch 2 miss"),
    "weights as float64": ("weights.npz", lambda p: _rewrite_weights(
        p, lambda a: a.__setitem__(_a_weight(a), a[_a_weight(a)].astype(np.float64))),
        "float64"),
    "NaN weights": ("weights.npz", lambda p: _rewrite_weights(
        p, lambda a: a.__setitem__(_a_weight(a), np.full_like(a[_a_weight(a)], np.nan))),
        "holds NaN or inf"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_pack_is_refused_naming_the_file_and_the_problem(pack_dir, damage):
    filename, spoil, problem = DAMAGES[damage]
    spoil(pack_dir / filename)
    _resign(pack_dir)
    with pytest.raises(PackError) as info:
        load_pack(pack_dir)
    message = str(info.value)
    assert message.startswith(f"results pack {pack_dir}: {filename}: ")
    assert problem in message
    assert "psp-lite reproduce all" in message and "\n" not in message


@pytest.mark.parametrize("filename", ["histories.json", "weights.npz"])
def test_files_of_another_write_are_refused_by_their_checksum(pack_dir, filename, tmp_path,
                                                             histories):
    other = tmp_path / "other"
    write_pack({"fig2": histories["fig2"]}, other,
               manifest_extra={"device": "cpu (test)", "wall_seconds": 1.0})
    (pack_dir / filename).write_bytes((other / filename).read_bytes())
    with pytest.raises(PackError, match=f"{filename}: its checksum is not the manifest's"):
        load_pack(pack_dir)


def test_a_smoke_flag_means_a_true_bool(pack_dir):
    assert load_pack(pack_dir).smoke is True
    _edit_json(pack_dir / "manifest.json", lambda d: d.update(smoke=False))
    assert load_pack(pack_dir).smoke is False


def test_a_failed_pack_write_is_one_typed_line_naming_the_folder(tmp_path, histories):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(results.PackWriteError) as info:
        write_pack(histories, blocker / "pack", manifest_extra={"device": "cpu",
                                                                "wall_seconds": 1.0})
    assert isinstance(info.value, OSError) and info.value.path == blocker / "pack"
    assert str(info.value).startswith(f"could not write {blocker / 'pack'} (")
    assert "--out" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(results.PackWriteError):
        results.check_writable(blocker / "pack")  # what the CLI can call before training


def test_a_failed_write_leaves_the_old_pack_and_no_temp_files(pack_dir, histories, monkeypatch):
    before = {p.name: p.read_bytes() for p in pack_dir.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.np, "savez_compressed", disk_full)
    with pytest.raises(results.PackWriteError, match="No space left on device"):
        write_pack(histories, pack_dir, manifest_extra={"device": "cpu", "wall_seconds": 1.0})
    assert {p.name: p.read_bytes() for p in pack_dir.iterdir()} == before
    assert load_pack(pack_dir) is not None


def test_stale_temp_files_of_a_pack_are_removed(pack_dir, histories):
    stale, fresh = pack_dir / ".tmp-old.npz", pack_dir / ".tmp-new.npz"
    for p in (stale, fresh):
        p.write_bytes(b"partial")
    old = time.time() - 2 * atomic.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    write_pack(histories, pack_dir, manifest_extra={"device": "cpu", "wall_seconds": 1.0})
    assert not stale.exists() and fresh.exists()


# ----------------------------------------------------------------------------- reproduce all


@pytest.fixture(scope="module")
def smoke_pack(tmp_path_factory) -> Path:
    """`psp-lite reproduce all --smoke` with 2 seeds x 1 epoch (a private cache)."""
    folder = tmp_path_factory.mktemp("reproduce-all")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PSP_LITE_CACHE", str(folder / "cache"))
        mp.setenv("MPLBACKEND", "Agg")
        code = main(["reproduce", "all", "--smoke", "--seeds", "2", "--epochs", "1", "--out",
                     str(folder / "out"), "--no-progress", "--device", "cpu"])
    assert code == 0
    return folder


def test_reproduce_all_writes_a_loadable_pack_of_every_experiment(smoke_pack, monkeypatch):
    out = smoke_pack / "out"
    pack = load_pack(out)
    assert list(pack.experiments) == ["fig2", "fig3", "table1", "sweep"]
    assert pack.smoke and pack.manifest["protocol"].startswith("smoke")
    assert pack.manifest["stand_ins"]["table1"] == "synthetic-mnist stands in for fashion-mnist"
    assert any("SYNTHETIC" in note for note in pack.manifest["data_notes"])
    fig2 = pack.results("fig2")
    assert list(fig2) == ["none", "l2", "psp"]
    assert [[h.config.seed for h in hs] for hs in fig2.values()] == [[0, 1]] * 3
    assert all(len(h.test_error) == 1 and h.config.dataset == "synthetic-mnist"
               for hs in fig2.values() for h in hs)
    assert all(h.weights for reg in ("l2", "psp") for h in pack.results("fig3")[reg])
    sweep = pack.results("sweep")
    assert list(sweep) == ["none", *(f"psp λ={v:g}" for v in (1e-4, 1e-3, 1e-2)),
                           *(f"l2 λ={v:g}" for v in (1e-4, 1e-3, 1e-2))]
    assert all(len(hs) == 2 for hs in sweep.values())  # min(--seeds, 3) seeds
    assert {p.name for p in (out / "figures").iterdir()} >= {
        "fig2a_test_error.png", "fig2b_z2.png", "fig3_weights.png", "fig3_spread.md",
        "table1.md", "table1_test_error.png", "sweep_u_curve.png", "sweep_table.md"}
    # the pack holds the numbers of the runs trained (now cached: nothing retrains)
    monkeypatch.setenv("PSP_LITE_CACHE", str(smoke_pack / "cache"))
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("retrained"))
    for h in fig2["psp"]:
        again = psp_lite.runners.cached.run(h.config, progress=False)
        assert again.test_error == h.test_error and again.z2_layers == h.z2_layers


def test_reproduce_all_refuses_dataset_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("trained"))
    code = main(["reproduce", "all", "--smoke", "--dataset", "mnist", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("psp-lite: error: reproduce all trains each")
    assert "--dataset does not apply" in err[0]


def test_reproduce_all_without_mnist_stops_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    monkeypatch.delenv("PSP_LITE_SMOKE", raising=False)
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading: no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "nowhere").mkdir()  # an empty data folder (a missing one is refused earlier)
    code = main(["reproduce", "all", "--data-dir", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("psp-lite: error: MNIST") and "nowhere" in err[-1]
    assert load_pack(tmp_path / "out") is None


def test_the_plan_is_the_authors_protocol_at_full_length():
    from psp_lite.experiments.full_length import plan
    from psp_lite.experiments.lambda_sweep import DEFAULT_LAMBDAS
    from psp_lite.training.config import QUICK

    full = plan(device="cpu")
    assert {r: (len(cs), cs[0].dataset, cs[0].epochs, cs[0].lam, cs[0].train_subset)
            for r, cs in full["fig2"].items()} == {
        "none": (10, "mnist", 50, 0.0, None), "l2": (10, "mnist", 50, 1e-4, None),
        "psp": (10, "mnist", 50, 1e-3, None)}
    assert {r: (len(cs), cs[0].dataset, cs[0].epochs) for r, cs in full["table1"].items()} == {
        r: (10, "fashion-mnist", 150) for r in ("none", "l2", "psp")}
    assert full["fig3"] == {r: full["fig2"][r] for r in ("l2", "psp")}
    sweep = full["sweep"]
    assert len(sweep) == 1 + 2 * len(DEFAULT_LAMBDAS)
    assert all(len(cs) == 3 and cs[0].epochs == 150 and cs[0].train_subset is None
               for cs in sweep.values())
    assert sweep["psp λ=0.001"][0] == full["table1"]["psp"][0]  # shared runs train once
    quick = plan(quick=True, device="cpu")
    assert all(len(cs) == 1 and cs[0].epochs == QUICK["fashion-mnist"]["epochs"]
               for cs in quick["table1"].values())
    assert plan(seeds=4, epochs=7, device="cpu")["sweep"]["none"][-1].seed == 2


# ----------------------------------------------------------------------------- notebooks


@pytest.mark.notebook
def test_notebook_04_shows_the_packs_curves_labelled_by_its_manifest(smoke_pack, tmp_path,
                                                                      monkeypatch):
    from notebook_runner import run_notebook

    out = smoke_pack / "out"
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    monkeypatch.setenv("PSP_LITE_RESULTS", str(out))
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    path = ROOT / "notebooks" / "04_fig2_mnist.ipynb"
    run = run_notebook(lambda: nbformat.read(path, as_version=4), path.parent, path.name)
    outputs = [o for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    pack = load_pack(out)
    assert pack_views.describe_pack(pack, "fig2") in text
    assert "SMOKE results pack" in text and pack.manifest["date"][:10] in text
    assert "No results pack found" not in text


def test_the_pack_figures_and_tables_draw_the_packs_numbers(smoke_pack):
    pack = load_pack(smoke_pack / "out")
    fig2 = pack.results("fig2")
    own = {r: hs[:1] for r, hs in fig2.items()}
    fig = pack_views.pack_figure(pack, "fig2", own=own)
    own_ax, pack_ax = fig.axes[0], fig.axes[1]
    assert "your run" in own_ax.get_title() and "SMOKE results pack" in pack_ax.get_title()
    mean_none = np.mean([h.test_error for h in fig2["none"]], axis=0)
    assert np.allclose(pack_ax.lines[0].get_ydata(), mean_none)
    assert np.allclose(own_ax.lines[0].get_ydata(), fig2["none"][0].test_error)
    sweep = pack.results("sweep")
    fig = pack_views.pack_figure(pack, "sweep")
    psp = [line for line in fig.axes[0].lines if line.get_label() == "PSP (pack)"][0]
    expected = [np.mean([h.test_error[-1] for h in sweep[f"psp λ={lam:g}"]])
                for lam in (1e-4, 1e-3, 1e-2)]
    assert np.allclose(psp.get_xdata(), [1e-4, 1e-3, 1e-2])
    assert np.allclose(psp.get_ydata(), expected)
    table = pack_views.sweep_table(pack)
    row = next(line for line in table.splitlines() if line.startswith("| 0.001 |"))
    errors = [h.test_error[-1] for h in sweep["psp λ=0.001"]]
    assert row.split(" | ")[1] == f"{np.mean(errors):.2f} ± {np.std(errors):.2f} (2)"
    assert "| psp | 0.001 | 2 |" in pack_views.summary_table(pack, "fig2")
    assert pack_views.summary_table(None, "fig2") == pack_views.spread_table(None) == ""
    assert pack_views.pack_figure(None, "fig2") is None


def test_smoke_mode_from_the_environment_plans_synthetic_runs(tmp_path, monkeypatch, capsys):
    from psp_lite.experiments import full_length as full_length

    planned = {}

    def stop(the_plan, **kwargs):
        planned.update(the_plan)
        raise KeyboardInterrupt

    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    monkeypatch.setattr(psp_lite.cli.commands, "train_plan", stop)
    assert main(["reproduce", "all", "--out", str(tmp_path), "--no-progress"]) == 130
    configs = [c for groups in planned.values() for cs in groups.values() for c in cs]
    assert {(c.dataset, c.epochs, c.train_subset) for c in configs} == {
        ("synthetic-mnist", 2, 500)}
    assert "SMOKE" in capsys.readouterr().err


def test_smoke_flag_is_refused_for_a_single_target(tmp_path, capsys):
    assert main(["reproduce", "fig2", "--smoke", "--out", str(tmp_path)]) == 2
    assert "--smoke applies to `reproduce all`" in capsys.readouterr().err


def test_a_pack_without_device_or_time_is_not_written(tmp_path, histories):
    with pytest.raises(ValueError, match=r"needs manifest_extra to say \['wall_seconds'\]"):
        write_pack(histories, tmp_path / "pack", manifest_extra={"device": "cpu"})
    assert not (tmp_path / "pack").exists()
