"""PSP gradients by hand (Eqs. 11-16): a forward pass that records each layer, then the backward
recursion, with explicit matrix products and no autograd.

* `forward_record` runs the chain of `layer_walk.layer_stack` and keeps, per affine layer
  l, its input y_{l-1}, its potentials z_l (Eq. 2) and what follows z_l up to the next layer.
* `psp_contributions` gives, for every layer p, the gradient of the penalty at layer p alone with
  respect to every parameter (Eq. 14): zero for layers after p, the local term z * dz/dtheta
  (Eq. 16) for layer p itself, and what back-propagation carries to the layers before p.
* `psp_gradients` gives the total (Eq. 15) with one backward recursion.

For a convolution dz/dw is the input patch (`F.unfold`), and the way back to the input is its
adjoint (`F.fold`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from psp_lite.analytic.layer_walk import (
    AFFINE,
    activation_derivative,
    check_supported,
    is_activation,
    layer_stack,
)
from psp_lite.regularizers import check_lambda, check_normalization, psp_gradient_scale, psp_penalty


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


@torch.no_grad()
def forward_record(
    model: nn.Module | Sequence[nn.Module], x: Tensor
) -> tuple[Tensor, list[LayerRecord]]:
    """Run the model's chain of layers (`layer_stack`) by hand; return the logits and one
    `LayerRecord` per affine layer.

    The z of each record are exactly the potentials `psp_lite.capture` reports (each affine
    layer is followed by an activation, the last one gives the logits). Flattening the input
    before the first affine layer is allowed.
    """
    records: list[LayerRecord] = []
    y = x
    for name, module in layer_stack(model, x):
        check_supported(module)
        if isinstance(module, AFFINE):
            if records and not records[-1].after:
                raise TypeError(f"{records[-1].name} must be followed by an activation before "
                                f"the next affine layer {name}")
            z = affine_forward(module, y)
            records.append(LayerRecord(name, module, y, z))
            y = z
            continue
        if not records:
            if isinstance(module, nn.Flatten):
                y = module(y)
                continue
            raise TypeError(f"{name} ({type(module).__name__}) comes before the first affine "
                            "layer; start the stack with nn.Linear or nn.Conv2d")
        if not records[-1].after and not is_activation(module):
            raise TypeError(f"{records[-1].name} must be followed directly by an activation, so "
                            f"that its output is a post-synaptic potential; got {name}")
        records[-1].after.append((module, y))
        # an in-place activation would overwrite z_l, which the record keeps
        y = module(y.clone() if getattr(module, "inplace", False) else y)
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
    """Forward by hand, then `psp_gradients`: parameter name -> dP/dtheta (Eq. 15), in the
    order of ``model.named_parameters()``."""
    grads = psp_gradients(forward_record(model, x)[1], lam, normalization)
    if not isinstance(model, nn.Module):
        return grads
    return OrderedDict((n, grads[n]) for n, _ in model.named_parameters() if n in grads)
