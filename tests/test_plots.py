"""The figures and tables of `psp_lite.report.figures`, on hand-made run histories (no training)."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import psp_lite.analytic.cross_layer
import psp_lite.experiments.comparison
import psp_lite.report
import psp_lite.training
from psp_lite import experiments
from psp_lite.report import figures as plots
from psp_lite.training.config import paper_config
from psp_lite.training.history import RunHistory

LAYERS = ("conv1", "conv2", "fc1", "fc2")
SIZES = {"conv1": 500, "conv2": 25000, "fc1": 40000, "fc2": 5000}


def fake_history(reg: str, seed: int, epochs: int = 5, dataset: str = "mnist",
                 model: str | None = None) -> RunHistory:
    """A history with made-up but well-formed numbers; PSP's weights twice as wide as l2's."""
    rng = np.random.default_rng(100 * seed + len(reg))
    config = paper_config(dataset, reg, model, epochs=epochs, seed=seed, device="cpu")
    err = list(2.0 - np.arange(epochs) * 0.2 + rng.uniform(0, 0.1, epochs))
    z2 = {name: list(np.exp(rng.normal(size=epochs))) for name in LAYERS}
    scale = 2.0 if reg == "psp" else 1.0
    weights = {f"{n}.weight": (scale * rng.normal(size=SIZES[n])).astype(np.float32)
               for n in LAYERS}
    weights.update({f"{n}.bias": np.zeros(3, np.float32) for n in LAYERS})
    return RunHistory(config, train_loss=[1.0] * epochs, test_loss=[1.0] * epochs,
                      test_error=err, z2=[float(np.mean(v)) for v in zip(*z2.values(),
                                                                           strict=True)],
                      z2_layers=z2, seconds=[2.0] * epochs, weights={epochs: weights},
                      device="cpu (2 threads)")


def fake_results(seeds: int, regs=("none", "l2", "psp"), **kw) -> experiments.Results:
    return {r: [fake_history(r, s, **kw) for s in range(seeds)] for r in regs}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def regime_lines(ax) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith(("_", plots.PAPER_PREFIX))]


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.mark.parametrize("seeds", [1, 3])
def test_fig2a_one_line_per_regime_and_a_band_only_with_several_seeds(seeds):
    results = fake_results(seeds)
    fig = plots.test_error_curves(results)
    (ax,) = fig.axes
    lines = regime_lines(ax)
    assert [ln.get_label() for ln in lines] == [
        "no regularization", "l2 (weight decay), λ=0.0001", "PSP, λ=0.001"]
    assert [ln.get_color() for ln in lines] == ["tab:gray", "tab:blue", "tab:red"]
    np.testing.assert_allclose(lines[2].get_ydata(),
                               np.mean([h.test_error for h in results["psp"]], axis=0))
    assert len(bands(ax)) == (3 if seeds > 1 else 0)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test error [%]"
    paper = [ln for ln in ax.get_lines() if ln.get_label().startswith(plots.PAPER_PREFIX)]
    assert sorted(ln.get_ydata()[0] for ln in paper) == [0.50, 0.64, 0.71]


def test_fig2a_band_spans_min_to_max_over_seeds():
    results = fake_results(3, regs=("psp",))
    (band,) = bands(plots.test_error_curves(results).axes[0])
    ys = band.get_paths()[0].vertices[:, 1]
    curves = np.array([h.test_error for h in results["psp"]])
    assert ys.min() == pytest.approx(curves.min()) and ys.max() == pytest.approx(curves.max())


def test_fig2a_draws_into_a_given_axis_and_skips_paper_lines_when_asked():
    fig, ax = plt.subplots()
    assert plots.test_error_curves(fake_results(1), ax, paper=False) is fig
    assert len(ax.get_lines()) == 3


@pytest.mark.parametrize("seeds", [1, 2])
def test_fig2b_log_scale_mean_panel_plus_one_panel_per_layer(seeds):
    results = fake_results(seeds)
    fig = plots.z2_curves(results)
    assert [ax.get_title() for ax in fig.axes] == ["mean over layers (Fig. 2b)", *LAYERS]
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        assert len(regime_lines(ax)) == 3
        assert len(bands(ax)) == (3 if seeds > 1 else 0)
    assert "z²" in fig.axes[0].get_ylabel()
    # the line is the geometric mean over seeds (the mean of the logs)
    expected = np.exp(np.mean(np.log([h.z2_layers["fc1"] for h in results["l2"]]), axis=0))
    np.testing.assert_allclose(regime_lines(fig.axes[3])[1].get_ydata(), expected)
    assert len(plots.z2_curves(results, per_layer=False).axes) == 1


def test_fig3_one_shared_axis_per_layer_with_both_regimes():
    results = fake_results(1, regs=("l2", "psp"))
    fig = plots.weight_histograms(results)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" ")[0] for ax in axes] == list(LAYERS)
    for ax in axes:
        labels = [ln.get_label() for ln in regime_lines(ax)]
        assert labels == ["l2 (weight decay)", "PSP"]  # one KDE line per regime
        steps = [ln for ln in ax.get_lines() if ln.get_label() == "_nolegend_"]
        assert len(steps) == 2  # one step outline per regime (fills blended into one colour)
        assert ax.get_xlabel() == "weight value"
    # PSP's fake weights are twice as wide, so its KDE peak is lower
    l2, psp = regime_lines(axes[0])
    assert psp.get_ydata().max() < l2.get_ydata().max()


def test_fig3_equal_weights_draw_equal_density_lines():
    """Each KDE line is drawn from a sample of the layer's weights; the same sample positions for
    every regularizer, so two runs with the same weights never show a difference."""
    results = fake_results(1, regs=("l2", "psp"))
    fig = plots.weight_histograms({"l2": results["l2"], "psp": results["l2"]}, layers=["fc1"])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    l2, psp = regime_lines(ax)
    np.testing.assert_array_equal(l2.get_ydata(), psp.get_ydata())
    plt.close("all")


def test_fig3_without_kde_labels_the_histograms_and_rejects_unknown_layers():
    results = fake_results(1, regs=("l2", "psp"))
    fig = plots.weight_histograms(results, kde=False, layers=["fc1"])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["l2 (weight decay)", "PSP"]
    with pytest.raises(ValueError, match="no weights named"):
        plots.weight_histograms(results, layers=["conv9"])


def test_moments_by_hand():
    # [-1, 1, -1, 1]: mean 0, m2 = 1, m4 = 1 -> std 1, excess kurtosis 1 - 3 = -2
    assert plots.moments(np.array([-1.0, 1.0, -1.0, 1.0])) == (1.0, -2.0)
    # [0, 0, 0, 4]: mean 1, deviations -1,-1,-1,3: m2 = 12/4 = 3, m4 = (1+1+1+81)/4 = 21
    std, kurt = plots.moments(np.array([0.0, 0.0, 0.0, 4.0]))
    assert std == pytest.approx(math.sqrt(3.0))
    assert kurt == pytest.approx(21.0 / 9.0 - 3.0)


def test_weight_spread_averages_hand_computed_moments_over_seeds():
    results = fake_results(2, regs=("l2", "psp"))
    a = np.array([-1.0, 1.0, -1.0, 1.0], np.float32)  # std 1, kurtosis -2
    b = np.array([0.0, 0.0, 0.0, 4.0], np.float32)  # std sqrt(3), kurtosis 21/9 - 3
    for seed, w in enumerate((a, b)):
        results["psp"][seed].weights[5]["conv1.weight"] = w
        results["l2"][seed].weights[5]["conv1.weight"] = 2 * w
    rows = plots.weight_spread(results)
    assert [(r.layer, r.regularizer) for r in rows][:4] == [
        ("conv1", "l2"), ("conv1", "psp"), ("conv2", "l2"), ("conv2", "psp")]
    psp = rows[1]
    assert (psp.count, psp.seeds) == (4, 2)
    assert psp.std == pytest.approx((1.0 + math.sqrt(3.0)) / 2)
    assert psp.kurtosis == pytest.approx((-2.0 + 21.0 / 9.0 - 3.0) / 2)
    assert rows[0].std == pytest.approx(2 * psp.std)  # scaling changes std, not kurtosis
    assert rows[0].kurtosis == pytest.approx(psp.kurtosis)
    table = plots.spread_markdown(rows)
    assert "| conv1 | 4 |" in table and "std ratio PSP / l2" in table
    assert "| 0.50 |" in table  # conv1's ratio, 1/2


def test_spread_reading_reports_what_the_numbers_show():
    results = fake_results(1, regs=("l2", "psp"))  # PSP wider in every layer
    rows = plots.weight_spread(results)
    ratios = {r.layer: r.std for r in rows if r.regularizer == "psp"}
    ratios = {k: v / next(r.std for r in rows if r.layer == k and r.regularizer == "l2")
              for k, v in ratios.items()}
    text = psp_lite.report.spread_reading(rows, smoke=False)
    for layer, q in ratios.items():  # each layer's number and verdict
        assert q > 1.1 and f"{q:.2f}" in text
        assert re.search(rf"{layer}: PSP (\w+)", text).group(1) == "wider"
    # the paper: PSP wider except in conv1, so 3 of the 4 layers agree with it
    assert re.search(r"(\d+) of the (\d+) layers", text).groups() == ("3", "4")
    assert "SMOKE" not in text
    smoke = psp_lite.report.spread_reading(rows, smoke=True)
    assert smoke.startswith("SMOKE RUN") and not re.search(r"\d+ of the \d+ layers", smoke)
    for seed_results in results.values():  # the same weights under both: no difference
        seed_results[0].weights[5] = results["l2"][0].weights[5]
    same = psp_lite.report.spread_reading(plots.weight_spread(results), smoke=False)
    assert re.search(r"conv1: PSP about as wide", same) and "1.00" in same
    ours = same.split("The paper")[0]
    assert "wider" not in ours and "narrower" not in ours
    assert re.search(r"(\d+) of the (\d+) layers", same).groups() == ("0", "4")


def test_table2_curves_by_model_and_bars_beside_the_paper():
    by_model = {m: fake_results(1, regs=("l2", "psp"), dataset="cifar10", model=m, epochs=3)
                for m in ("resnet18", "allcnnc")}
    fig = plots.curves_by_model(by_model)
    assert len(fig.axes) == 4
    top, bottom = fig.axes[:2], fig.axes[2:]
    assert all(len(regime_lines(ax)) == 2 for ax in fig.axes)
    assert all(ax.get_yscale() == "log" for ax in bottom)
    assert top[0].get_title().startswith("ResNet-18")  # as the paper writes it
    rows = [r for m in by_model.values() for r in psp_lite.report.summarize(m)]
    bars = plots.comparison_bars(rows)
    (ax,) = bars.axes
    assert len(ax.patches) == 2 * len(rows)  # ours and the paper's for every row
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert {5.1, 4.6, 9.1, 8.6} <= set(heights)
    # one legend entry per colour and one for the hatched bars, below the panel
    assert [t.get_text() for t in bars.legends[0].get_texts()] == [
        "ours: l2 (weight decay)", "ours: PSP", "the paper's"]
    assert "hatched" in ax.get_title()
    # a single epoch still gets whole-numbered epoch ticks (MaxNLocator fell back to 0.945...)
    one = plots.curves_by_model({"resnet18": fake_results(1, regs=("l2", "psp"), epochs=1,
                                                          dataset="cifar10", model="resnet18")})
    one.draw_without_rendering()
    for panel in one.axes:
        ticks = [t for t in panel.get_xticks() if panel.get_xlim()[0] <= t <= panel.get_xlim()[1]]
        assert ticks == [1.0], ticks


def _report_figures(*, smoke: bool) -> dict[str, Figure]:
    two = fake_results(2, regs=("l2", "psp"))
    by_model = {m: fake_results(1, regs=("l2", "psp"), dataset="cifar10", model=m, epochs=3)
                for m in ("resnet18", "allcnnc", "mobilenetv2")}
    rows = [r for m in by_model.values() for r in psp_lite.report.summarize(m)]
    return {"fig2a": plots.test_error_curves(two, smoke=smoke),
            "fig2b": plots.z2_curves(two, smoke=smoke),
            "fig3": plots.weight_histograms(two, smoke=smoke),
            "table2": plots.curves_by_model(by_model, smoke=smoke),
            "bars": plots.comparison_bars(rows, smoke=smoke),
            "beside": plots.beside(fake_results(1), fake_results(1), smoke=smoke)}


def test_a_smoke_runs_figures_say_so_above_everything_else():
    """With smoke=True each report figure carries SMOKE_STAMP once, above its title and panels,
    over no other text; without it, none does."""
    from psp_lite.report import style

    for name, fig in _report_figures(smoke=True).items():
        fig.draw_without_rendering()
        (stamp,) = [t for t in style.texts(fig) if t.get_text() == style.SMOKE_STAMP]
        others = [t for t in style.texts(fig) if t is not stamp]
        low = stamp.get_window_extent().y0
        assert all(t.get_window_extent().y1 <= low + 1 for t in others if t.axes is None
                   and t.get_window_extent().y1 > fig.bbox.height / 2), name
        assert all(ax.get_window_extent().y1 < low for ax in fig.axes), name
        assert not style.overlapping_texts(fig), name
    for name, fig in _report_figures(smoke=False).items():
        assert style.SMOKE_STAMP not in [t.get_text() for t in style.texts(fig)], name
    plt.close("all")


def test_report_figures_are_readable_when_projected():
    """04-07's figures, as drawn: at least 100 dpi, no wider than a notebook column (so shown
    unscaled), no text under 9 pt, every legend outside every panel; the <z²> panels three a
    row (five side by side, shrunk to the column, were unreadable)."""
    from psp_lite.report import style

    figures = _report_figures(smoke=False)
    for name, fig in figures.items():
        fig.draw_without_rendering()
        assert fig.dpi >= 100 and fig.get_size_inches()[0] <= style.MAX_WIDTH_IN, name
        small = [(t.get_text(), t.get_fontsize()) for t in style.texts(fig)
                 if t.get_fontsize() < style.MIN_POINTS]
        assert not small, f"{name}: text under {style.MIN_POINTS} pt: {small[:3]}"
        assert not style.overlapping_texts(fig), name
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent()
            assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes), name
    z2 = figures["fig2b"].axes
    assert len({round(ax.get_position().y0, 3) for ax in z2}) == 2  # 5 panels in 2 rows
    plt.close("all")

