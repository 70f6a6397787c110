"""`psp-lite reproduce`: files written with ours beside the paper's numbers; one-line errors."""

from __future__ import annotations

import csv

import pytest

import psp_lite.analytic.cross_layer
import psp_lite.experiments.comparison
import psp_lite.report
import psp_lite.runners.cached
import psp_lite.training
from psp_lite import experiments
from psp_lite.cli import main


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_reproduce_table1_writes_table_and_figures_beside_the_papers_numbers(tmp_path, capsys,
                                                                            monkeypatch):
    out = tmp_path / "out"
    code = main(["reproduce", "table1", "--dataset", "synthetic-mnist", "--epochs", "1",
                 "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"table1.md", "table1.csv", "table1_test_error.png",
                                                "table1_z2.png"}
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert [r["regularizer"] for r in rows] == ["none", "l2", "psp"]
    assert [float(r["lam"]) for r in rows] == [0.0, 1e-4, 1e-3]
    # the table holds the numbers of the runs it trained (now in the cache: nothing retrains)
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("retrained"))
    results = experiments.compare("synthetic-mnist", ("none", "l2", "psp"), epochs=1,
                                  device="cpu", progress=False)
    for r, expected in zip(rows, psp_lite.report.summarize(results), strict=True):
        assert float(r["ours_mean"]) == pytest.approx(expected.ours_mean)
        assert float(r["ours_mean"]) == pytest.approx(results[r["regularizer"]][0].test_error[0])
    markdown = (out / "table1.md").read_text()
    assert "ours: test error %" in markdown and "paper: test error %" in markdown
    assert "SYNTHETIC" in capsys.readouterr().err


def test_missing_dataset_fails_once_before_training_naming_cli_flags(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading: no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("trained"))
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["reproduce", "fig2", "--quick", "--data-dir", str(empty), "--no-progress",
                 "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err  # the note that --data-dir is empty, then the one error
    assert err[0].startswith("psp-lite: note: --data-dir") and "is empty" in err[0]
    assert err[1].startswith("psp-lite: error: MNIST not found (looked in ")
    assert str(empty / "MNIST" / "raw") in err[1]
    assert "--data-dir" in err[1] and "PSP_LITE_DATA" in err[1]
    assert "download=True" not in err[1] and "data_dir" not in err[1] and len(err[1]) < 500


def test_a_missing_data_dir_is_refused(tmp_path, capsys):
    code = main(["reproduce", "fig2", "--data-dir", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"psp-lite: error: --data-dir {tmp_path / 'nowhere'} does not exist")


def test_bad_arguments_exit_nonzero_without_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "fig9"])
    assert exit_info.value.code == 2


def test_help_states_the_real_quick_protocol_and_lists_all(capsys):
    from psp_lite.cli import build_parser
    from psp_lite.training.config import QUICK

    top = build_parser().format_help()
    assert "all" in top.split("reproduce", 2)[2] and "results pack" in top
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    fashion = QUICK["fashion-mnist"]
    assert f"Fashion-MNIST {fashion['epochs']} epochs on {fashion['train_subset']:,}" in text
    assert "a few epochs" not in text and "one seed unless --seeds" in text


def test_a_failed_write_after_training_keeps_the_runs_and_says_where(tmp_path, monkeypatch,
                                                                     capsys):
    import psp_lite.cli.commands

    def disk_full(rows, stem):
        raise OSError(28, "No space left on device", str(stem) + ".md")

    monkeypatch.setattr(psp_lite.cli.commands, "write_table", disk_full)
    argv = ["reproduce", "table1", "--dataset", "synthetic-mnist", "--epochs", "1",
            "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"psp-lite: error: could not write {tmp_path / 'out' / 'table1'}.md (No "
                       "space left on device); the trained runs are cached, so the same command "
                       "with a writable --out writes the results without retraining.")
    monkeypatch.undo()
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("retrained"))
    assert main(argv) == 0
    markdown = (tmp_path / "out" / "table1.md").read_text()
    assert "_Runs: lenet5 on synthetic MNIST stand-in: 2,000 training images" in markdown


def test_the_estimate_says_how_long_is_left_after_the_first_run(monkeypatch, capsys):
    import psp_lite.cli.commands

    clock = iter([0.0, 40.0, 80.0])
    monkeypatch.setattr(psp_lite.cli.commands.time, "perf_counter", lambda: next(clock))
    estimate = psp_lite.cli.commands.Estimate(3)
    estimate(0, None)
    estimate(1, None)
    assert capsys.readouterr().err == "psp-lite: 1/3 runs in 40 s; about 80 s left\n"


def test_the_estimate_counts_only_trained_runs(monkeypatch, capsys):
    """Two runs from the cache (ms each), then one trained in 40 s: 2 runs left take about 80 s,
    not the 27 s that counting the cached runs would promise."""
    import psp_lite.cli.commands

    clock = iter([0.0, 0.01, 0.02, 40.02, 80.0])
    monkeypatch.setattr(psp_lite.cli.commands.time, "perf_counter", lambda: next(clock))
    estimate = psp_lite.cli.commands.Estimate(5)
    for i in range(4):
        estimate(i, None)
    assert capsys.readouterr().err == "psp-lite: 3/5 runs in 40 s; about 80 s left\n"


def test_reproduce_all_gives_the_estimate_its_runs(tmp_path, monkeypatch):
    import psp_lite.cli.commands

    seen = {}

    def train_plan(the_plan, **kwargs):
        seen.update(kwargs, runs=len({c for g in the_plan.values() for cs in g.values()
                                      for c in cs}))
        return {}

    monkeypatch.setattr(psp_lite.cli.commands, "train_plan", train_plan)
    monkeypatch.setattr(psp_lite.cli.commands.results, "write_pack",
                        lambda *a, **k: (_ for _ in ()).throw(SystemExit(7)))
    with pytest.raises(SystemExit):
        psp_lite.cli.main(["reproduce", "all", "--smoke", "--out", str(tmp_path / "p"),
                           "--no-progress"])
    estimate = seen["on_result"]
    assert isinstance(estimate, psp_lite.cli.commands.Estimate)
    assert estimate.total == seen["runs"] > 1


def test_several_local_runs_each_show_their_epochs(monkeypatch):
    import psp_lite.runners.local

    shown = []
    def run_many(group, *, progress, **kwargs):
        shown.append(progress)
        return [psp_lite.training.RunHistory(config) for config in group]

    monkeypatch.setattr(psp_lite.runners.local, "run_many", run_many)
    configs = [psp_lite.training.RunConfig(dataset="synthetic-mnist", device="cpu", seed=s)
               for s in range(2)]
    psp_lite.runners.local.run_configs(configs, progress=True)
    assert shown == [True, True]


def test_scripts_help_cites_no_issue_numbers():
    import re
    from pathlib import Path

    for script in (Path(__file__).parent.parent / "scripts").glob("*.py"):
        assert not re.search(r"issue \d", script.read_text(), re.IGNORECASE), script.name


def test_a_pack_that_cannot_be_written_after_training_is_one_line_and_exit_1(
        tmp_path, monkeypatch, capsys):
    import psp_lite.cli.commands
    from psp_lite.store.packs import PackWriteError

    def full_disk(trained, out, **kwargs):
        raise PackWriteError(out, OSError(28, "No space left on device"))

    monkeypatch.setattr(psp_lite.cli.commands, "train_plan", lambda *a, **k: {})
    monkeypatch.setattr(psp_lite.cli.commands.results, "write_pack", full_disk)
    code = psp_lite.cli.main(["reproduce", "all", "--smoke", "--out", str(tmp_path / "pack"),
                              "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("psp-lite: error: could not write") and "No space" in err[-1]
    assert str(tmp_path / "pack") in err[-1] and "cached" in err[-1]
    assert "Traceback" not in "\n".join(err)
