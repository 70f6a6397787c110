"""psp_lite.teaching: the helpers behind notebooks 01-03, asserted by value."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from psp_lite import analytic, psp_penalty, teaching
from psp_lite.models import LeNet5
from psp_lite.report import style

F64 = torch.float64


# ------------------------------------------------------------------------- toy networks and data


def test_mlp_layout_and_dtype() -> None:
    net = teaching.mlp((4, 5, 3), "sigmoid", bias=False, dtype=F64)
    assert [type(m) for m in net] == [nn.Linear, nn.Sigmoid, nn.Linear]
    assert net[0].bias is None and net[0].weight.dtype == F64
    assert teaching.linear_layers(net) == [net[0], net[2]]
    with pytest.raises(ValueError, match="unknown activation"):
        teaching.make_activation("swish")


def test_toy_labels_do_not_depend_on_seed_of_inputs() -> None:
    x1, y1 = teaching.toy_classification(50, seed=0)
    x2, y2 = teaching.toy_classification(50, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = teaching.toy_classification(50, seed=1)
    assert not torch.equal(x1, x3)
    assert len(set(y1.tolist())) > 1


def _torch_sgd(model: nn.Module, x, y, *, weight_decay: float, psp: float = 0.0) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 20):
            idx = order[i:i + 20]
            opt.zero_grad()
            out, zs = teaching.toy.capture(model, x[idx])
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            if psp:
                loss = loss + psp_penalty(zs, psp, "reference")
            loss.backward()
            opt.step()


@pytest.mark.parametrize("regularizer", ["none", "l2", "psp"])
def test_train_sgd_equals_torch_sgd(regularizer: str) -> None:
    x, y = teaching.toy_classification(60, dim=5, classes=3)
    a = teaching.mlp((5, 7, 3), "tanh", seed=1)
    b = teaching.mlp((5, 7, 3), "tanh", seed=1)
    lam = {"none": 0.0, "l2": 0.01, "psp": 0.5}[regularizer]
    teaching.train_sgd(a, x, y, regularizer=regularizer, lam=lam, epochs=2, lr=0.1, batch_size=20)
    _torch_sgd(b, x, y, weight_decay=lam if regularizer == "l2" else 0.0,
               psp=lam if regularizer == "psp" else 0.0)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown regularizer"):
        teaching.train_sgd(a, x, y, regularizer="l1", epochs=1)


# ------------------------------------------------------------------------------- first look


def test_first_look_on_the_notebooks_settings() -> None:
    """Notebook 01's opening claims, on its own (default, seeded) settings: l2 shrinks every
    layer's weights, PSP shrinks every layer's <z^2>, PSP's weights are below l2's in layers 1 and 3
    (not 2) and shrink most in layer 1."""
    runs = teaching.train_none_l2_psp()
    assert list(runs) == ["none", "l2", "psp"]
    w_l2, z_l2 = teaching.ratios_to_unregularized(runs, "l2")
    w_psp, z_psp = teaching.ratios_to_unregularized(runs, "psp")
    assert len(w_l2) == 3 and all(r < 0.95 for r in w_l2)
    assert all(r < 0.9 for r in z_l2)
    assert all(r < 0.5 for r in z_psp)
    assert all(p < q for p, q in zip(z_psp, z_l2, strict=True))  # PSP pulls z harder than l2
    assert z_psp[1] < z_l2[1] / 3 and z_psp[2] < z_l2[2] / 3  # by far in layers 2 and 3
    assert w_psp[1] > w_l2[1]  # though layer 2's weights stay larger than under l2
    assert teaching.smallest_weights(runs, layer=2) == "l2"  # Exercise 1's answer, and
    assert [teaching.smallest_weights(runs, layer) for layer in (1, 3)] == ["psp", "psp"]
    line = teaching.weights_line(runs, layer=2)  # the numbers the bars show, in run order
    assert line == ("layer 2's weight RMS: " + ", ".join(
        f"{r} {runs[r].weight_rms[1]:.3f}" for r in ("none", "l2", "psp")))
    for wrong, words in (("psp", "where they point"), ("none", "no penalty pulls")):
        said = teaching.check_prediction(wrong, "l2", choices=("none", "l2", "psp"),
                                         hints=teaching.SMALLEST_WEIGHTS_HINTS)
        assert words in said and "measurement says l2" not in said, said  # a hint, no answer
    assert w_psp[0] < w_l2[0] and w_psp[2] < w_l2[2]  # and smaller in layers 1 and 3
    assert min(range(3), key=w_psp.__getitem__) == 0
    # l2 shrinks the weights alike: its per-layer ratios stay within a narrow band
    assert max(w_l2) - min(w_l2) < max(w_psp) - min(w_psp)
    # notebook 01's Exercise 4: with a ten times weaker PSP the logits layer shrinks most
    weak = teaching.train_none_l2_psp(teaching.FirstLookSettings(psp_lambda=0.1))
    w_weak = teaching.ratios_to_unregularized(weak, "psp")[0]
    assert min(range(3), key=w_weak.__getitem__) == 2
    text = teaching.describe_ratios(runs)
    assert f"weights x{w_l2[0]:.2f}" in text and f"<z²> x{z_psp[2]:.2f}" in text
    fig = teaching.plot_none_l2_psp(runs)  # each run's test accuracy in its legend label
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == [f"{r.regularizer}{'' if r.regularizer == 'none' else f', λ = {r.lam:g}'}"
                      f" (test acc. {r.test_accuracy:.1%})" for r in runs.values()]
    plt.close("all")


# ---------------------------------------------------------------------------- decay dynamics


def test_decay_bias_free_relu_is_exact() -> None:
    """Eq. 5 on a bias-free ReLU net: <z_l^2> shrinks by exactly (1 - lam)^(2 l t)."""
    net = teaching.mlp((6, 8, 8, 3), "relu", bias=False, dtype=F64)
    before = [p.clone() for p in net.parameters()]
    traj = teaching.mean_z2_during_weight_decay(net, torch.randn(20, 6, dtype=F64), 0.1, 5)
    for layer, values in enumerate(traj.values(), start=1):
        predicted = teaching.bias_free_relu_prediction(values[0], layer, 0.1, [5])[0]
        assert values[-1] == pytest.approx(predicted, rel=1e-6)  # mean_square is float32
        assert values[-1] / values[0] == pytest.approx(0.9 ** (2 * layer * 5), rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    fig = teaching.plot_mean_z2_during_decay({"relu": traj}, 0.1, predicted="relu")
    assert len(fig.axes[0].lines) == 2 * len(traj) + 1  # + the prediction's legend entry
    for layer, (pale, measured) in enumerate(zip(fig.axes[0].lines[0:-1:2],
                                                 fig.axes[0].lines[1::2], strict=True), start=1):
        assert measured.get_ydata()[0] == 1  # relative to the start: the factor can be read off
        assert measured.get_ydata()[-1] == pytest.approx(0.9 ** (2 * layer * 5), rel=1e-6)
        assert pale.get_ydata() == pytest.approx(0.9 ** (2 * layer * np.arange(6)))
    labels = " ".join(t.get_text() for legend in fig.legends for t in legend.get_texts())
    assert "prediction" in labels and "(1 - λ)" not in labels and "^" not in labels  # no answer
    plt.close("all")


# ------------------------------------------------------------------------- activation slopes


def test_activation_slope_peaks_at_zero() -> None:
    grid = torch.linspace(-3, 3, 601, dtype=F64)
    for name, peak in (("sigmoid", 0.25), ("tanh", 1.0)):
        phi, d = teaching.activation_and_slope(name, grid)
        assert d.max().item() == pytest.approx(peak)
        assert grid[d.argmax()].item() == pytest.approx(0.0, abs=1e-12)
    phi, d = teaching.activation_and_slope("relu", grid)
    assert torch.equal(d, (grid > 0).to(F64)) and torch.equal(phi, grid.clamp(min=0))


def test_first_layer_z_after_training_and_plots() -> None:
    before = torch.get_num_threads()
    dists = teaching.first_layer_z_after_training(("tanh", "relu"), (0.0, 0.1), n_train=100,
                                                  epochs=1, widths=(32, 16, 4))
    assert torch.get_num_threads() == before
    assert set(dists) == {("tanh", 0.0), ("tanh", 0.1), ("relu", 0.0), ("relu", 0.1)}
    d = dists[("tanh", 0.1)]
    assert d.z.shape == (2000 * 16,) and 0 <= d.test_accuracy <= 1
    assert d.mean_slope == pytest.approx((1 - torch.tanh(torch.from_numpy(d.z)) ** 2)
                                         .mean().item())
    relu = dists[("relu", 0.0)]
    assert relu.mean_slope == pytest.approx((relu.z > 0).mean())
    table = teaching.slope_table(dists).splitlines()
    assert len(table) == 5 and f"{d.z.std():.3f}" in table[2]
    fig = teaching.plot_z_over_activations(dists, 0.1)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    for ax in fig.axes[:2]:  # each histogram's peak, 1, sits at the left axis' 1
        twin = next(t for t in fig.axes[2:] if t.bbox.bounds == ax.bbox.bounds)
        assert twin.get_ylim() == ax.get_ylim()
        assert max(p.get_data().values.max() for p in twin.patches) == 1
    plt.close("all")
    box = teaching.lambda_explorer(dists)
    assert box.children[0].value == pytest.approx(0.1)
    plt.close("all")


def test_lambda_slider_steps_are_the_trained_lambdas() -> None:
    """Notebook 01's grid: a log slider with a fixed step read 2.7e-03 for the run titled 3.0e-03;
    every step must be a trained lambda, labelled as the plot labels it."""
    import numpy as np

    from psp_lite.teaching.slopes import ZDistribution

    lambdas = (0.0, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    z = np.linspace(-1, 1, 50)
    dists = {(act, lam): ZDistribution(act, lam, z, 0.5) for act in ("tanh", "relu")
             for lam in lambdas}
    slider = teaching.lambda_explorer(dists).children[0]
    assert [value for _, value in slider.options] == list(lambdas[1:])
    assert [label for label, _ in slider.options] == [f"{v:.1e}" for v in lambdas[1:]]
    for label, value in slider.options:
        slider.value = value
        assert slider.label == label
    plt.close("all")


# ----------------------------------------------------------------- PSP in the data's metric


def test_trace_identity_equals_the_penalty() -> None:
    """1/2 tr(W C W^T) + b^T W mu + 1/2 |b|^2 is the batch mean of 1/2 |z|^2 (Eq. 7, one layer)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 4, dtype=F64, generator=g)
    b = torch.randn(5, dtype=F64, generator=g)
    y = torch.rand(30, 4, dtype=F64, generator=g) + 0.5   # mean far from 0
    by_trace = teaching.layer_psp_penalty_by_trace(w, b, y)
    direct = teaching.layer_psp_penalty_direct(w, b, y)
    z = y @ w.T + b
    assert by_trace.item() == pytest.approx(direct.item(), rel=1e-13)
    assert direct.item() == pytest.approx(psp_penalty([z], 1.0, "paper").item(), rel=1e-13)
    # far from weight decay for these inputs ...
    assert abs(direct.item() - teaching.layer_l2_penalty(w, b).item()) > 0.1 * direct.item()
    # ... and exactly weight decay when C = I and mu = 0
    white = teaching.centre_and_whiten(y)
    second, mean = teaching.input_moments(white)
    torch.testing.assert_close(second, torch.eye(4, dtype=F64))
    assert mean.abs().max().item() < 1e-14
    assert teaching.layer_psp_penalty_by_trace(w, b, white).item() == pytest.approx(
        teaching.layer_l2_penalty(w, b).item(), rel=1e-12)
    # a direction the data never excites costs nothing
    flat = y.clone()
    flat[:, 2] = 0
    w2 = w.clone()
    w2[:, 2] += 100.0
    assert teaching.layer_psp_penalty_by_trace(w2, b, flat).item() == pytest.approx(
        teaching.layer_psp_penalty_by_trace(w, b, flat).item(), rel=1e-13)


def test_whiten_and_local_gradient_vs_weight_decay() -> None:
    y = teaching.whiten(torch.randn(40, 5, dtype=F64))
    torch.testing.assert_close(y.T @ y / 40, torch.eye(5, dtype=F64))
    w = torch.randn(3, 5, dtype=F64)
    rel, cos, factor = teaching.local_psp_gradient_vs_weight_decay(w, None, y)
    assert rel < 1e-12 and cos == pytest.approx(1) and factor == pytest.approx(1)
    rel, cos, factor = teaching.local_psp_gradient_vs_weight_decay(w, None, torch.eye(5, dtype=F64))
    assert cos == pytest.approx(1) and factor == pytest.approx(1 / 5) and rel == pytest.approx(0.8)


# ------------------------------------------------------------------------- normalizations


def test_penalty_share_per_layer_lenet5() -> None:
    torch.manual_seed(0)
    net = LeNet5()
    x = torch.rand(2, 1, 28, 28)
    rows = teaching.penalty_share_per_layer(net, x, 1e-3)
    assert [r.name for r in rows] == ["conv1", "conv2", "fc1", "fc2"]
    assert [r.potentials_per_example for r in rows] == [11520, 3200, 500, 10]
    # per potential, the paper form pulls equally everywhere, the reference form 1/n_l
    assert len({r.paper_scale for r in rows}) == 1
    assert rows[0].reference_scale * 11520 == pytest.approx(rows[-1].reference_scale * 10)
    # the parts add up to each normalization's penalty
    zs = teaching.toy.capture(net, x)[1]
    assert sum(r.paper for r in rows) == pytest.approx(psp_penalty(zs, 1e-3, "paper").item())
    assert sum(r.reference for r in rows) == pytest.approx(
        psp_penalty(zs, 1e-3, "reference").item())
    for norm in ("paper", "reference"):
        assert sum(teaching.shares(rows, norm)) == pytest.approx(1.0)
    # literal form: a layer's share grows with its potentials x <z^2>
    ratio = rows[0].paper / rows[1].paper
    assert ratio == pytest.approx(11520 * rows[0].mean_z2 / (3200 * rows[1].mean_z2), rel=1e-5)
    table = teaching.shares_table({"untrained": rows}).splitlines()
    assert len(table) == 3 and f"{teaching.shares(rows, 'paper')[0]:.1%}" in table[1]
    assert isinstance(teaching.plot_penalty_shares({"a": rows, "b": rows}), Figure)
    plt.close("all")


def test_penalty_and_gradients_vs_cross_entropy() -> None:
    net = teaching.mlp((4, 6, 3), "tanh", dtype=F64)
    x, y = torch.randn(5, 4, dtype=F64), torch.tensor([0, 1, 2, 0, 1])
    result = teaching.penalty_and_gradients_vs_cross_entropy(net, x, y, 1e-3)
    assert list(result) == ["paper", "reference"]
    out, zs = teaching.toy.capture(net, x)
    ce = torch.nn.functional.cross_entropy(out, y).item()
    for norm in ("paper", "reference"):
        assert result[norm]["penalty"] == pytest.approx(psp_penalty(zs, 1e-3, norm).item())
        assert result[norm]["cross_entropy"] == pytest.approx(ce)
    psp = analytic.autograd_psp_gradients(net, x, 1e-3, "paper")
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert result["paper"]["0.weight"] == pytest.approx(
        (psp["0.weight"].norm() / net[0].weight.grad.norm()).item())


# --------------------------------------------------------------------- gradient decomposition


def test_check_line_and_gradient_parts() -> None:
    net = teaching.mlp((4, 6, 5, 3), "relu", dtype=F64)
    records = analytic.forward_record(net, torch.randn(7, 4, dtype=F64))[1]
    contributions = analytic.psp_contributions(records, 1.0)
    parts = teaching.gradient_parts_by_source_layer(contributions, "0.weight")
    assert list(parts) == ["0", "2", "4", "total"]
    total = sum(c["0.weight"] for c in contributions.values())
    assert parts["total"][0] == pytest.approx(total.norm().item())
    assert parts["0"][0] == pytest.approx(contributions["0"]["0.weight"].norm().item())
    assert teaching.gradient_parts_by_source_layer(contributions, "4.weight")["0"] == (0.0, 0.0)
    rows = analytic.check_psp_gradients(net, torch.randn(3, 4, dtype=F64), 1.0)
    line = teaching.check_line("MLP", rows)
    worst = max(r.max_rel for r in rows)
    assert line == f"MLP: matches (max rel. error {worst:.0e}, 6 tensors)" and worst < 1e-12
    assert isinstance(teaching.plot_contributions(contributions, ["0.weight", "2.weight"]), Figure)
    assert isinstance(teaching.plot_contribution_matrix(contributions, records), Figure)
    assert isinstance(teaching.plot_check_rows({"float64": rows}), Figure)
    plt.close("all")


# ------------------------------------------------------------------ notebooks 01-03's one-liners


def test_lambda_in_paper_units_and_accuracy_line() -> None:
    s = teaching.FirstLookSettings()
    text = teaching.lambda_in_paper_units(s)
    assert "1000 × the paper's 0.001" in text and "100 × the paper's 0.0001" in text
    # the literal Eq. 7 lambda per layer that gives the layer mean's pull: 2 lam / (N n_l)
    assert f"{2 / (3 * 64):.3g}, {2 / (3 * 64):.3g}, {2 / (3 * 4):.3g}" in text
    assert "0.999" in text and "400 steps" in text


def test_decay_two_networks_and_largest_slopes() -> None:
    traj = teaching.decay_two_networks(16, 0.1, 3)
    assert list(traj) == ["ReLU, no biases", "tanh, with biases"]
    relu = list(traj["ReLU, no biases"].values())
    assert relu[1][-1] / relu[1][0] == pytest.approx(0.9 ** (2 * 2 * 3), rel=1e-5)
    # with biases, late in the decay every z_l is its own bias's: <z_l^2> ~ (1 - lam)^(2 t)
    tanh = teaching.decay_network("tanh, with biases", 64, 0.05, 200)
    for v in tanh.values():
        assert np.log(v[-1] / v[-21]) / (20 * np.log(0.95)) == pytest.approx(2, rel=1e-4)
    assert np.log(relu[3][-1] / relu[3][0]) / (3 * np.log(0.9)) == pytest.approx(8, rel=1e-5)
    # the biased panel's dashed reference: layer 1 (input x does not decay) lies on it exactly,
    # a later layer parallel to it, offset by its biases' mean square over its start <z^2>
    fig = teaching.plot_mean_z2_during_decay({"tanh, with biases": tanh}, 0.05,
                                             reference="tanh, with biases")
    dashed = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[-1] == pytest.approx(0.95 ** 400)
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "(1 - λ)^(2t)"
    v1, v2 = (v / v[0] for v in list(tanh.values())[:2])
    assert v1 == pytest.approx(dashed[0].get_ydata(), rel=1e-5)
    net = teaching.mlp((16, 32, 32, 32, 10), "tanh", bias=True, seed=0)
    share = net[2].bias.detach().square().mean().item() / tanh["3"][0]
    assert v2[-1] == pytest.approx(share * 0.95 ** 400, rel=1e-2)
    plt.close("all")
    with pytest.raises(ValueError, match="unknown decay network 'relu'"):
        teaching.decay_network("relu", 8, 0.1, 1)
    lines = teaching.largest_slopes().splitlines()
    assert lines[0].endswith("largest slope 0.2500 at z = +0.0000, slope at z = 3: 0.0452")
    assert lines[2] == "    relu: slope 0 for z < 0, 1 for z > 0: it switches at z = 0"


def test_derivation_lines_all_match() -> None:
    net = teaching.mlp((3, 4, 3, 2), "tanh", seed=0, dtype=F64)
    x = torch.randn(1, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    s = teaching.paper_symbols(net, x)
    assert s.N == 3 and torch.equal(s.y[0], x[0]) and s.W[2].shape == (3, 4)
    assert torch.allclose(s.z[2], s.W[2] @ torch.tanh(s.z[1]) + s.b[2])
    text = "\n".join([teaching.own_term_lines(net, x, 2, 2, 3),
                      teaching.eq14_lines(net, x, 2, 2, 3), teaching.eq15_16_lines(net, x, 2, 2)])
    assert len(text.splitlines()) == 7 and all(": matches" in line for line in text.splitlines())
    assert "p = 1 (p < l)" in text and "value +0.000e+00" in text
    assert teaching.nonzero_rows(net, x, 2, 2) == {1: [1, 2, 3, 4], 2: [2]}


def test_metric_one_liners() -> None:
    lines = teaching.penalty_on_input_kinds(64).splitlines()
    assert len(lines) == 3 and lines[-1].endswith("P / R_l2 = 1.0000")
    assert teaching.zero_gradient_columns(64, silent=5) == [5]


def test_weight_decay_cases_are_exactly_the_two_conditions() -> None:
    """PSP is weight decay for a bias-free layer with C = I (centred or not) and for a layer with
    bias on centred white inputs; not with a bias on uncentred inputs, not for pixels, not with a
    second layer."""
    cases = teaching.weight_decay_cases(1e-3, n_examples=64)
    assert cases.exact == [1, 2]
    assert all(d[0] > 1e-3 for d in cases.distances[2:])
    assert cases.distances[0][1] is None and cases.distances[4][1] is None
    assert len(cases.lines().splitlines()) == len(teaching.WEIGHT_DECAY_CASES)


# ------------------------------------------------------------ figures readable when projected


def _teaching_figures() -> dict[str, Figure]:
    dists = teaching.first_layer_z_after_training(("sigmoid", "tanh"), (0.0, 0.1), n_train=50,
                                                  epochs=1, widths=(32, 8, 4))
    runs = teaching.train_none_l2_psp(teaching.FirstLookSettings(epochs=1, n_train=100))
    torch.manual_seed(0)
    lenet = LeNet5().double()
    images = torch.rand(2, 1, 28, 28, dtype=F64)
    records = analytic.forward_record(lenet, images)[1]
    parts = analytic.psp_contributions(records, 1e-3, "reference")
    rows = analytic.check_psp_gradients(lenet, images, 1e-3, "reference")
    shares = teaching.penalty_share_per_layer(lenet, images, 1e-3)
    return {
        "none_l2_psp": teaching.plot_none_l2_psp(runs),
        "decay": teaching.plot_mean_z2_during_decay(teaching.decay_two_networks(8, 0.1, 2), 0.1,
                                                    predicted="ReLU, no biases"),
        "z_over_activations": teaching.plot_z_over_activations(dists, 0.1),
        "contributions": teaching.plot_contributions(parts, ["conv1.weight", "fc1.weight"]),
        "contribution_matrix": teaching.plot_contribution_matrix(parts, records),
        "check_rows": teaching.plot_check_rows({"float64": rows, "float32": rows}),
        "penalty_shares": teaching.plot_penalty_shares({"a": shares, "b": shares}),
    }


def test_teaching_figures_are_readable_when_projected() -> None:
    """Every teaching figure, as drawn: at least 100 dpi, no wider than a notebook column at that
    dpi (so it is shown unscaled), no text under 9 pt, and every legend outside every panel."""
    for name, fig in _teaching_figures().items():
        fig.draw_without_rendering()
        assert fig.dpi >= 100, name
        assert fig.get_size_inches()[0] <= style.MAX_WIDTH_IN, name
        small = [(t.get_text(), t.get_fontsize()) for t in style.texts(fig)
                 if t.get_fontsize() < teaching.MIN_POINTS]
        assert not small, f"{name}: text under {teaching.MIN_POINTS} pt: {small[:3]}"
        assert not style.overlapping_texts(fig), name
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent()), f"{name}: legend over a panel"
    plt.close("all")


def test_readable_raises_small_text_and_dpi() -> None:
    fig, ax = plt.subplots(figsize=(12, 4), dpi=72)
    ax.set_title("tiny", fontsize=6)
    teaching.readable(fig)
    assert fig.dpi == 100 and fig.get_size_inches()[0] == pytest.approx(9.0)
    assert ax.title.get_fontsize() == teaching.MIN_POINTS
    plt.close("all")


def test_overlapping_texts_finds_a_label_drawn_over_another() -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0.1, 10], [1, 2])
    ax.set(xscale="log", xlabel="lambda", title="a title")
    fig.draw_without_rendering()
    assert style.overlapping_texts(fig) == []
    x, y = ax.title.get_position()
    ax.text(x, y, "over the title", transform=ax.transAxes, ha="center", va="bottom")
    fig.draw_without_rendering()
    assert [set(pair) for pair in style.overlapping_texts(fig)] == [{"a title", "over the title"}]
    plt.close("all")


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.1, 10.0, [0.1, 1.0, 10.0]),                 # 1-2-5 would be 7 labels: the powers only
    (0.05, 0.3, [0.05, 0.1, 0.2]),                 # 1-2-5 fits
    (3.0, 7.0, [3.0, 4.0, 5.0, 6.0, 7.0]),         # inside a decade: every integer multiple
    (1e-8, 1e8, [1e-8, 1e-4, 1.0, 1e4, 1e8]),      # 17 powers: every fourth
])
def test_few_log_ticks_labels_the_densest_set_that_fits(low, high, expected) -> None:
    assert style.FewLogTicks(5).tick_values(low, high) == pytest.approx(expected)


def test_few_log_ticks_falls_back_to_round_numbers_in_a_narrow_range() -> None:
    ticks = style.FewLogTicks(5).tick_values(0.21, 0.27)  # no 1-9 x 10^k but 0.21 ... 0.27
    assert 2 <= len(ticks) <= 5 and min(ticks) >= 0.21 and max(ticks) <= 0.27
    assert len(style.FewLogTicks(5).tick_values(0.21, 0.2999)) <= 5
