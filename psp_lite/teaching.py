"""Small helpers behind notebooks 01-03: toy networks and data, the pure weight-decay update
(Eq. 5), z distributions under phi and phi', the Eq. 12 / weight-decay comparison, the balance
of the two PSP normalizations, and plots of gradient checks and of Eq. 14's decomposition.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from psp_lite.analytic import (
    GradientCheckRow,
    LayerRecord,
    activation_derivative,
    autograd_gradient,
    autograd_psp_gradients,
    compare_gradients,
)
from psp_lite.potentials import capture, mean_square
from psp_lite.regularizers import NORMALIZATIONS, check_lambda, psp_gradient_scale, psp_penalty

ACTIVATION_NAMES: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name: tanh, sigmoid, relu or leaky_relu."""
    try:
        return ACTIVATION_NAMES[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; use one of {list(ACTIVATION_NAMES)}") \
            from None


def mlp(widths: Sequence[int], activation: str = "tanh", *, bias: bool = True, seed: int = 0,
        dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Linear - phi - Linear - phi - ... - Linear: one z per hidden neuron, logits last (Eq. 1-2).

    widths = (inputs, hidden..., outputs); PyTorch's default init, seeded.
    """
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers).to(dtype)


def toy_classification(n: int, dim: int = 32, classes: int = 4, seed: int = 0
                       ) -> tuple[Tensor, Tensor]:
    """n Gaussian inputs labelled by one fixed random tanh 'teacher' network (same for any seed).

    A stand-in for real data that takes no download and trains in seconds.
    """
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(dim, 64, generator=g) * 3 / math.sqrt(dim)
    w2 = torch.randn(64, classes, generator=g) / 8
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return x, (torch.tanh(x @ w1) @ w2).argmax(1)


# --------------------------------------------------------------------------------------------
# Notebook 01: weight decay pulls z to zero
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def decay_trajectory(model: nn.Module, x: Tensor, lam: float, steps: int
                     ) -> OrderedDict[str, np.ndarray]:
    """<z^2> per layer after 0..steps pure weight-decay updates theta <- (1 - lam) theta (Eq. 5).

    Works on a copy; the model passed in is left as it was.
    """
    lam = check_lambda(lam)
    model = copy.deepcopy(model)
    history: OrderedDict[str, list[float]] = OrderedDict()
    with single_thread():
        for step in range(steps + 1):
            if step:
                for p in model.parameters():
                    p.mul_(1 - lam)
            for name, value in mean_square(capture(model, x)[1]).items():
                history.setdefault(name, []).append(value)
    return OrderedDict((k, np.array(v)) for k, v in history.items())


def plot_decay(trajectories: Mapping[str, Mapping[str, np.ndarray]], lam: float,
               predicted: str | None = None) -> Figure:
    """One panel per network: <z_l^2> over decay steps, log scale, one line per layer l.

    For the network named `predicted` (bias-free, ReLU) also draw (1 - lam)^(2 l t) as wide pale
    lines underneath: the exact
    shrinkage of a layer whose z is homogeneous of degree l in the parameters.
    """
    fig, axes = plt.subplots(1, len(trajectories), figsize=(5.2 * len(trajectories), 3.8),
                             squeeze=False)
    for ax, (title, traj) in zip(axes[0], trajectories.items(), strict=True):
        for l, (name, values) in enumerate(traj.items(), start=1):  # noqa: E741
            steps = np.arange(len(values))
            if title == predicted:
                ax.plot(steps, values[0] * (1 - lam) ** (2 * l * steps), lw=6, alpha=0.25,
                        color=f"C{l - 1}")
            label = f"layer {l}" + (" (logits)" if name == "output" else "")
            ax.plot(steps, values, color=f"C{l - 1}", label=label)
        ax.set(yscale="log", xlabel="weight-decay step t", ylabel="<z²> per layer", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if predicted is not None:
        fig.suptitle("wide pale lines: (1 - λ)^(2 l t) · <z_l²> at t = 0, the prediction for a "
                     "bias-free ReLU network", fontsize=10)
    fig.tight_layout()
    return fig


def activation_curves(name: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """(phi(z), phi'(z)) for an activation by name; phi' from `psp_lite.analytic`."""
    module = make_activation(name)
    with torch.no_grad():
        return module(z), activation_derivative(module, z)


def train_briefly(model: nn.Module, x: Tensor, y: Tensor, *, weight_decay: float, epochs: int,
                  lr: float = 0.2, batch_size: int = 50, seed: int = 0) -> nn.Module:
    """Plain SGD on cross-entropy with l2 weight decay (Eqs. 3-5); returns the model.

    The step theta <- theta - lr * (dL/dtheta + weight_decay * theta) is written out: it is
    what ``torch.optim.SGD(lr=lr, weight_decay=weight_decay)`` does, without the seconds that
    importing torch.optim's compiler support costs on the first call.
    """
    weight_decay = check_lambda(weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, grad in zip(params, grads, strict=True):
                    p.sub_(lr * (grad + weight_decay * p))
    return model


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restored after).

    Tiny networks gain nothing from more threads, and on a busy machine several threads waiting
    for each other can make them many times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ZDistribution:
    """The first hidden layer's z on held-out data after training with one weight decay."""

    activation: str
    lam: float
    z: np.ndarray
    test_accuracy: float

    @property
    def mean_slope(self) -> float:
        """<phi'(z)>: how much of a gradient this layer passes on, on average."""
        return activation_curves(self.activation, torch.from_numpy(self.z))[1].mean().item()


def z_distributions(activations: Sequence[str], lambdas: Sequence[float], *, n_train: int,
                    epochs: int, widths: Sequence[int] = (32, 128, 128, 4), seed: int = 0
                    ) -> dict[tuple[str, float], ZDistribution]:
    """Train one small MLP per (activation, weight decay) on `toy_classification` and keep its
    first hidden layer's z on 2000 held-out points; all precomputed so a slider can be instant."""
    x, y = toy_classification(n_train, widths[0], widths[-1], seed=seed)
    xt, yt = toy_classification(2000, widths[0], widths[-1], seed=seed + 1)
    out = {}
    with single_thread():
        for act, lam in itertools.product(activations, lambdas):
            model = train_briefly(mlp(widths, act, seed=seed), x, y, weight_decay=lam,
                                  epochs=epochs, seed=seed)
            with torch.no_grad():
                logits, pots = capture(model, xt)
            z = next(iter(pots.values())).flatten().numpy()
            acc = (logits.argmax(1) == yt).float().mean().item()
            out[(act, lam)] = ZDistribution(act, lam, z, acc)
    return out


def plot_z_over_activations(dists: Mapping[tuple[str, float], ZDistribution], lam: float,
                            baseline: float | None = 0.0, fig: Figure | None = None) -> Figure:
    """One panel per activation: phi, phi' and the trained layer's z histogram at weight decay
    `lam` (filled), with the `baseline` weight decay's histogram as an outline."""
    acts = list(dict.fromkeys(a for a, _ in dists))
    fig = fig or plt.figure(figsize=(4.6 * len(acts), 3.8))
    fig.clear()
    axes = fig.subplots(1, len(acts), squeeze=False)[0]
    grid = torch.linspace(-4, 4, 401)
    bins = np.linspace(-4, 4, 61)
    for ax, act in zip(axes, acts, strict=True):
        phi, dphi = activation_curves(act, grid)
        hist_ax = ax.twinx()
        peaks = []
        if baseline is not None and (act, baseline) in dists:
            counts, *_ = hist_ax.hist(np.clip(dists[(act, baseline)].z, -4, 4), bins=bins,
                                      density=True, histtype="step", color="gray", lw=1.5,
                                      label=f"z, λ = {baseline:g}")
            peaks.append(counts.max())
        d = dists[(act, lam)]
        counts, *_ = hist_ax.hist(np.clip(d.z, -4, 4), bins=bins, density=True,
                                  color="tab:orange", alpha=0.45, label=f"z, λ = {lam:.1e}")
        peaks.append(counts.max())
        hist_ax.set_ylim(0, 1.25 * max(peaks))
        hist_ax.set_yticks([])
        ax.plot(grid, phi, color="tab:blue", lw=2, label="φ(z)")
        ax.plot(grid, dphi, color="tab:green", lw=2, ls="--", label="φ'(z)")
        ax.set_zorder(hist_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set(xlabel="z", xlim=(-4, 4), ylim=(-1.1, 1.1) if act == "tanh" else (-0.1, 1.1),
               title=f"{act}: <φ'(z)> = {d.mean_slope:.2f}, test acc {d.test_accuracy:.0%}")
        ax.title.set_fontsize(10)
        ax.axvline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    handles = axes[0].get_legend_handles_labels()
    twin = fig.axes[-1].get_legend_handles_labels()
    axes[0].legend(handles[0] + twin[0], handles[1] + twin[1], fontsize=8, loc="upper left")
    fig.suptitle(f"histograms: the first hidden layer's z after training with weight decay "
                 f"λ = {lam:.1e} (gray outline: λ = {baseline:g})", fontsize=11)
    fig.tight_layout()
    return fig


def lambda_explorer(dists: Mapping[tuple[str, float], ZDistribution]):
    """An ipywidgets log-slider over the precomputed weight decays, redrawing
    `plot_z_over_activations` (snaps to the nearest precomputed lambda)."""
    import ipywidgets as widgets
    from IPython.display import display

    lambdas = sorted({lam for _, lam in dists if lam > 0})
    exps = np.log10(lambdas)
    step = float(np.min(np.diff(exps))) if len(exps) > 1 else 1.0
    slider = widgets.FloatLogSlider(value=lambdas[len(lambdas) // 2], base=10, min=exps[0],
                                    max=exps[-1], step=step, description="λ (l2)",
                                    readout_format=".1e", continuous_update=True)
    out = widgets.Output()

    def redraw(change=None) -> None:
        lam = min(lambdas, key=lambda v: abs(math.log10(v) - math.log10(slider.value)))
        with out:
            out.clear_output(wait=True)
            fig = plot_z_over_activations(dists, lam)
            plt.show()
            plt.close(fig)

    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, out])
    display(box)
    redraw()
    return box


def slope_table(dists: Mapping[tuple[str, float], ZDistribution]) -> str:
    """Text table: std(z), <phi'(z)> and test accuracy per activation and weight decay."""
    lines = [f"{'activation':<10} {'λ':>8} {'std z':>7} {'<φ′(z)>':>8} {'test acc':>9}"]
    for (act, lam), d in dists.items():
        lines.append(f"{act:<10} {lam:>8.1e} {d.z.std():>7.3f} {d.mean_slope:>8.3f} "
                     f"{d.test_accuracy:>9.1%}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Notebook 02: Eq. 12 against weight decay, and the two normalizations
# --------------------------------------------------------------------------------------------

def whiten(y: Tensor) -> Tensor:
    """y transformed so that its batch second moment y^T y / B is exactly the identity."""
    chol = torch.linalg.cholesky(y.T @ y / y.shape[0])
    return torch.linalg.solve_triangular(chol, y.T, upper=False).T


def weight_decay_mismatch(weight: Tensor, bias: Tensor | None, y: Tensor
                          ) -> tuple[float, float, float]:
    """How far one Linear layer's own PSP gradient (Eq. 9, batch mean) is from weight decay's w.

    g = mean_b z_b y_b^T = w E[y y^T] + b E[y]^T. Returns (||g - w|| / ||w||, cosine(g, w),
    <g, w> / <w, w>): the distance, the direction, and the effective weight-decay factor.
    """
    z = y @ weight.T + (0 if bias is None else bias)
    g = z.T @ y / y.shape[0]
    rel = ((g - weight).norm() / weight.norm()).item()
    cos = F.cosine_similarity(g.flatten(), weight.flatten(), dim=0).item()
    scale = ((g * weight).sum() / weight.square().sum()).item()
    return rel, cos, scale


@dataclass(frozen=True)
class LayerBalance:
    """One layer's weight in the PSP penalty under the two normalizations."""

    name: str
    potentials_per_example: int
    mean_z2: float
    paper: float       # this layer's part of the penalty, "paper" (Eq. 7 literal)
    reference: float   # this layer's part of the penalty, "reference" (per-layer mean)
    paper_scale: float      # c_p in dP/dz = c_p z, "paper"
    reference_scale: float  # c_p in dP/dz = c_p z, "reference"


@torch.no_grad()
def layer_balance(model: nn.Module, x: Tensor, lam: float) -> list[LayerBalance]:
    """Per layer: potentials per example, <z^2>, its share of the penalty and its dP/dz factor
    under the literal Eq. 7 ("paper") and the authors' per-layer mean ("reference")."""
    zs = capture(model, x)[1]
    n = len(zs)
    names = getattr(model, "potential_layers", None)
    names = names if names is not None and len(names) == n else list(zs)
    rows = []
    for name, z in zip(names, zs.values(), strict=True):
        rows.append(LayerBalance(
            name, z[0].numel(), z.square().mean().item(),
            psp_penalty([z], lam, "paper").item(),
            psp_penalty([z], lam, "reference").item() / n,
            psp_gradient_scale(z, n, lam, "paper"), psp_gradient_scale(z, n, lam, "reference")))
    return rows


def balance_table(rows: Sequence[LayerBalance]) -> str:
    """The `layer_balance` rows as text, with each layer's share of the total."""
    tot_p = sum(r.paper for r in rows)
    tot_r = sum(r.reference for r in rows)
    lines = [f"{'layer':<8} {'z/example':>9} {'<z²>':>9} {'paper':>10} {'share':>6} "
             f"{'reference':>10} {'share':>6}"]
    for r in rows:
        lines.append(f"{r.name:<8} {r.potentials_per_example:>9d} {r.mean_z2:>9.3g} "
                     f"{r.paper:>10.3g} {r.paper / tot_p:>6.1%} {r.reference:>10.3g} "
                     f"{r.reference / tot_r:>6.1%}")
    lines.append(f"{'total':<8} {'':>9} {'':>9} {tot_p:>10.3g} {'':>6} {tot_r:>10.3g}")
    return "\n".join(lines)


def penalty_vs_loss(model: nn.Module, x: Tensor, labels: Tensor, lam: float
                    ) -> OrderedDict[str, OrderedDict[str, float]]:
    """PSP against cross-entropy for both normalizations: the values, and per parameter tensor
    the ratio ||dP/dtheta|| / ||dCE/dtheta||, all by autograd."""
    ce_grads = autograd_gradient(model, x, lambda out, _: F.cross_entropy(out, labels))
    with torch.no_grad():
        out, zs = capture(model, x)
        ce = F.cross_entropy(out, labels).item()
    result: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
    for norm in NORMALIZATIONS:
        grads = autograd_psp_gradients(model, x, lam, norm)
        row = OrderedDict(penalty=psp_penalty(zs, lam, norm).item(), cross_entropy=ce)
        row.update((k, (grads[k].norm() / ce_grads[k].norm()).item()) for k in grads)
        result[norm] = row
    return result


def plot_balance(rows: Sequence[LayerBalance]) -> Figure:
    """Two bar charts: each layer's share of the penalty, and its dP/dz factor per potential."""
    names = [r.name for r in rows]
    pos = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    tot_p, tot_r = sum(r.paper for r in rows), sum(r.reference for r in rows)
    a.bar(pos - 0.2, [r.paper / tot_p for r in rows], 0.4, label="paper (Eq. 7 literal)")
    a.bar(pos + 0.2, [r.reference / tot_r for r in rows], 0.4, label="reference (layer mean)")
    a.set(xticks=pos, xticklabels=names, ylabel="share of the penalty", title="who is penalized")
    b.bar(pos - 0.2, [r.paper_scale for r in rows], 0.4, label="paper")
    b.bar(pos + 0.2, [r.reference_scale for r in rows], 0.4, label="reference")
    b.set(xticks=pos, xticklabels=names, yscale="log", ylabel="c_p in dP/dz = c_p · z",
          title="pull on each single potential")
    a.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Notebook 03: gradient checks and Eq. 14's decomposition
# --------------------------------------------------------------------------------------------

def plot_check_rows(tables: Mapping[str, Sequence[GradientCheckRow]]) -> Figure:
    """Relative error per parameter tensor (log scale), one bar group per table (e.g. dtype)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    names = [r.name for r in next(iter(tables.values()))]
    pos = np.arange(len(names))
    width = 0.8 / len(tables)
    for i, (label, rows) in enumerate(tables.items()):
        vals = [max(r.max_rel, 1e-18) for r in rows]
        ax.bar(pos + (i - (len(tables) - 1) / 2) * width, vals, width, label=label)
    for eps, dt in ((np.finfo(np.float64).eps, "float64"), (np.finfo(np.float32).eps, "float32")):
        ax.axhline(eps, color="k", ls=":", lw=1)
        ax.text(1.01, eps, f"{dt}\neps", va="center", ha="left", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.set(xticks=pos, yscale="log", ylabel="max|ours - autograd| / max|autograd|",
           title="hand-derived PSP gradient vs autograd")
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def contribution_norms(contributions: Mapping[str, Mapping[str, Tensor]], param: str
                       ) -> OrderedDict[str, tuple[float, float]]:
    """For one parameter: source layer p -> (||dR_p/dtheta||, cosine with the total)."""
    total = sum(c[param] for c in contributions.values())
    out = OrderedDict()
    for src, c in contributions.items():
        g = c[param]
        norm = g.norm().item()
        cos = F.cosine_similarity(g.flatten(), total.flatten(), dim=0).item() if norm else 0.0
        out[src] = (norm, cos)
    out["total"] = (total.norm().item(), 1.0)
    return out


def plot_contribution_matrix(contributions: Mapping[str, Mapping[str, Tensor]],
                             records: Sequence[LayerRecord]) -> Figure:
    """Eq. 14 as a picture: row p (penalty at layer p), column l (weights of layer l), colour
    ||dR_p/dw_l|| on a log scale; exact zeros (p < l) are drawn white."""
    n = len(records)
    m = np.zeros((n, n))
    for p, src in enumerate(contributions):
        for l, r in enumerate(records):  # noqa: E741
            m[p, l] = contributions[src][f"{r.name}.weight"].norm().item()
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.5, 1.0 * n + 1.2))
    shown = np.ma.masked_where(m == 0, m)
    image = ax.imshow(np.ma.log10(shown), cmap="viridis")
    for p in range(n):
        for l in range(n):  # noqa: E741
            text = "0" if m[p, l] == 0 else f"{m[p, l]:.1e}"
            ax.text(l, p, text, ha="center", va="center", fontsize=8,
                    color="k" if m[p, l] == 0 else "w")
    ticks = range(n)
    ax.set_xticks(ticks, [f"l={i + 1}" for i in ticks])
    ax.set_yticks(ticks, [f"p={p + 1}" for p in ticks])
    ax.set(xlabel="weights of layer l", ylabel="penalty at layer p",
           title="‖∂R_p/∂w_l‖  (Eq. 14)")
    fig.colorbar(image, ax=ax, label="log10 norm")
    fig.tight_layout()
    return fig


def plot_contributions(contributions: Mapping[str, Mapping[str, Tensor]],
                       params: Sequence[str]) -> Figure:
    """One panel per parameter: the norm of each source layer's part of its PSP gradient."""
    fig, axes = plt.subplots(1, len(params), figsize=(4.3 * len(params), 3.6), squeeze=False)
    for ax, param in zip(axes[0], params, strict=True):
        norms = contribution_norms(contributions, param)
        labels = list(norms)
        vals = [norms[k][0] for k in labels]
        colors = ["tab:gray" if k == "total" else "tab:blue" for k in labels]
        ax.bar(labels, vals, color=colors)
        for i, k in enumerate(labels):
            if k != "total" and vals[i] > 0:
                ax.text(i, vals[i], f"cos {norms[k][1]:+.2f}", ha="center", va="bottom",
                        fontsize=7)
        ax.set_title(f"PSP gradient of {param}", pad=14)
        ax.set_ylabel("‖part from layer p‖")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def self_check(name: str, answer: Tensor | None, reference: Tensor, rtol: float = 1e-8) -> str:
    """For exercises: 'matches' if `answer` equals `reference`, else what differs."""
    if answer is None:
        return f"{name}: no answer yet (replace None with your expression)"
    answer = torch.as_tensor(answer)
    if answer.shape != reference.shape:
        return f"{name}: shape {tuple(answer.shape)}, expected {tuple(reference.shape)}"
    try:
        row = compare_gradients(name, answer.to(reference.dtype), reference, rtol=rtol)
    except AssertionError as err:
        return f"{name}: differs: {err}"
    return f"{name}: matches (max relative error {row.max_rel:.1e})"
