"""The lambda sweep: its grid, the cache as stop/resume, divergence, and `psp-lite sweep`."""

from __future__ import annotations

import math

import numpy as np
import pytest

import psp_lite.runners.cached
from psp_lite import cli
from psp_lite.data import load_dataset
from psp_lite.experiments.lambda_sweep import DEFAULT_LAMBDAS, sweep, sweep_configs, train_one
from psp_lite.report.readings import standard_error
from psp_lite.report.readings import sweep_reading as reading
from psp_lite.store import cache
from psp_lite.training.history import (
    RunHistory,
    TrainingDiverged,
    default_snapshots,
    snapshot_for,
)

TINY = dict(dataset="synthetic-mnist", psp_lambdas=(1e-3, 1e-2), l2_lambdas=(1e-4,), epochs=2,
            train_subset=200, test_subset=100, device="cpu", progress=False)


@pytest.fixture(autouse=True)
def _every_test_has_its_own_cache(isolated_cache):
    """Each test here runs with an empty run cache of its own (tests/conftest.py)."""


@pytest.fixture
def count_training(monkeypatch):
    """Record the (regularizer, lam) of every run actually trained (not loaded)."""
    trained: list[tuple[str, float]] = []
    real = psp_lite.runners.cached.train

    def counting(config, *args, **kwargs):
        trained.append((config.regularizer, config.lam))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(psp_lite.runners.cached, "train", counting)
    return trained


def test_default_grid_is_log_spaced_from_1e5_to_1e1_with_the_paper_values():
    lams = np.array(DEFAULT_LAMBDAS)
    assert len(lams) >= 7
    assert lams[0] == pytest.approx(1e-5) and lams[-1] == pytest.approx(1e-1)
    steps = np.diff(np.log10(lams))
    np.testing.assert_allclose(steps, steps[0], atol=0.01)
    assert 1e-3 in DEFAULT_LAMBDAS and 1e-4 in DEFAULT_LAMBDAS  # paper: PSP 1e-3, l2 1e-4


def test_configs_share_one_protocol_and_order_runs_none_psp_l2():
    configs = sweep_configs("fashion-mnist", (1e-2, 1e-3), (1e-4,), epochs=6, device="cpu")
    assert [(c.regularizer, c.lam) for c in configs] == [
        ("none", 0.0), ("psp", 1e-3), ("psp", 1e-2), ("l2", 1e-4)]
    assert {(c.epochs, c.lr, c.batch_size, c.seed, c.train_subset) for c in configs} == {
        (6, 0.1, 100, 0, 10000)}
    assert configs[0].snapshot_epochs == (1, 3, 6) == default_snapshots(6)


@pytest.mark.parametrize("bad", [-1.0, 0.0, math.nan, math.inf])
def test_bad_lambdas_are_refused_before_training(bad, count_training):
    with pytest.raises(ValueError, match="lambda"):
        sweep(**{**TINY, "psp_lambdas": (1e-3, bad)})
    assert count_training == []


def test_snapshot_for_takes_the_latest_kept_epoch_not_after():
    assert snapshot_for([1, 3, 5], 4) == 3
    assert snapshot_for([1, 3, 5], 5) == 5
    assert snapshot_for([3, 5], 1) == 3


def test_sweep_trains_each_run_once_then_reuses_the_cache(count_training):
    first = sweep(**TINY)
    assert sorted(first.runs) == sorted([("none", 0.0), ("psp", 1e-3), ("psp", 1e-2),
                                         ("l2", 1e-4)])
    assert len(count_training) == 4
    again = sweep(**TINY)
    assert len(count_training) == 4  # nothing retrained
    for key, h in first.runs.items():
        assert again.runs[key].test_error == h.test_error
        assert sorted(h.weights) == [1, 2]  # snapshots for the epoch slider
    assert first.lambdas("psp") == [1e-3, 1e-2]
    assert first.get("psp", 0.0) is first.baseline
    table = first.table()
    assert "| 0 (no regularization) |" in table and "| 0.01 |" in table and "—" in table


def test_interrupting_a_sweep_loses_only_the_run_in_progress(monkeypatch, isolated_cache):
    real = psp_lite.runners.cached.train
    calls: list[tuple[str, float]] = []

    def interrupted_on_third(config, *args, **kwargs):
        calls.append((config.regularizer, config.lam))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third run
        return real(config, *args, **kwargs)

    monkeypatch.setattr(psp_lite.runners.cached, "train", interrupted_on_third)
    with pytest.raises(KeyboardInterrupt):
        sweep(**TINY)
    assert len(list(isolated_cache.glob("*.npz"))) == 2  # the two finished runs
    assert not list(isolated_cache.glob(".tmp-*"))  # no half-written entry

    resumed: list[tuple[str, float]] = []

    def counting(config, *args, **kwargs):
        resumed.append((config.regularizer, config.lam))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(psp_lite.runners.cached, "train", counting)
    result = sweep(**TINY)
    assert resumed == calls[2:] + [("l2", 1e-4)]  # the interrupted run and the rest, only
    assert len(result.runs) == 4


def test_a_diverging_run_is_recorded_cached_as_a_history_and_not_retrained(monkeypatch,
                                                                            isolated_cache):
    real = psp_lite.runners.cached.train
    attempts: list[float] = []

    def diverges_at_large_lambda(config, *args, **kwargs):
        if config.lam == 1e-2:
            attempts.append(config.lam)
            raise TrainingDiverged(RunHistory(config, device="cpu", diverged_at=1))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(psp_lite.runners.cached, "train", diverges_at_large_lambda)
    result = sweep(**TINY)
    assert result.diverged == [("psp", 1e-2)] and ("psp", 1e-2) not in result.runs
    assert "diverged" in result.table()
    # one table per regularizer, each with its own λ column (their λ are in different units)
    psp_rows = result.table("psp").splitlines()
    assert psp_rows[0] == "| PSP λ | test error % |" and psp_rows[-1] == "| 0.01 | diverged |"
    assert all(f"| {lam:g} |" in result.table("psp") for lam in result.lambdas("psp"))
    assert not any(f"| {lam:g} |" in result.table("l2") for lam in result.lambdas("psp")
                   if lam not in result.lambdas("l2"))
    data = load_dataset("synthetic-mnist", train_subset=200, test_subset=100)
    stored = cache.load(sweep_configs(**{k: v for k, v in TINY.items() if k != "progress"})[2],
                        data.fingerprint)
    assert stored is not None and stored.diverged_at == 1  # one history, in the cache
    assert sorted(p.suffix for p in isolated_cache.iterdir()) == [".npz"] * 4  # no markers
    again = sweep(**TINY)
    assert again.diverged == [("psp", 1e-2)] and attempts == [1e-2]


def test_a_failed_cache_write_keeps_the_sweep_in_memory_with_a_warning(monkeypatch,
                                                                       isolated_cache):
    def disk_full(history, fingerprint):
        raise cache.CacheWriteError(cache.path_for(history.config, fingerprint),
                                    OSError(28, "No space left on device"))

    monkeypatch.setattr(cache, "save", disk_full)
    with pytest.warns(UserWarning, match="could not save the finished run to .*No space left"):
        result = sweep(**TINY)
    assert len(result.runs) == 4 and all(len(h.test_error) == 2 for h in result.runs.values())
    assert not list(isolated_cache.glob("*.npz")) and not list(isolated_cache.glob(".tmp-*"))


def test_train_one_adds_a_lambda_under_the_same_protocol():
    result = sweep(**TINY)
    history = train_one(result, "psp", 3e-3, progress=False)
    assert result.lambdas("psp") == [1e-3, 3e-3, 1e-2]
    assert history.config == result.config_for("psp", 3e-3)
    data = load_dataset("synthetic-mnist", train_subset=200, test_subset=100)
    cached = cache.load(history.config, data.fingerprint)
    assert cached is not None and cached.test_error == history.test_error
    with pytest.raises(ValueError):
        train_one(result, "psp", 0.0)
    with pytest.raises(ValueError):
        train_one(result, "dropout", 1e-3)


def test_seeds_train_every_lambda_per_seed_through_the_cache(count_training):
    result = sweep(**TINY, seeds=3)
    assert len(count_training) == 3 * 4 and result.seeds == 3
    for key in result.runs:
        runs = result.histories(*key)
        assert [h.config.seed for h in runs] == [0, 1, 2]
        assert runs[0] is result.runs[key]  # the first seed is what the explorer draws
        assert sorted(runs[0].weights) == [1, 2]  # its snapshots, for the histograms
        assert all(h.config.snapshot_epochs == () for h in runs[1:])
    per_seed = dict(result.late_errors("psp"))
    assert result.final_errors("psp") == [(lam, pytest.approx(np.mean(e)))
                                         for lam, e in per_seed.items()]
    assert "± " in result.table() and "(3)" in result.table()
    again = sweep(**TINY, seeds=3)  # a second call loads all 12 from the cache
    assert len(count_training) == 12 and again.late_errors("psp") == result.late_errors("psp")
    one = sweep(**TINY)  # one seed is the first seed of the three: nothing trained
    assert len(count_training) == 12 and one.seeds == 1
    with pytest.raises(ValueError, match="seeds"):
        sweep(**TINY, seeds=0)


def test_train_one_trains_the_sweeps_seeds(count_training):
    result = sweep(**TINY, seeds=2)
    before = len(count_training)
    train_one(result, "psp", 3e-3, progress=False)
    assert len(count_training) == before + 2
    assert [h.config.seed for h in result.histories("psp", 3e-3)] == [0, 1]


def test_reading_names_the_best_lambda_and_the_noise():
    result = sweep(**TINY)
    text = reading(result, smoke=True)
    assert text.startswith("SMOKE RUN")
    lines = {line.split(":")[0]: line for line in text.splitlines()[1:]}
    for reg, name in (("psp", "PSP"), ("l2", "l2")):
        lam, best = min(result.final_errors(reg), key=lambda item: item[1])
        largest = result.final_errors(reg)[-1]
        line = lines[name]  # the best lambda, its error, and the largest lambda's error
        assert f"{best:.2f}" in line and f"λ={lam:g}" in line and f"{largest[1]:.2f}" in line
        verdicts = ("U-shaped", "no clear U", "flat within the noise")
        assert sum(v in line for v in verdicts) == 1
    n_test = TINY["test_subset"]
    noise = 2 * standard_error(result.baseline.final_error(), n_test)
    assert f"±{noise:.1f}" in lines["Noise"] and str(n_test) in lines["Noise"]


def test_cli_sweep_prints_the_table_and_writes_the_u_curve(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["sweep", "--dataset", "synthetic-mnist", "--epochs", "1",
                     "--psp-lambdas", "1e-3", "1e-2", "--l2-lambdas", "1e-4",
                     "--train-subset", "200", "--test-subset", "100", "--device", "cpu",
                     "--seed", "1", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| λ | PSP: test error % | l2: test error % |" in captured.out
    assert "lowest PSP" in captured.out
    png = out / "sweep_u_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sweep_table.md").read_text().startswith("| λ |")
    assert f"wrote {png}" in captured.err


def test_cli_sweep_reports_a_bad_lambda_in_one_line(tmp_path, capsys):
    code = cli.main(["sweep", "--dataset", "synthetic-mnist", "--psp-lambdas", "-1",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("psp-lite: error: lambda must be") and err.count("\n") == 1
