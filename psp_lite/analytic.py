"""Hand-derived PSP gradients (Eqs. 9-16), computed without autograd, and a check against autograd.

The network is a sequential stack of affine layers (``nn.Linear``, ``nn.Conv2d``), each followed
by an elementwise activation (tanh, sigmoid, ReLU, leaky ReLU) and optionally by ``nn.MaxPool2d``
or ``nn.Flatten``; the last affine layer gives the logits, which count as a layer of potentials.

* `forward_record` runs the stack by hand and keeps, per affine layer l, its input y_{l-1} and its
  potentials z_l (Eq. 2).
* `psp_contributions` gives, for every layer p, the gradient of the penalty at layer p alone with
  respect to every parameter (Eq. 14): zero for layers after p, the local term z * dz/dtheta
  (Eq. 16) for layer p itself, and what back-propagation carries to the layers before p.
* `psp_gradients` gives the total (Eq. 15) with one backward recursion.
* `compare_gradients` sets one of our tensors beside autograd's and raises past a tolerance.

Everything here uses explicit matrix products; for a convolution dz/dw is the input patch
(`F.unfold`), and the way back to the input is its adjoint (`F.fold`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from psp_lite.potentials import capture
from psp_lite.regularizers import (
    check_lambda,
    check_normalization,
    psp_gradient_scale,
    psp_penalty,
)

AFFINE = (nn.Linear, nn.Conv2d)


def _leaky_slope(module: nn.Module) -> float:
    return float(getattr(module, "negative_slope", 0.01))


#: phi and phi' for the elementwise activations this module can differentiate by hand.
ACTIVATION_DERIVATIVES: dict[type[nn.Module], Callable[[Tensor, nn.Module], Tensor]] = {
    nn.Tanh: lambda z, m: 1 - torch.tanh(z).square(),
    nn.Sigmoid: lambda z, m: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
    nn.ReLU: lambda z, m: (z > 0).to(z.dtype),
    nn.LeakyReLU: lambda z, m: torch.where(z > 0, torch.ones_like(z),
                                           torch.full_like(z, _leaky_slope(m))),
}


def activation_derivative(module: nn.Module, z: Tensor) -> Tensor:
    """phi'(z) for an activation module (the factor back-propagation multiplies by)."""
    for kind, derivative in ACTIVATION_DERIVATIVES.items():
        if type(module) is kind:
            return derivative(z, module)
    raise TypeError(f"no hand-written derivative for {type(module).__name__}; supported: "
                    + ", ".join(k.__name__ for k in ACTIVATION_DERIVATIVES))


# --------------------------------------------------------------------------------------------
# The stack and the forward pass
# --------------------------------------------------------------------------------------------

def layer_stack(model: nn.Module | Sequence[nn.Module]) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs in forward order, for an ``nn.Sequential`` or psp_lite's LeNet5.

    Names are those of ``model.named_modules()``, so ``f"{name}.weight"`` is the parameter's
    name in ``model.named_parameters()``.
    """
    from psp_lite.models import LeNet5

    if isinstance(model, LeNet5):
        order = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", None, "fc1", "relu3", "fc2"]
        return [(n, getattr(model, n)) if n else ("flatten", nn.Flatten()) for n in order]
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            if isinstance(child, nn.Sequential):
                out += [(f"{name}.{n}", m) for n, m in layer_stack(child)]
            else:
                out.append((name, child))
        return out
    if isinstance(model, Sequence):
        return [(str(i), m) for i, m in enumerate(model)]
    raise TypeError(f"{type(model).__name__} is not an nn.Sequential (nor LeNet5); wrap its "
                    "layers in nn.Sequential to differentiate it by hand.")


@dataclass
class LayerRecord:
    """What the forward pass keeps for one affine layer l: y_{l-1}, z_l and what follows z_l."""

    name: str
    module: nn.Linear | nn.Conv2d
    y_in: Tensor
    z: Tensor
    #: (module, its input) for every module between z_l and the next affine layer.
    after: list[tuple[nn.Module, Tensor]] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Tensor]:
        """name -> parameter tensor of this layer (weight, and bias if any)."""
        out = {f"{self.name}.weight": self.module.weight.detach()}
        if self.module.bias is not None:
            out[f"{self.name}.bias"] = self.module.bias.detach()
        return out


def input_patches(conv: nn.Conv2d, y: Tensor) -> Tensor:
    """The patches of y that a convolution's filters see: (B, C*kh*kw, positions).

    For a convolution this is dz/dw (Eq. 16): z at one position is b + w . patch.
    """
    return F.unfold(y, conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                    stride=conv.stride)


def _conv_out_size(conv: nn.Conv2d, size: Sequence[int]) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(size, conv.padding, conv.dilation, conv.kernel_size,
                                 conv.stride, strict=True))


def affine_forward(module: nn.Linear | nn.Conv2d, y: Tensor) -> Tensor:
    """z = f(theta, y) (Eq. 2): w . y + b for a Linear layer, w . patch + b at every position
    for a convolution."""
    w = module.weight.detach()
    b = module.bias.detach() if module.bias is not None else None
    if isinstance(module, nn.Linear):
        z = y @ w.T
        return z if b is None else z + b
    patches = input_patches(module, y)                       # (B, C*k*k, L)
    z = w.flatten(1) @ patches                                # (B, O, L)
    if b is not None:
        z = z + b[:, None]
    return z.unflatten(2, _conv_out_size(module, y.shape[-2:]))


def _check_module(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d) and (
        module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str)
    ):
        raise TypeError("by-hand convolution supports groups=1, zero padding given as numbers")
    if isinstance(module, nn.MaxPool2d) and module.ceil_mode:
        raise TypeError("by-hand max pooling supports ceil_mode=False only")
    if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
        raise TypeError("by-hand Flatten supports start_dim=1, end_dim=-1 only")
    known = (*AFFINE, nn.MaxPool2d, nn.Flatten, *ACTIVATION_DERIVATIVES)
    if type(module) not in known:
        raise TypeError(f"cannot differentiate {type(module).__name__} by hand; supported: "
                        + ", ".join(k.__name__ for k in known))


def _is_activation(module: nn.Module) -> bool:
    return type(module) in ACTIVATION_DERIVATIVES


@torch.no_grad()
def forward_record(
    model: nn.Module | Sequence[nn.Module], x: Tensor
) -> tuple[Tensor, list[LayerRecord]]:
    """Run the stack by hand; return the logits and one `LayerRecord` per affine layer.

    The z of each record are exactly the potentials `psp_lite.capture` reports (each affine
    layer is followed by an activation, the last one gives the logits).
    """
    records: list[LayerRecord] = []
    y = x
    for name, module in layer_stack(model):
        _check_module(module)
        if isinstance(module, AFFINE):
            if records and not records[-1].after:
                raise TypeError(f"{records[-1].name} must be followed by an activation before "
                                f"the next affine layer {name}")
            z = affine_forward(module, y)
            records.append(LayerRecord(name, module, y, z))
            y = z
            continue
        if not records:
            raise TypeError(f"{name} ({type(module).__name__}) comes before the first affine "
                            "layer; start the stack with nn.Linear or nn.Conv2d")
        if not records[-1].after and not _is_activation(module):
            raise TypeError(f"{records[-1].name} must be followed directly by an activation, so "
                            f"that its output is a post-synaptic potential; got {name}")
        records[-1].after.append((module, y))
        y = module(y)
    if not records:
        raise TypeError("the stack has no nn.Linear / nn.Conv2d layer")
    if records[-1].after:
        raise TypeError("the stack must end with its output layer (nn.Linear / nn.Conv2d giving "
                        "the logits), not with " + type(records[-1].after[-1][0]).__name__)
    return y, records


# --------------------------------------------------------------------------------------------
# Backward, one step at a time
# --------------------------------------------------------------------------------------------

def local_gradients(record: LayerRecord, dz: Tensor) -> dict[str, Tensor]:
    """Given g = dP/dz_l, the gradient for layer l's own parameters: g * dz/dtheta (Eq. 16),
    summed over the batch (and, for a convolution, over the positions sharing one filter).

    dz/db = 1, so the bias gets sum(g); dz/dw = y_{l-1} (or the input patch), so the weight
    gets sum(g * y_{l-1}).
    """
    m = record.module
    if isinstance(m, nn.Linear):
        grads = {f"{record.name}.weight": dz.T @ record.y_in}
        bias_sum = dz.sum(0)
    else:
        patches = input_patches(m, record.y_in)                 # (B, C*k*k, L)
        g = dz.flatten(2)                                       # (B, O, L)
        grads = {f"{record.name}.weight": torch.einsum("bol,bkl->ok", g, patches)
                 .reshape(m.weight.shape)}
        bias_sum = g.sum((0, 2))
    if m.bias is not None:
        grads[f"{record.name}.bias"] = bias_sum
    return grads


def back_to_input(record: LayerRecord, dz: Tensor) -> Tensor:
    """dP/dy_{l-1} from dP/dz_l: multiply by w^T (for a convolution, spread each position's
    w^T g back over its patch, the adjoint of unfold)."""
    m = record.module
    w = m.weight.detach()
    if isinstance(m, nn.Linear):
        return dz @ w
    cols = w.flatten(1).T @ dz.flatten(2)                      # (B, C*k*k, L)
    return F.fold(cols, record.y_in.shape[-2:], m.kernel_size, dilation=m.dilation,
                  padding=m.padding, stride=m.stride)


def back_through(after: list[tuple[nn.Module, Tensor]], grad: Tensor) -> Tensor:
    """Carry dP/dy back through flatten, max pooling and phi (times phi'(z)) to dP/dz."""
    for module, inp in reversed(after):
        if isinstance(module, nn.Flatten):
            grad = grad.reshape(inp.shape)
        elif isinstance(module, nn.MaxPool2d):
            _, idx = F.max_pool2d(inp, module.kernel_size, module.stride, module.padding,
                                  module.dilation, return_indices=True)
            flat = torch.zeros_like(inp).flatten(2)
            grad = flat.scatter_add_(2, idx.flatten(2), grad.flatten(2)).view_as(inp)
        else:
            grad = grad * activation_derivative(module, inp)
    return grad


def penalty_dz(records: Sequence[LayerRecord], lam: float,
               normalization: str = "paper") -> list[Tensor]:
    """dP/dz_p = c_p * z_p for every layer (the z factor of Eqs. 9 and 13).

    c_p = lam / B for ``"paper"`` (Eq. 7 per example, batch mean), and
    2 lam / (numel(z_p) * n_layers) for ``"reference"`` (the authors' per-layer mean).
    """
    lam = check_lambda(lam)
    check_normalization(normalization)
    n = len(records)
    return [psp_gradient_scale(r.z, n, lam, normalization) * r.z for r in records]


def psp_value(records: Sequence[LayerRecord], lam: float, normalization: str = "paper") -> Tensor:
    """The penalty (Eq. 7) from the recorded potentials, for either normalization."""
    return psp_penalty([r.z for r in records], lam, normalization)


def _zeros_like_params(records: Sequence[LayerRecord]) -> OrderedDict[str, Tensor]:
    return OrderedDict((k, torch.zeros_like(v)) for r in records for k, v in r.params.items())


def psp_contributions(
    records: Sequence[LayerRecord], lam: float, normalization: str = "paper"
) -> OrderedDict[str, OrderedDict[str, Tensor]]:
    """Eq. 14 for every pair: source layer p -> parameter name -> dR_p/dtheta.

    For a parameter of layer l: zero when p < l (z_p does not depend on it), the local term
    z_p * dz_p/dtheta when p = l, and the back-propagated term when p > l. Summing over p gives
    `psp_gradients` (Eq. 15).
    """
    dzs = penalty_dz(records, lam, normalization)
    out: OrderedDict[str, OrderedDict[str, Tensor]] = OrderedDict()
    for p, record in enumerate(records):
        grads = _zeros_like_params(records)
        g = dzs[p]
        for l in range(p, -1, -1):  # noqa: E741 - the paper's layer index
            grads.update(local_gradients(records[l], g))
            if l > 0:
                g = back_through(records[l - 1].after, back_to_input(records[l], g))
        out[record.name] = grads
    return out


def psp_gradients(
    records: Sequence[LayerRecord], lam: float, normalization: str = "paper"
) -> OrderedDict[str, Tensor]:
    """The total PSP gradient (Eq. 15) with one backward recursion.

    delta_N = c_N z_N at the output; then for l = N-1, ..., 1
    delta_l = c_l z_l (the layer's own term) + phi'(z_l) * (back-propagated delta_{l+1}),
    and each layer's parameters get delta_l * dz_l/dtheta (Eq. 16).
    """
    dzs = penalty_dz(records, lam, normalization)
    grads: OrderedDict[str, Tensor] = OrderedDict()
    delta = dzs[-1]
    for l in range(len(records) - 1, -1, -1):  # noqa: E741
        grads.update(local_gradients(records[l], delta))
        if l > 0:
            delta = dzs[l - 1] + back_through(records[l - 1].after,
                                              back_to_input(records[l], delta))
    return OrderedDict((k, grads[k]) for r in records for k in r.params)


def analytic_psp_gradients(model: nn.Module, x: Tensor, lam: float,
                           normalization: str = "paper") -> OrderedDict[str, Tensor]:
    """Forward by hand, then `psp_gradients`: parameter name -> dP/dtheta (Eq. 15)."""
    return psp_gradients(forward_record(model, x)[1], lam, normalization)


# --------------------------------------------------------------------------------------------
# Eq. 12, and l2 as its special case
# --------------------------------------------------------------------------------------------

def eq12_terms(weight: Tensor, bias: Tensor | None, y_prev: Tensor) -> tuple[Tensor, Tensor]:
    """The two parts of Eq. 12 for a Linear layer, per example: (self term, cross term).

    self[b, k, j]  = w_kj * (dz_k/dw_kj)^2 = w_kj * y_j^2
    cross[b, k, j] = dz_k/dw_kj * (b_k + sum_{i != j} w_ki y_i)
    Their sum is z_k * y_j, the gradient of R_{l,k} = z_k^2 / 2 (Eq. 9). With dz/dw = 1
    (y = 1) the self term is w itself: the weight-decay gradient.
    """
    dz_dw = y_prev[:, None, :]                                    # (B, 1, J) = Eq. 16
    self_term = weight[None] * dz_dw.square()
    z = y_prev @ weight.T + (0 if bias is None else bias)         # (B, K)
    others = z[:, :, None] - weight[None] * dz_dw                 # b + sum_{i != j} w_i y_i
    return self_term, dz_dw * others


def weight_decay_gradient(weight: Tensor, lam: float) -> Tensor:
    """lam * (self term of Eq. 12 with dz/dw = 1, cross term dropped) = lam * w, the l2
    gradient (Eqs. 3-5)."""
    self_term, _ = eq12_terms(weight, None, torch.ones(1, weight.shape[1], dtype=weight.dtype,
                                                       device=weight.device))
    return check_lambda(lam) * self_term[0]


# --------------------------------------------------------------------------------------------
# Autograd's side, and the comparison
# --------------------------------------------------------------------------------------------

def autograd_gradient(
    model: nn.Module, x: Tensor, objective: Callable[[Tensor, list[Tensor]], Tensor]
) -> OrderedDict[str, Tensor]:
    """d objective(output, [z_1, ..., z_N]) / dtheta by autograd, z from `psp_lite.capture`.

    For single terms of the derivation, e.g. ``lambda out, zs: 0.5 * zs[1][0, k] ** 2`` is
    R_{2,k} of Eq. 8 for the first example.
    """
    output, potentials = capture(model, x)
    params = OrderedDict((n, p) for n, p in model.named_parameters() if p.requires_grad)
    grads = torch.autograd.grad(objective(output, list(potentials.values())),
                                list(params.values()), allow_unused=True)
    return OrderedDict((n, torch.zeros_like(p) if g is None else g)
                       for (n, p), g in zip(params.items(), grads, strict=True))


def autograd_psp_gradients(
    model: nn.Module, x: Tensor, lam: float, normalization: str = "paper",
    source: int | None = None,
) -> OrderedDict[str, Tensor]:
    """dP/dtheta by autograd through `capture` and `psp_penalty`: the reference to check against.

    With `source = p` (0-based), only the penalty at that layer counts (the other layers' z are
    replaced by zeros that carry no gradient, so the normalization still sees every layer).
    """
    def objective(_: Tensor, zs: list[Tensor]) -> Tensor:
        if source is not None:
            zs = [z if i == source else torch.zeros_like(z).detach() for i, z in enumerate(zs)]
        return psp_penalty(zs, lam, normalization)

    return autograd_gradient(model, x, objective)


@dataclass(frozen=True)
class GradientCheckRow:
    """One line of a gradient check: max |ours - reference| and that relative to max |reference|."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    scale: float

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape))
        return (f"{self.name:<16} {shape:>12} {self.scale:>11.3e} {self.max_abs:>11.2e} "
                f"{self.max_rel:>11.2e}")


TABLE_HEADER = (f"{'parameter':<16} {'shape':>12} {'max|ref|':>11} {'max abs err':>11} "
                f"{'max rel err':>11}")


def default_rtol(dtype: torch.dtype) -> float:
    """Tolerance on max|ours - ref| / max|ref|: 1e-10 in float64, 1e-4 in float32."""
    return 1e-10 if dtype == torch.float64 else 1e-4


def compare_gradients(name: str, ours: Tensor, reference: Tensor, *, rtol: float | None = None,
                      atol: float = 0.0) -> GradientCheckRow:
    """Compare one tensor of ours with autograd's; return the row, raise AssertionError past
    ``atol + rtol * max|reference|``.

    The relative error is taken against the tensor's largest entry (max|ours - ref| / max|ref|),
    so that entries that are zero or nearly so do not blow it up.
    """
    if ours.shape != reference.shape:
        raise AssertionError(f"{name}: shape {tuple(ours.shape)} != reference "
                             f"{tuple(reference.shape)}")
    rtol = default_rtol(reference.dtype) if rtol is None else rtol
    diff = (ours.detach().double() - reference.detach().double()).abs()
    max_abs = diff.max().item() if diff.numel() else 0.0
    scale = reference.detach().double().abs().max().item() if diff.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    row = GradientCheckRow(name, tuple(ours.shape), max_abs, max_rel, scale)
    if not max_abs <= atol + rtol * scale:
        raise AssertionError(f"{name}: max abs error {max_abs:.3e} exceeds "
                             f"atol {atol:.1e} + rtol {rtol:.1e} * max|ref| {scale:.3e} "
                             f"(relative error {max_rel:.3e})")
    return row


def compare_all(ours: Mapping[str, Tensor], reference: Mapping[str, Tensor], *,
                rtol: float | None = None, atol: float = 0.0) -> list[GradientCheckRow]:
    """`compare_gradients` for every parameter tensor; the names must match."""
    if list(ours) != list(reference):
        raise AssertionError(f"parameter names differ: {list(ours)} vs {list(reference)}")
    return [compare_gradients(k, ours[k], reference[k], rtol=rtol, atol=atol) for k in ours]


def format_table(rows: Sequence[GradientCheckRow], title: str = "") -> str:
    """The rows as a fixed-width text table."""
    lines = [title] if title else []
    lines += [TABLE_HEADER, "-" * len(TABLE_HEADER), *map(str, rows)]
    return "\n".join(lines)


def check_psp_gradients(model: nn.Module, x: Tensor, lam: float, normalization: str = "paper",
                        *, rtol: float | None = None) -> list[GradientCheckRow]:
    """Hand-derived total gradient (Eq. 15) vs autograd, one row per parameter tensor."""
    return compare_all(analytic_psp_gradients(model, x, lam, normalization),
                       autograd_psp_gradients(model, x, lam, normalization), rtol=rtol)


def finite_difference(model: nn.Module, x: Tensor, lam: float, name: str, index: tuple[int, ...],
                      normalization: str = "paper", h: float = 1e-6) -> float:
    """Central difference (P(theta + h) - P(theta - h)) / 2h for one parameter entry."""
    param = dict(model.named_parameters())[name]
    values = []
    with torch.no_grad():
        original = param[index].item()
        for step in (h, -h):
            param[index] = original + step
            values.append(psp_value(forward_record(model, x)[1], lam, normalization).item())
        param[index] = original
    return (values[0] - values[1]) / (2 * h)
