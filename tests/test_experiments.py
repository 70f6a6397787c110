"""experiments: smoke stand-ins, the short CIFAR schedule, per-regularizer lambdas, timing and
the honest reading of a comparison."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

import psp_lite.analytic.cross_layer
import psp_lite.experiments.comparison
import psp_lite.report
import psp_lite.training
from psp_lite import data, experiments
from psp_lite.analytic.cross_layer import PullRow, cross_layer_pull
from psp_lite.report.stats import SummaryRow


@pytest.fixture
def no_datasets(tmp_path, monkeypatch):
    """No dataset on disk or online: empty user dirs, no system folders, downloads fail."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    monkeypatch.setitem(data.files.SYSTEM_IDX_DIRS, "fashion-mnist", ())
    monkeypatch.setitem(data.files.SYSTEM_IDX_DIRS, "mnist", ())
    monkeypatch.setitem(data.files.SYSTEM_ROOTS, "cifar10", ())
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading: no network")

    for cls in (torchvision.datasets.MNIST, torchvision.datasets.FashionMNIST,
                torchvision.datasets.CIFAR10):
        monkeypatch.setattr(cls, "download", offline)
    data.clear_cache()
    yield
    data.clear_cache()


def test_without_smoke_a_missing_dataset_is_the_clear_error(no_datasets):
    with pytest.raises(data.DatasetNotFoundError, match="MNIST.*PSP_LITE_DATA"):
        experiments.choose_dataset("mnist", smoke=False)


def test_smoke_stand_ins_are_named_and_never_downloaded(no_datasets):
    mnist = experiments.choose_dataset("mnist", smoke=True)
    assert (mnist.dataset, mnist.stand_in) == ("synthetic-mnist", True)
    assert "STAND-IN" in str(mnist) and "MNIST and Fashion-MNIST not available" in str(mnist)
    cifar = experiments.choose_dataset("cifar10", smoke=True)
    assert cifar.dataset == "synthetic-cifar10"
    assert "synthetic 32x32 colour images instead of CIFAR-10" in cifar.note
    assert "SYNTHETIC" in cifar.note and "1 train" not in cifar.note


def test_smoke_uses_fashion_mnist_for_mnist_when_it_is_on_disk(fashion_mnist):
    mnist_there = True
    try:
        data.load_dataset("mnist", download=False, train_subset=1, test_subset=1)
    except data.DatasetNotFoundError:
        mnist_there = False
    choice = experiments.choose_dataset("mnist", smoke=True)
    if mnist_there:
        assert choice.dataset == "mnist" and not choice.stand_in
    else:
        assert choice.dataset == "fashion-mnist"
        assert "trains on Fashion-MNIST instead of MNIST" in choice.note
    same = experiments.choose_dataset("fashion-mnist", smoke=True)
    assert (same.dataset, same.stand_in) == ("fashion-mnist", False)


def test_cifar_schedule_compresses_the_papers_and_keeps_it_at_450():
    assert experiments.cifar_schedule(450) == dict(epochs=450, lr_milestones=(150, 250, 350))
    assert experiments.cifar_schedule(30) == dict(epochs=30, lr_milestones=(10, 17, 23))
    assert experiments.cifar_schedule(1) == dict(epochs=1, lr_milestones=())


def test_compare_takes_lambdas_per_regularizer(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    results = experiments.compare("synthetic-mnist", ("none", "psp"), lams={"psp": 3e-4},
                                  epochs=1, train_subset=100, test_subset=50, device="cpu",
                                  progress=False)
    assert [h.config.lam for hs in results.values() for h in hs] == [0.0, 3e-4]
    assert "2 run(s) of lenet5, 1 epoch(s) each, trained on cpu" in psp_lite.report.timing(results)
    with pytest.raises(ValueError, match="not compared"):
        experiments.compare("synthetic-mnist", ("psp",), lams={"l2": 1e-4}, epochs=1)


def row(reg: str, mean: float, std: float = 0.0, seeds: int = 1, epochs: int = 10,
        paper: float | None = None, dataset: str = "mnist") -> SummaryRow:
    return SummaryRow(dataset, "lenet5", reg, 0.0, seeds, epochs, f"7-{epochs}", mean, std,
                      paper, None)


def numbers(text: str) -> set[float]:
    """Every number written in `text` (the reading's facts, whatever its wording)."""
    return {float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)}


def test_reading_with_one_seed_claims_nothing():
    text = psp_lite.report.reading([row("l2", 0.80, paper=0.64), row("psp", 0.70, paper=0.50)],
                               smoke=False)
    assert {0.70, 0.80, 0.10} <= numbers(text)  # both errors and the gap
    assert "lower" in text and "higher" not in text  # the direction of the gap
    assert "one seed" in text and "resolves" not in text and "distinguishable" not in text
    assert "same sign" in text and "not have the same sign" not in text  # vs the paper's gap
    # 10 epochs against the 50 of the authors' code (the paper states no epoch count)
    assert re.search(r"\b10\b[^.;]*\bauthors' 50\b", text) and "paper's 50" not in text
    assert re.search(r"\b1 seed\(s\)[^.;]*\bauthors' 10\b", text)


def test_reading_with_seeds_says_whether_the_gap_is_resolved():
    resolved = psp_lite.report.reading(
        [row("l2", 0.80, 0.02, seeds=10), row("psp", 0.60, 0.02, seeds=10)], smoke=False)
    se = math.sqrt(2 * (0.02 * math.sqrt(10 / 9)) ** 2 / 10)  # of the difference of means
    assert {0.60, 0.80, 0.20, round(se, 2), 10} <= numbers(resolved)
    assert "resolves" in resolved and "not distinguishable" not in resolved
    noisy = psp_lite.report.reading(
        [row("l2", 0.62, 0.10, seeds=4), row("psp", 0.60, 0.10, seeds=4)], smoke=False)
    se = math.sqrt(2 * (0.10 * math.sqrt(4 / 3)) ** 2 / 4)
    assert {0.02, round(se, 2), 4} <= numbers(noisy)
    assert "not distinguishable" in noisy and "resolves" not in noisy
    higher = psp_lite.report.reading([row("l2", 0.5, paper=0.64), row("psp", 0.9, paper=0.50)],
                                 smoke=False)
    assert {0.90, 0.50, 0.40, 0.14} <= numbers(higher)  # ours, and the paper's gap 0.64 - 0.50
    assert "higher" in higher and "lower" not in higher.split("The paper")[0]
    assert "not have the same sign" in higher


def test_reading_in_smoke_mode_draws_no_conclusion():
    text = psp_lite.report.reading([row("l2", 20.0), row("psp", 10.0, dataset="mnist")], smoke=True)
    assert text.startswith("SMOKE RUN") and "lower" not in text


def test_cross_layer_pull_splits_the_psp_gradient_by_source_layer():
    import torch

    from psp_lite.models import get_model
    from psp_lite.potentials import capture
    from psp_lite.regularizers import psp_penalty

    torch.manual_seed(0)
    model = get_model("lenet5")
    x = torch.randn(8, 1, 28, 28)
    # conv2's weights feel conv2's own z and every later layer's, never conv1's (Eq. 14, p < l)
    assert [r.source for r in cross_layer_pull(model, x, "conv2")] == [
        "conv2", "fc1", "fc2"]
    rows = cross_layer_pull(model, x, "conv1")
    assert [r.source for r in rows] == ["conv1", "conv2", "fc1", "fc2"]
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    for normalization in ("reference", "paper"):
        # only the logits depend on fc2's weights: its one row is the whole penalty's gradient
        (last,) = cross_layer_pull(model, x, "fc2", 1e-3, normalization)
        penalty = psp_penalty(capture(model, x)[1], 1e-3, normalization)
        (g,) = torch.autograd.grad(penalty, model.fc2.weight)
        assert last.norm == pytest.approx(float(g.norm()), rel=1e-5)


def test_rebuild_restores_a_runs_trained_lenet5(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    results = experiments.compare("synthetic-mnist", ("psp",), epochs=1, train_subset=100,
                                  test_subset=50, device="cpu", progress=False)
    history = results["psp"][0]
    model = psp_lite.training.rebuild(history)
    assert torch.equal(model.fc1.weight.detach().flatten(),
                       torch.from_numpy(history.weights[1]["fc1.weight"]))
    with pytest.raises(ValueError, match="buffers"):
        psp_lite.training.rebuild(dataclasses.replace(history, config=dataclasses.replace(
            history.config, dataset="synthetic-cifar10", model="resnet18")))


def fake_results(z2: dict[str, list[float]], **config) -> experiments.Results:
    from psp_lite.training.config import paper_config
    from psp_lite.training.history import RunHistory

    n = len(next(iter(z2.values())))
    return {r: [RunHistory(paper_config("mnist", r, epochs=n, device="cpu", **config),
                           test_error=list(np.linspace(2, 1, n)), z2=v)]
            for r, v in z2.items()}


def test_z2_reading_states_the_order_and_the_direction():
    results = fake_results({"none": [1.0, 4.0], "l2": [1.0, 2.0], "psp": [0.5, 0.1]})
    text = psp_lite.report.z2_reading(results, smoke=False)
    assert {4.0, 2.0, 1.0, 0.5, 0.1, 20.0} <= numbers(text)  # final, first, and 2 / 0.1
    assert re.search(r"no regularization 4 \(up", text) and re.search(r"PSP 0\.1 \(down", text)
    assert "lowest" in text and "not the lowest" not in text
    flipped = psp_lite.report.z2_reading(fake_results({"l2": [1.0, 0.01], "psp": [1.0, 0.5]}),
                                     smoke=False)
    assert {0.01, 0.5} <= numbers(flipped)
    assert "not the lowest" in flipped and "l2's is" in flipped
    smoke = psp_lite.report.z2_reading(results, smoke=True)
    assert smoke.startswith("SMOKE RUN") and "lowest" not in smoke
    close = psp_lite.report.z2_reading(fake_results({"l2": [1.0, 1.0], "psp": [1.0, 0.95]}),
                                   smoke=False)
    assert "not separated" in close and "lowest" not in close


def test_summarize_averages_after_the_last_learning_rate_drop():
    results = fake_results({"psp": [1.0] * 10}, lr_milestones=(4, 7))
    (r,) = psp_lite.report.summarize(results)
    assert r.averaged_epochs == "8-10"
    assert r.ours_mean == pytest.approx(np.mean(np.linspace(2, 1, 10)[7:]))
    (plain,) = psp_lite.report.summarize(fake_results({"psp": [1.0] * 10}))
    assert plain.averaged_epochs == "7-10"


def test_pull_markdown_marks_sources_that_cannot_reach_a_layer():
    rows = {"conv1": [PullRow("conv1", 1.0, 0.25), PullRow("fc2", 3.0,
                                                                                     0.75)],
            "fc2": [PullRow("fc2", 1.0, 1.0)]}
    table = psp_lite.analytic.cross_layer.pull_markdown(rows)
    assert "| conv1 | 25% | 75% | **75%** |" in table
    assert "| fc2 | — | 100% | **0%** |" in table


def test_protocol_gives_the_notebooks_the_published_numbers():
    from psp_lite.training.config import protocol

    mnist, fashion, cifar = (protocol(d) for d in ("mnist", "fashion-mnist", "cifar10"))
    assert (mnist.epochs, mnist.seeds, mnist.lams) == (50, 10, {"l2": 1e-4, "psp": 1e-3})
    assert (fashion.epochs, fashion.train_images) == (150, 60000)
    assert (cifar.epochs, cifar.lams["l2"], cifar.train_images) == (450, 5e-4, 50000)
    assert mnist.normalization == "reference"
