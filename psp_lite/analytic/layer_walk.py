"""The network as a chain of modules, in the order its forward pass calls them.

The hand-derived gradients (Eqs. 11-16, `psp_lite.analytic.by_hand`) need the layers one after the
other: affine maps (``nn.Linear``, ``nn.Conv2d``) giving potentials z (Eq. 2), elementwise
activations phi, max pooling and flattening. `layer_stack` reads that chain off the model:

* an ``nn.Sequential`` (nested ones too) or a list of modules is the chain as written;
* any other module is run once on one example with hooks on its leaf modules, which must form a
  chain: each module takes the previous one's output, or that output flattened to
  (batch, features) (a ``flatten`` or ``view`` in ``forward``), and the model returns the last
  module's output. So psp_lite's LeNet5, or any model written the same way, needs no wrapping.

This module also says which modules can be differentiated by hand, and phi'(z) for each activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

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


def is_activation(module: nn.Module) -> bool:
    """True for the activations with a hand-written phi' (their input is a potential z)."""
    return type(module) in ACTIVATION_DERIVATIVES


def check_supported(module: nn.Module) -> None:
    """TypeError naming the problem if `module` cannot be differentiated by hand."""
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


# --------------------------------------------------------------------------------------------
# Reading the chain off the model
# --------------------------------------------------------------------------------------------

def layer_stack(
    model: nn.Module | Sequence[nn.Module], x: Tensor | None = None
) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs in forward order.

    Names are those of ``model.named_modules()``, so ``f"{name}.weight"`` is the parameter's
    name in ``model.named_parameters()``. An ``nn.Sequential`` or a list is read as written; any
    other model is traced on ``x[:1]`` (see the module docstring), and a flattening between two
    modules appears as ``("flatten", nn.Flatten())``.
    """
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            if isinstance(child, nn.Sequential):
                out += [(f"{name}.{n}", m) for n, m in layer_stack(child)]
            else:
                out.append((name, child))
        return out
    if isinstance(model, Sequence) and not isinstance(model, nn.Module):
        return [(str(i), m) for i, m in enumerate(model)]
    if x is None:
        raise TypeError(f"{type(model).__name__} is not an nn.Sequential: pass an example input "
                        "x so that its forward pass can be traced.")
    return traced_stack(model, x)


def _follows(inp: Tensor, prev: Tensor) -> str | None:
    """How `inp` follows from `prev`: "same" tensor, "flatten" of it, or None (something else)."""
    if inp is prev:
        return "same"
    if inp.shape == prev.shape and torch.equal(inp, prev):
        return "same"
    if (inp.dim() == 2 and inp.shape[0] == prev.shape[0] and inp.numel() == prev.numel()
            and torch.equal(inp, prev.flatten(1))):
        return "flatten"
    return None


@torch.no_grad()
def traced_stack(model: nn.Module, x: Tensor) -> list[tuple[str, nn.Module]]:
    """The leaf modules of `model` in the order ``model(x[:1])`` calls them, with a
    ``("flatten", nn.Flatten())`` wherever the forward pass flattens between two of them.

    TypeError if the calls do not form a chain (a functional activation such as ``F.relu``, a
    residual sum, a module called twice), naming the two modules where the chain breaks.
    """
    leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]
    if not leaves:
        raise TypeError(f"{type(model).__name__} has no submodules to differentiate by hand; "
                        "build it from nn.Linear / nn.Conv2d and activation modules.")
    stack: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    sample = x[:1] if x.dim() > 1 else x                  # one example is enough to trace
    prev: list[tuple[str, Tensor]] = [("the input", sample)]

    def hook(name: str) -> Callable:
        def record(module: nn.Module, args: tuple, output: object) -> None:
            prev_name, prev_out = prev[-1]
            if id(module) in seen:
                raise TypeError(f"{name} is called twice in one forward pass; by-hand gradients "
                                "need every layer once, in a chain.")
            seen.add(id(module))
            how = _follows(args[0], prev_out) if args and isinstance(args[0], Tensor) else None
            if how is None:
                raise TypeError(
                    f"{name} does not take {prev_name}'s output: {type(model).__name__}.forward "
                    "does something between them that is not a module (F.relu, a residual sum, "
                    "a concatenation...). Write activations as modules (nn.ReLU()) and keep the "
                    "layers in a chain, or pass an nn.Sequential.")
            if how == "flatten":
                stack.append(("flatten", nn.Flatten()))
            stack.append((name, module))
            # an in-place activation returns its input: keep a copy of the value it had then
            prev.append((name, output.clone() if output is args[0] else output))  # type: ignore

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        output = model(sample)
    finally:
        for handle in handles:
            handle.remove()
    last_name, last_out = prev[-1]
    if not isinstance(output, Tensor) or _follows(output, last_out) != "same":
        raise TypeError(f"{type(model).__name__} does not return {last_name}'s output as it is; "
                        "by-hand gradients need the last layer to give the logits.")
    return stack
