"""psp_lite.teaching: the helpers behind notebooks 01-03."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from psp_lite import analytic, teaching  # noqa: E402
from psp_lite.models import LeNet5  # noqa: E402


def test_mlp_layout_and_dtype() -> None:
    net = teaching.mlp((4, 5, 3), "sigmoid", bias=False, dtype=torch.float64)
    assert [type(m) for m in net] == [nn.Linear, nn.Sigmoid, nn.Linear]
    assert net[0].bias is None and net[0].weight.dtype == torch.float64
    with pytest.raises(ValueError, match="unknown activation"):
        teaching.make_activation("swish")


def test_toy_labels_do_not_depend_on_seed_of_inputs() -> None:
    x1, y1 = teaching.toy_classification(50, seed=0)
    x2, y2 = teaching.toy_classification(50, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = teaching.toy_classification(50, seed=1)
    assert not torch.equal(x1, x3)
    assert len(set(y1.tolist())) > 1


def test_decay_trajectory_bias_free_relu_is_exact() -> None:
    """Eq. 5 on a bias-free ReLU net: <z_l^2> shrinks by exactly (1 - lam)^(2 l t)."""
    net = teaching.mlp((6, 8, 8, 3), "relu", bias=False, dtype=torch.float64)
    before = [p.clone() for p in net.parameters()]
    traj = teaching.decay_trajectory(net, torch.randn(20, 6, dtype=torch.float64), 0.1, 5)
    for layer, values in enumerate(traj.values(), start=1):
        # mean_square reports float32 numbers
        assert values[-1] / values[0] == pytest.approx(0.9 ** (2 * layer * 5), rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_activation_curves_peak_at_zero() -> None:
    grid = torch.linspace(-3, 3, 601, dtype=torch.float64)
    for name, peak in (("sigmoid", 0.25), ("tanh", 1.0)):
        _, d = teaching.activation_curves(name, grid)
        assert d.max().item() == pytest.approx(peak)
        assert grid[d.argmax()].item() == pytest.approx(0.0, abs=1e-12)


def test_train_briefly_equals_torch_sgd_with_weight_decay() -> None:
    x, y = teaching.toy_classification(60, dim=5, classes=3)
    a = teaching.mlp((5, 7, 3), "tanh", seed=1)
    b = teaching.mlp((5, 7, 3), "tanh", seed=1)
    teaching.train_briefly(a, x, y, weight_decay=0.01, epochs=2, lr=0.1, batch_size=20)
    opt = torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 20):
            idx = order[i:i + 20]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(b(x[idx]), y[idx]).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_z_distributions_and_plots() -> None:
    before = torch.get_num_threads()
    dists = teaching.z_distributions(("tanh", "relu"), (0.0, 0.1), n_train=100, epochs=1,
                                     widths=(32, 16, 4))
    assert torch.get_num_threads() == before
    assert set(dists) == {("tanh", 0.0), ("tanh", 0.1), ("relu", 0.0), ("relu", 0.1)}
    d = dists[("tanh", 0.1)]
    assert d.z.shape == (2000 * 16,) and 0 <= d.test_accuracy <= 1 and 0 < d.mean_slope <= 1
    assert "tanh" in teaching.slope_table(dists)
    fig = teaching.plot_z_over_activations(dists, 0.1)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    plt.close("all")
    box = teaching.lambda_explorer(dists)
    assert box.children[0].value == pytest.approx(0.1)
    plt.close("all")


def test_whiten_and_weight_decay_mismatch() -> None:
    y = teaching.whiten(torch.randn(40, 5, dtype=torch.float64))
    torch.testing.assert_close(y.T @ y / 40, torch.eye(5, dtype=torch.float64))
    w = torch.randn(3, 5, dtype=torch.float64)
    rel, cos, factor = teaching.weight_decay_mismatch(w, None, y)
    assert rel < 1e-12 and cos == pytest.approx(1) and factor == pytest.approx(1)
    rel, cos, factor = teaching.weight_decay_mismatch(w, None, torch.eye(5, dtype=torch.float64))
    assert cos == pytest.approx(1) and factor == pytest.approx(1 / 5)


def test_layer_balance_lenet5() -> None:
    torch.manual_seed(0)
    net = LeNet5()
    rows = teaching.layer_balance(net, torch.rand(2, 1, 28, 28), 1e-3)
    assert [r.name for r in rows] == ["conv1", "conv2", "fc1", "fc2"]
    assert [r.potentials_per_example for r in rows] == [11520, 3200, 500, 10]
    # per potential, the paper form pulls equally everywhere, the reference form 1/n_l
    assert len({r.paper_scale for r in rows}) == 1
    assert rows[0].reference_scale * 11520 == pytest.approx(rows[-1].reference_scale * 10)
    assert "total" in teaching.balance_table(rows)
    assert isinstance(teaching.plot_balance(rows), Figure)
    plt.close("all")


def test_penalty_vs_loss_keys() -> None:
    net = teaching.mlp((4, 6, 3), "tanh")
    result = teaching.penalty_vs_loss(net, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), 1e-3)
    assert list(result) == ["paper", "reference"]
    assert list(result["paper"])[:2] == ["penalty", "cross_entropy"]
    assert set(result["paper"]) - {"penalty", "cross_entropy"} == {"0.weight", "0.bias",
                                                                   "2.weight", "2.bias"}


def test_contribution_plots_and_norms() -> None:
    net = teaching.mlp((4, 6, 5, 3), "relu", dtype=torch.float64)
    records = analytic.forward_record(net, torch.randn(7, 4, dtype=torch.float64))[1]
    contributions = analytic.psp_contributions(records, 1.0)
    norms = teaching.contribution_norms(contributions, "0.weight")
    assert list(norms) == ["0", "2", "4", "total"]
    assert isinstance(teaching.plot_contributions(contributions, ["0.weight", "2.weight"]), Figure)
    assert isinstance(teaching.plot_contribution_matrix(contributions, records), Figure)
    rows = analytic.check_psp_gradients(net, torch.randn(3, 4, dtype=torch.float64), 1.0)
    assert isinstance(teaching.plot_check_rows({"float64": rows}), Figure)
    plt.close("all")


def test_self_check_messages() -> None:
    ref = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert "no answer yet" in teaching.self_check("ex", None, ref)
    assert "matches" in teaching.self_check("ex", ref.clone(), ref)
    assert "differs" in teaching.self_check("ex", ref + 1, ref)
    assert "shape" in teaching.self_check("ex", ref[:1], ref)
