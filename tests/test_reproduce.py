"""`psp-lite reproduce fig3|table2` write the figures and tables of notebooks 05 and 07."""

from __future__ import annotations

import numpy as np
import pytest

import psp_lite.runners.cached
from psp_lite import cli, experiments
from psp_lite.training.config import QUICK


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_fig3_writes_the_weight_figure_and_the_spread_table(tmp_path, monkeypatch):
    monkeypatch.setitem(QUICK, "synthetic-mnist",
                        dict(epochs=1, train_subset=300, test_subset=100))
    out = tmp_path / "out"
    code = cli.main(["reproduce", "fig3", "--dataset", "synthetic-mnist", "--quick",
                     "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"fig3.md", "fig3.csv", "fig3_weights.png",
                                                "fig3_spread.md"}
    spread = (out / "fig3_spread.md").read_text()
    assert "std ratio PSP / l2" in spread
    assert [line.split(" | ")[0] for line in spread.splitlines()[2:]] == [
        "| conv1", "| conv2", "| fc1", "| fc2"]
    # the numbers are those of the trained runs' final weights (reloaded: nothing retrains)
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("retrained"))
    results = experiments.compare("synthetic-mnist", ("l2", "psp"), epochs=1, train_subset=300,
                                  test_subset=100, device="cpu", progress=False)
    for line in spread.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("| ").split(" | ")]
        w = {r: results[r][0].weights[1][f"{cells[0]}.weight"].astype(np.float64)
             for r in ("l2", "psp")}
        assert int(cells[1]) == w["l2"].size
        assert [float(c) for c in cells[2:5]] == pytest.approx(
            [w["l2"].std(), w["psp"].std(), w["psp"].std() / w["l2"].std()], abs=6e-3)


def test_table2_writes_curves_and_bars_per_network(tmp_path, monkeypatch):
    monkeypatch.setitem(QUICK, "synthetic-cifar10",
                        dict(epochs=1, train_subset=32, test_subset=20, batch_size=16))
    out = tmp_path / "out"
    code = cli.main(["reproduce", "table2", "--dataset", "synthetic-cifar10", "--quick",
                     "--models", "allcnnc", "--out", str(out), "--no-progress",
                     "--device", "cpu"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"table2.md", "table2_curves.png",
                                                "table2_bars.png"}
    rows = [line for line in (out / "table2.md").read_text().splitlines()
            if line.startswith("| synthetic-cifar10 | allcnnc |")]
    assert [row.split(" | ")[2] for row in rows] == ["l2", "psp"]
    monkeypatch.setattr(psp_lite.runners.cached, "train", lambda *a, **k: pytest.fail("retrained"))
    results = experiments.compare("synthetic-cifar10", ("l2", "psp"), model="allcnnc", epochs=1,
                                  train_subset=32, test_subset=20, batch_size=16, device="cpu",
                                  progress=False)
    for row in rows:  # "ours" is the one epoch's test error of the run trained
        ours = float(row.split(" | ")[6])
        assert ours == pytest.approx(results[row.split(" | ")[2]][0].test_error[0], abs=0.006)
