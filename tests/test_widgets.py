"""The lambda explorer without a browser: its drawing is a function of the slider state, its
callbacks record what they drew, and the notebook's sliders can be moved from the kernel."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from notebook_runner import run_notebook

from psp_lite.experiments.lambda_sweep import sweep
from psp_lite.explorer.figure import ExplorerFigure
from psp_lite.explorer.layout import PROJECTOR, SCREEN
from psp_lite.explorer.widgets import ExplorerState, LambdaExplorer, format_lambda
from psp_lite.report.lambda_curves import u_curve
from psp_lite.report.style import COLORS, LABELS, drawn_texts, overlapping_texts
from psp_lite.training.history import SweepResult

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_lambda_explorer.ipynb"


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> SweepResult:
    mp = pytest.MonkeyPatch()
    mp.setenv("PSP_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield sweep("synthetic-mnist", (1e-4, 1e-3, 1e-2), (1e-4, 1e-2), epochs=3,
                    train_subset=200, test_subset=100, device="cpu", progress=False)
    finally:
        mp.undo()


@pytest.fixture
def explorer(result) -> LambdaExplorer:
    return LambdaExplorer(result)


def test_png_is_a_function_of_the_state_and_is_recorded(explorer):
    a = ExplorerState("psp", 1e-3, 3)
    b = ExplorerState("psp", 1e-2, 3)
    first = explorer.png(a)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.last.state == a
    assert explorer.last.png_sha1 == hashlib.sha1(first).hexdigest()
    explorer.png(b)
    assert explorer.last.png_sha1 != hashlib.sha1(first).hexdigest()
    assert explorer.png(a) == first  # back to the same state: the same picture
    assert [d.state for d in explorer.draws] == [a, b, a]


def test_render_puts_the_chosen_run_into_the_highlight_and_histograms(explorer, result):
    state = ExplorerState("l2", 1e-2, 1)
    fig = explorer.render(state)
    h = result.get("l2", 1e-2)
    np.testing.assert_allclose(explorer.err_hl.get_ydata(), h.test_error)
    np.testing.assert_allclose(explorer.z2_hl.get_ydata(), h.z2)
    assert list(explorer.err_marker.get_xdata()) == [1, 1]
    counts, _ = np.histogram(h.weights[1]["fc1.weight"], bins=explorer.edges["fc1.weight"])
    layer = explorer.layers.index("fc1.weight")
    drawn = np.nan_to_num(explorer.hist_run[layer].get_ydata()[:-1])
    np.testing.assert_allclose(drawn * np.diff(explorer.edges["fc1.weight"]) *
                               h.weights[1]["fc1.weight"].size, counts)
    assert "l2, λ = 1.0e-02, first seed, epoch 1" in explorer.suptitle.get_text()
    assert fig is explorer.figure and explorer.last.png_sha1 is None
    # the lambda curve: the chosen regularizer's line in front, the other one faded
    assert explorer.u_lines["l2"].get_alpha() == 1.0 and explorer.u_lines["psp"].get_alpha() < 1


def test_the_figure_without_widgets_draws_what_the_explorer_shows(explorer, result):
    state = ExplorerState("psp", 1e-4, 2)
    assert ExplorerFigure(result).png(state) == explorer.png(state)


def test_lambda_zero_is_the_unregularized_run_and_epochs_are_clipped(explorer, result):
    explorer.png(ExplorerState("psp", 0.0, 99))
    assert explorer.last.state == ExplorerState("psp", 0.0, 3)
    np.testing.assert_allclose(explorer.err_hl.get_ydata(), result.baseline.test_error)
    assert explorer.suptitle.get_text().startswith("no regularization, λ = 0")


def test_states_outside_the_sweep_are_refused_clearly(explorer):
    with pytest.raises(KeyError, match="not in the sweep; train it first"):
        explorer.png(ExplorerState("psp", 5e-3, 1))
    with pytest.raises(ValueError, match="regularizer"):
        explorer.png(ExplorerState("dropout", 1e-3, 1))


def test_sliders_drive_the_callbacks_and_change_the_image(explorer, result):
    explorer.ui(ExplorerState("psp", 1e-3, 3))
    c = explorer.controls
    assert [v for _, v in c.lam.options] == [0.0, 1e-4, 1e-3, 1e-2]
    assert [label for label, _ in c.lam.options][:2] == ["0 (none)", format_lambda(1e-4)]
    image = c.image.value
    n = len(explorer.draws)

    c.lam.value = 1e-2  # what a slider move in the browser does in the kernel
    assert explorer.last.state == ExplorerState("psp", 1e-2, 3)
    assert c.image.value != image and hashlib.sha1(c.image.value).hexdigest() == \
        explorer.last.png_sha1
    assert len(explorer.draws) == n + 1  # one change, one redraw

    c.epoch.value = 2
    assert explorer.last.state == ExplorerState("psp", 1e-2, 2)

    c.reg.value = "l2"  # options follow the regularizer; the nearest lambda is kept
    assert [v for _, v in c.lam.options] == [0.0, 1e-4, 1e-2]
    assert explorer.last.state == ExplorerState("l2", 1e-2, 2)
    assert len(explorer.draws) == n + 3
    assert "test error" in c.status.value and "redraw" in c.status.value


@pytest.fixture
def own_explorer(result) -> LambdaExplorer:
    """An explorer on a copy of the module's sweep, for tests that add runs to it."""
    copy = SweepResult(base=result.base, runs=dict(result.runs), diverged=list(result.diverged))
    return LambdaExplorer(copy)


def test_train_button_adds_a_new_lambda_to_the_slider(own_explorer, tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    explorer, result = own_explorer, own_explorer.result
    explorer.ui(ExplorerState("psp", 1e-3, 3))
    c = explorer.controls
    c.new_lam.value = 3e-3
    c.train_button.click()
    assert 3e-3 in [v for _, v in c.lam.options]
    assert c.lam.value == 3e-3 and explorer.last.state == ExplorerState("psp", 3e-3, 3)
    assert result.get("psp", 3e-3).config == result.config_for("psp", 3e-3)
    assert "added λ=0.003" in c.status.value and not c.train_button.disabled
    assert len(explorer.u_lines["psp"].get_xdata()) == 4  # the λ curve gained the point
    xs, ys = (list(a) for a in explorer.u_lines["psp"].get_data())
    assert ys[xs.index(3e-3)] == pytest.approx(result.get("psp", 3e-3).late_error())

    c.new_lam.value = -1.0  # a bad value: a message in the UI, no exception, nothing added
    c.train_button.click()
    assert "could not train" in c.status.value and len(result.lambdas("psp")) == 4


@pytest.fixture(scope="module")
def redraw_timing():
    """benchmarks/redraw_timing.py, the harness that bench_widget_redraw.py times with."""
    spec = importlib.util.spec_from_file_location("redraw_timing",
                                                  ROOT / "benchmarks" / "redraw_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timed_redraws_draw_every_state_of_the_tour_and_restore_the_sliders(explorer,
                                                                             redraw_timing):
    start = ExplorerState("psp", 1e-4, 2)
    explorer.ui(start)
    tour = redraw_timing.tour(explorer, 20)
    n = len(explorer.draws)
    # how fast is measured in benchmarks/, not here
    seconds = redraw_timing.time_redraws(explorer, 20)
    ordered = sorted(seconds)
    assert redraw_timing.median_ms(seconds) == pytest.approx(500 * (ordered[9] + ordered[10]))
    assert len(seconds) == 20 and all(s > 0 for s in seconds)
    assert tour[0] != start and all(a != b for a, b in zip(tour, tour[1:], strict=False))
    assert {s.regularizer for s in tour} == {"psp", "l2"} and {s.epoch for s in tour} == {1, 2, 3}
    # one redraw per slider change, of the state the tour asked for, then the sliders put back
    assert [d.state for d in explorer.draws[n:]] == [*tour, start]
    assert hashlib.sha1(explorer.controls.image.value).hexdigest() == explorer.last.png_sha1


def test_u_curve_puts_each_regularizer_on_its_own_lambda_axis(result):
    fig = u_curve(result)
    psp, l2 = fig.axes[:2]
    assert psp is not l2 and psp.get_xscale() == l2.get_xscale() == "log"
    assert "PSP" in psp.get_xlabel() and "l2" in l2.get_xlabel()
    assert [line.get_label() for line in psp.get_lines()] == [LABELS["psp"], LABELS["none"],
                                                               "the paper's λ"]
    assert [line.get_label() for line in l2.get_lines()][0] == LABELS["l2"]
    assert list(psp.get_lines()[0].get_xdata()) == result.lambdas("psp")
    assert list(l2.get_lines()[0].get_xdata()) == result.lambdas("l2")
    # the paper's λ (Sec. 4.1) dotted on each panel; the error axis linear, percent as read
    for ax, lam in ((psp, 1e-3), (l2, 1e-4)):
        dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert [list(ln.get_xdata()) for ln in dotted] == [[lam, lam]]
    assert psp.get_yscale() == "linear"
    plt.close("all")


def test_u_curve_marks_a_diverged_lambda_where_it_has_no_error(result):
    """A λ whose loss became NaN has no late-epoch error: an X at the top of its panel, in the
    legend once, so the class sees where training broke instead of a curve that just stops."""
    broken = SweepResult(base=result.base, runs=dict(result.runs),
                         diverged=[("psp", 10.0), ("l2", 3.0)])
    fig = u_curve(broken)
    psp, l2 = fig.axes[:2]
    for ax, lam in ((psp, 10.0), (l2, 3.0)):
        (x_mark,) = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
        assert list(x_mark.get_xdata()) == [lam] and 0.85 < x_mark.get_ydata()[0] < 1
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels.count("diverged (loss NaN)") == 1
    plt.close("all")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> SweepResult:
    """A 3-seed sweep: what notebook 08's lambda panels draw their band from."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PSP_LITE_CACHE", str(tmp_path_factory.mktemp("cache3")))
    try:
        yield sweep("synthetic-mnist", (1e-3, 1e-1), (1e-2,), epochs=5, train_subset=200,
                    test_subset=100, device="cpu", progress=False, seeds=3)
    finally:
        mp.undo()


def _band(ax) -> np.ndarray:
    """The (x, y) vertices of the band (fill_between) on `ax` in its regularizer's colour."""
    polys = [c for c in ax.collections if c.get_paths()]
    assert polys, "no band drawn"
    return polys[0].get_paths()[0].vertices


def test_lambda_panels_show_the_mean_and_a_min_max_band_over_three_seeds(seeded):
    explorer = ExplorerFigure(seeded)
    explorer.png(explorer.default_state())
    for reg in ("psp", "l2"):
        ax = explorer.ax_u[reg]
        per_seed = dict(seeded.late_errors(reg))
        assert all(len(v) == 3 for v in per_seed.values())
        line = explorer.u_lines[reg]
        assert line.axes is ax  # each regularizer on its own lambda axis
        np.testing.assert_allclose(line.get_ydata(), [np.mean(v) for v in per_seed.values()])
        band = _band(ax)
        ys = band[:, 1]
        assert ys.min() == pytest.approx(min(min(v) for v in per_seed.values()))
        assert ys.max() == pytest.approx(max(max(v) for v in per_seed.values()))
    assert explorer.ax_u["psp"].get_xlabel() != explorer.ax_u["l2"].get_xlabel()
    # the one late-epoch rule (here the mean of epochs 4-5), not the last epoch's error
    assert seeded.late_window() == "epochs 4-5"
    last = [np.mean([h.test_error[-1] for h in seeded.histories("psp", lam)])
            for lam in seeded.lambdas("psp")]
    assert not np.allclose(explorer.u_lines["psp"].get_ydata(), last)


def test_the_error_range_is_never_tighter_than_the_noise(seeded):
    from psp_lite.report.readings import standard_error

    explorer = ExplorerFigure(seeded)
    lo, hi = explorer.ax_u["psp"].get_ylim()
    errors = [e for reg in ("psp", "l2", "none") for _, es in
              ([(0, [h.late_error() for h in seeded.histories("none", 0)])] if reg == "none"
               else seeded.late_errors(reg)) for e in es]
    noise = 4 * standard_error(float(np.median(errors)), seeded.base.test_subset)
    assert hi - lo >= noise - 1e-9
    assert lo <= min(errors) and hi >= max(errors)


LAYOUTS = pytest.mark.parametrize("layout", [SCREEN, PROJECTOR], ids=["screen", "projector"])


@LAYOUTS
def test_the_picture_is_readable_when_projected(result, layout):
    """At least 100 dpi, shown at its true size (96 CSS px per inch) and as wide in either
    layout, every label >= 9 pt (13.5 pt on a projector), no text over another."""
    from matplotlib.text import Text

    explorer = LambdaExplorer(result, layout=layout)
    explorer.ui(explorer.default_state())
    png = explorer.controls.image.value
    width, height = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
    assert explorer.dpi >= 100
    assert (width, height) == (round(explorer.figsize[0] * explorer.dpi),
                               round(explorer.figsize[1] * explorer.dpi))
    assert explorer.controls.image.layout.width == f"{round(explorer.figsize[0] * 96)}px"
    explorer.canvas.draw()  # tick labels exist once drawn
    texts = [t for t in explorer.figure.findobj(Text) if t.get_visible() and t.get_text()]
    least = 9 * layout.text_scale
    small = {t.get_text(): t.get_fontsize() for t in texts if t.get_fontsize() < least}
    assert len(texts) > 30 and not small, small
    assert explorer.shown_width_px == round(SCREEN.figsize[0] * 96)
    assert not overlapping_texts(explorer.figure)
    inside = explorer.figure.bbox.padded(1)
    boxes = {t.get_text(): t.get_window_extent() for t in drawn_texts(explorer.figure)}
    cut = [text for text, box in boxes.items() if box.x0 < inside.x0 or box.x1 > inside.x1
           or box.y0 < inside.y0 or box.y1 > inside.y1]
    assert not cut, cut  # a legend too wide for the figure loses its last column
    assert layout.figsize[1] * 96 <= 910  # a projected 1080p browser window shows it whole


def test_lambda_zero_is_drawn_gray_and_marked_on_the_left_edge(explorer, result):
    explorer.render(ExplorerState("psp", 0.0, 3))
    assert explorer.hist_run[0].get_color() == COLORS["none"]
    xs, ys = explorer.u_dots["psp"].get_data()
    assert list(xs) == [explorer.ax_u["psp"].get_xlim()[0]]  # not on the smallest PSP λ
    explorer.render(ExplorerState("psp", 1e-2, 3))
    assert explorer.hist_run[0].get_color() == COLORS["psp"]


def test_the_lambda_panels_draw_the_activitys_learning_cutoff(explorer, result):
    base = np.mean([h.late_error() for h in result.histories("none", 0.0)])
    for ax in explorer.ax_u.values():
        levels = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "-."]
        assert levels == [pytest.approx(base + 0.5 * (90 - base))]
        assert ax.get_ylim()[1] > levels[0]


@LAYOUTS
def test_legends_sit_off_the_data(result, layout):
    explorer = ExplorerFigure(result, layout=layout)
    explorer.png(explorer.default_state())
    assert all(ax.get_legend() is None for ax in explorer.figure.axes)
    renderer = explorer.canvas.get_renderer()
    (legend,) = explorer.figure.legends
    box = legend.get_window_extent(renderer)
    for ax in explorer.figure.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()


PROBE = """
import json
c = explorer.controls
before = dict(sha=explorer.last.png_sha1, image=hash(c.image.value), n=len(explorer.draws))
values = [v for _, v in c.lam.options]
new_lam = values[(values.index(c.lam.value) + 1) % len(values)]
c.lam.value = new_lam
c.epoch.value = 1
print("PROBE" + json.dumps(dict(
    before=before, new_lam=new_lam, n=len(explorer.draws),
    states=[[d.state.regularizer, d.state.lam, d.state.epoch] for d in explorer.draws[-2:]],
    shas=[d.png_sha1 for d in explorer.draws[-2:]], image=hash(c.image.value),
    image_sha=__import__("hashlib").sha1(c.image.value).hexdigest(),
    readout=c.lam.label)))
"""


@pytest.mark.notebook
def test_notebook_sliders_set_from_the_kernel_redraw(tmp_path, monkeypatch):
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    def notebook_and_probe() -> nbformat.NotebookNode:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        return nb

    nb = run_notebook(notebook_and_probe, NOTEBOOK.parent, NOTEBOOK.name).notebook
    probe = nb.cells[-1]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    widget_views = [o for c in nb.cells for o in c.get("outputs", [])
                    if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_views, "the explorer cell must display its widgets"
    text = "".join(o.get("text", "") for o in probe.outputs)
    report = json.loads(text.split("PROBE", 1)[1])
    assert report["n"] == report["before"]["n"] + 2  # two slider changes, two redraws
    (reg1, lam1, _), (reg2, lam2, epoch2) = report["states"]
    assert lam1 == lam2 == report["new_lam"] and epoch2 == 1
    assert report["shas"][0] != report["before"]["sha"] != report["shas"][1]
    assert report["image"] != report["before"]["image"]
    assert report["image_sha"] == report["shas"][1]  # the widget shows the last drawing
    assert report["readout"] == format_lambda(report["new_lam"])


# ----------------------------------------------------------------------------- the class activity


def _with(result: SweepResult, changes: dict) -> SweepResult:
    """A copy of `result` whose runs at the given keys are replaced (all seeds) by `changes`."""
    import dataclasses

    out = SweepResult(base=result.base, runs=dict(result.runs), diverged=list(result.diverged),
                      seed_runs={k: list(v) for k, v in result.seed_runs.items()})
    for key, fields in changes.items():
        out.seed_runs[key] = [dataclasses.replace(h, **fields(h)) for h in out.histories(*key)]
        out.runs[key] = out.seed_runs[key][0]
    return out


def test_the_learning_limit_is_where_the_error_passes_halfway_to_chance(seeded):
    from psp_lite.explorer.activity import activity_pair, activity_reading, learning_limit

    base = np.mean([h.late_error() for h in seeded.histories("none", 0.0)])
    dead = base + 0.6 * (90 - base)
    broken = _with(seeded, {("psp", 1e-1): lambda h: {"test_error": [dead] * 5}})
    assert learning_limit(broken, "psp") == 1e-1
    assert activity_pair(broken)[0] == 1e-3  # the largest PSP λ that still learns
    broken.diverged.append(("l2", 1.0))
    assert learning_limit(broken, "l2") == (1.0 if learning_limit(seeded, "l2") is None
                                            else learning_limit(seeded, "l2"))
    text = activity_reading(broken)
    assert "PSP: stops learning at λ=0.1" in text and "diverged" in text
    assert "<z²>" in text
    # the third answer: conv1's and fc1's spread at the pair, as the contrast table has it
    from psp_lite.explorer.activity import weight_contrast

    rows = {r.layer: r for r in weight_contrast(broken, *activity_pair(broken))}
    ratio = rows["fc1"].std["psp"] / rows["fc1"].std["none"]
    assert f"PSP λ=0.001 conv1 {rows['conv1'].std['psp'] / rows['conv1'].std['none']:.2f}" \
        in text.splitlines()[-1] and f"fc1 {ratio:.2f}" in text.splitlines()[-1]


def test_a_u_needs_a_difference_the_seeds_resolve(seeded):
    """The λ curve's reading calls a curve U-shaped only when each end's seed-paired difference
    from the best λ is more than two standard errors from zero: a mean gap beyond the test-set
    noise that one seed contradicts is no U."""
    from psp_lite.report.readings import sweep_reading

    def flat(error):
        return lambda h: {"test_error": [float(error(h.config.seed))] * seeded.epochs}

    def psp_line(changes):
        text = sweep_reading(_with(seeded, changes), smoke=False)
        return next(line for line in text.splitlines() if line.startswith("PSP:"))

    ends = {("none", 0.0): flat(lambda s: 50), ("psp", 1e-1): flat(lambda s: 90)}
    agree = psp_line({**ends, ("psp", 1e-3): flat(lambda s: 20 + s)})
    assert "U-shaped" in agree and "per seed -30.00, -29.00, -28.00" in agree, agree
    split = psp_line({**ends, ("psp", 1e-3): flat(lambda s: (20, 60, 20)[s])})
    assert "no clear U" in split and "per seed -30.00, +10.00, -30.00" in split, split


def test_the_weight_contrast_measures_a_difference_only_where_there_is_one(seeded):
    from psp_lite.explorer.activity import contrast_table, total_variation, weight_contrast

    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert total_variation(a, a) == 0.0
    assert total_variation(a, a + 100) == pytest.approx(1.0)
    halved = _with(seeded, {("l2", 1e-2): lambda h: {"weights": {
        e: {n: 0.5 * w for n, w in ws.items()} for e, ws in h.weights.items()}}})
    untouched = {r.layer: r for r in weight_contrast(seeded, 1e-3, 1e-2)}
    for r in weight_contrast(halved, 1e-3, 1e-2):
        assert r.std["l2"] == pytest.approx(0.5 * untouched[r.layer].std["l2"], rel=1e-6)
        assert r.tv_l2_psp > untouched[r.layer].tv_l2_psp + 0.2
    table = contrast_table(halved, 1e-3, 1e-2)
    assert "| conv1 | 1 |" in table and f"| conv1 | {seeded.epochs} |" in table
    assert "| 0.50 |" in table


def test_without_a_pack_no_line_announces_a_pack_figure():
    import nbformat

    from psp_lite.report import sweep_beside_pack

    caption, fig = sweep_beside_pack(None, None)
    assert fig is None and caption.startswith("No results pack") and "reproduce all" in caption
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert not any("Your sweep (dotted)" in m for m in markdown)


def test_with_a_pack_the_caption_and_the_figure_come_together(seeded, tmp_path):
    """A pack's 3-seed sweep under the student's: same late-epoch rule, bands for both."""
    from psp_lite.report import sweep_beside_pack
    from psp_lite.store.packs import Pack

    manifest = {"device": "cpu", "date": "2025-01-01T00:00:00", "wall_seconds": 60.0,
                "code_version": {"psp_lite": "0", "git": "x"}, "smoke": True}
    pack = Pack(tmp_path, manifest, {"sweep": seeded.groups()})
    caption, fig = sweep_beside_pack(pack, seeded)
    assert caption.startswith("Your sweep (dotted") and "3 seed(s)" in caption
    psp, l2 = fig.axes[:2]
    mine = [line for line in psp.get_lines() if "your run" in line.get_label()][0]
    theirs = [line for line in psp.get_lines() if line.get_label() == "PSP (pack)"][0]
    expected = [np.mean(e) for _, e in seeded.late_errors("psp")]
    np.testing.assert_allclose(mine.get_ydata(), expected)
    np.testing.assert_allclose(theirs.get_ydata(), expected)  # the same rule for both
    assert "l2" in l2.get_xlabel() and len(psp.collections) >= 2  # both bands


def test_a_small_layer_gets_fewer_histogram_bins(explorer, result):
    """The square-root rule, 15 to 60 bins: conv1's few hundred weights in 60 bins drew sampling
    notches that an instructor read as structure."""
    from psp_lite.explorer.figure import bins_for

    assert [bins_for(n) for n in (100, 500, 2_400, 100_000)] == [15, 22, 49, 60]
    sizes = {name: w.size for name, w in result.baseline.weights[1].items()}
    for name, edges in explorer.edges.items():
        assert len(edges) - 1 == bins_for(sizes[name]), name
    assert len(explorer.edges["conv1.weight"]) - 1 < 60


def test_a_run_above_the_error_axis_says_where_it_is(result):
    """A run far worse than no regularization leaves the test-error panel through the top; the
    panel then prints its error at the chosen epoch at the top edge, and only then."""
    worse = _with(result, {("l2", 1e-2): lambda h: {"test_error": [95.0] * len(h.test_error)}})
    for layout in (SCREEN, PROJECTOR):
        fig = ExplorerFigure(worse, layout=layout)
        fig.render(ExplorerState("l2", 1e-2, 2))
        assert fig.ax_err.get_ylim()[1] < 95
        assert fig.err_off.get_text() == "↑ 95.0 %"
        assert fig.err_off.get_position()[0] == 2
        fig.canvas.draw()  # tick labels exist once drawn
        assert not overlapping_texts(fig.figure)
        inside = fig.ax_err.get_window_extent()
        assert inside.contains(*fig.err_off.get_window_extent().corners()[0])  # on the panel
        fig.png(ExplorerState("l2", 1e-4, 3))  # inside the axis: nothing printed
        assert fig.err_off.get_text() == ""


def test_only_a_scaled_layout_styles_its_controls(result):
    """The projector's explorer box carries a <style> scaling ipywidgets' size variables by its
    text scale (checked in a browser by test_browser), scoped to its own class; not the screen."""
    from psp_lite.explorer.layout import CONTROLS_CLASS

    screen = LambdaExplorer(result, layout=SCREEN).ui()
    projector = LambdaExplorer(result, layout=PROJECTOR).ui()
    assert CONTROLS_CLASS not in screen._dom_classes
    assert not any("<style>" in str(getattr(c, "value", "")) for c in screen.children)
    assert CONTROLS_CLASS in projector._dom_classes
    css = projector.children[0].value
    assert f".{CONTROLS_CLASS} {{" in css and "--jp-widgets-font-size: 20px;" in css
    assert "--jp-widgets-inline-height: 42px;" in css  # 28 px x 1.5


@LAYOUTS
def test_epoch_panels_band_the_chosen_runs_seeds(seeded, layout):
    """Around the first seed's thick curves, the test-error and <z^2> panels fill the min-max
    over the chosen run's seeds at every epoch, in its colour; a one-seed sweep draws none. The
    titles say so, and the picture stays free of overlapping text."""
    fig = ExplorerFigure(seeded, layout=layout)
    for state in (ExplorerState("psp", 1e-1, 5), ExplorerState("l2", 1e-2, 2)):
        fig.png(state)
        seeds = seeded.histories(state.regularizer, state.lam)
        for band, curves in ((fig.err_band, [s.test_error for s in seeds]),
                             (fig.z2_band, [s.z2 for s in seeds])):
            xy = band.get_paths()[0].vertices
            values = np.array(curves)
            for epoch in range(1, 6):
                at = xy[np.isclose(xy[:, 0], epoch), 1]
                assert at.min() == pytest.approx(values[:, epoch - 1].min())
                assert at.max() == pytest.approx(values[:, epoch - 1].max())
            assert np.allclose(band.get_facecolor()[0][:3],
                               matplotlib.colors.to_rgb(COLORS[state.regularizer]))
    assert "band: 3 seeds" in fig.ax_err.get_title() and "band: 3 seeds" in fig.ax_z2.get_title()
    fig.canvas.draw()
    assert not overlapping_texts(fig.figure)


def test_a_one_seed_sweep_draws_no_epoch_band(explorer):
    explorer.png(ExplorerState("psp", 1e-3, 2))
    assert not explorer.err_band.get_paths() and not explorer.z2_band.get_paths()
    assert explorer.ax_err.get_title().endswith(", 1 seed")
