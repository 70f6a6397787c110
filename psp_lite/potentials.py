"""Post-synaptic potentials: the inputs z of every activation (Eq. 2), read off any model.

`capture(model, x)` runs the model once and returns its output together with an ordered mapping
name -> z, one entry per call of an activation module, in forward order, the logits last.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

#: Activation modules whose input is a post-synaptic potential z (Eq. 2).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
    nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink,
)

OUTPUT = "output"

_WARNED_NO_ACTIVATIONS: set[type] = set()


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs of `model` whose inputs are potentials, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ACTIVATIONS)]


@contextmanager
def watch_potentials(
    model: nn.Module, on_potential: Callable[[str, Tensor], None]
) -> Iterator[None]:
    """Call `on_potential(name, z)` for every activation-module call while the block runs.

    Within one forward pass of `model` the n-th call of a module is named `name#n` (n > 1).
    In-place activations are switched to out-of-place for the duration, so z keeps its
    pre-activation values and autograd can differentiate through it. On exit (also after an
    exception) every hook is removed and every `inplace` flag restored.
    """
    calls: dict[str, int] = {}
    handles = []
    saved_flags: list[tuple[nn.Module, bool]] = []

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            count = calls.get(name, 0) + 1
            calls[name] = count
            key = name if count == 1 else f"{name}#{count}"
            if args and isinstance(args[0], Tensor):
                on_potential(key, args[0])

        return hook

    try:
        # names count calls within one forward pass: start afresh at each call of the model
        handles.append(model.register_forward_pre_hook(lambda module, args: calls.clear()))
        for name, module in activation_modules(model):
            if getattr(module, "inplace", False):
                saved_flags.append((module, True))
                module.inplace = False
            hook = make_hook(name or type(module).__name__)
            handles.append(module.register_forward_pre_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in saved_flags:
            module.inplace = flag


def capture(
    model: nn.Module, x: Tensor, *, include_output: bool = True
) -> tuple[Tensor, OrderedDict[str, Tensor]]:
    """Run `model(x)`; return `(output, potentials)` with potentials name -> z in forward order.

    z is the input of each activation-module call (Eq. 2); a module called twice gives `name`
    and `name#2`. With `include_output`, the logits (the last layer's z) are the last entry,
    under the name ``"output"`` (``"output#logits"`` if an activation module is itself named
    "output"). The tensors stay in the autograd graph. A model without activation modules gets a
    one-time warning: PSP would then see its logits only.
    """
    potentials: OrderedDict[str, Tensor] = OrderedDict()
    with watch_potentials(model, potentials.__setitem__):
        output = model(x)
    if not potentials:
        _warn_no_activations(model)
    if include_output:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{type(model).__name__} returned {type(output).__name__}, not a tensor of logits; "
                "pass include_output=False or wrap the model so that it returns one tensor."
            )
        potentials[output_name(potentials)] = output
    return output, potentials


def output_name(potentials: Mapping[str, Tensor]) -> str:
    """The key of the logits: "output", or "output#logits" if an activation is named "output"."""
    return OUTPUT if OUTPUT not in potentials else f"{OUTPUT}#logits"


def layer_names(model: nn.Module, captured: list[str]) -> list[str]:
    """Readable names for the captured potentials: the producing layer where the model says."""
    names = getattr(model, "potential_layers", None)
    return list(names) if names and len(names) == len(captured) else captured


def _warn_no_activations(model: nn.Module) -> None:
    """Warn once per model class that PSP will see the logits only."""
    if type(model) in _WARNED_NO_ACTIVATIONS:
        return
    _WARNED_NO_ACTIVATIONS.add(type(model))
    warnings.warn(
        f"{type(model).__name__} has no activation modules, so only its output (the logits) is "
        "captured and PSP regularizes the last layer alone. If its forward calls F.relu or "
        "torch.tanh, build those as nn.ReLU() / nn.Tanh() submodules instead.",
        UserWarning, stacklevel=3,
    )


@torch.no_grad()
def mean_square(potentials: OrderedDict[str, Tensor]) -> OrderedDict[str, float]:
    """Per-layer, detached <z^2>: mean of z^2 over batch, neurons and positions (Fig. 2b)."""
    return OrderedDict((name, z.detach().float().square().mean().item())
                       for name, z in potentials.items())
