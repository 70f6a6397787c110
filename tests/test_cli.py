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


def test_missing_dataset_is_one_line_on_stderr_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading: no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    code = main(["reproduce", "fig2", "--data-dir", str(tmp_path / "nowhere"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2  # the progress header, then the error
    assert err[1].startswith("psp-lite: error: MNIST")
    assert "nowhere" in err[1] and "PSP_LITE_DATA" in err[1] and "Traceback" not in err[1]


def test_bad_arguments_exit_nonzero_without_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "fig9"])
    assert exit_info.value.code == 2
